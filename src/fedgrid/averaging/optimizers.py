"""Server steps: plain averaging and the adaptive optimizers of Reddi et al. 2020.

The pseudo-gradient of a cycle is the averaged diff (original - trained), so a
step moves the model against it: new = current - lr x direction. FedAvgM keeps
a momentum buffer; FedAdagrad, FedAdam and FedYogi keep first and second
moments (m, v) and step by m / (sqrt(v) + tau). Their state is a plain tensor
state ("m/<param>", "v/<param>", "step") stored as the SERVER_STATE blob next to
each checkpoint, so it survives between cycles without pickle. Integer
buffers (e.g. batch counters) always take the rounded plain average.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from fedgrid.averaging.layout import ModelLayout, TensorSpec, accumulation_dtype
from fedgrid.errors import InvalidArgument
from fedgrid.jobconfig import AveragingConfig

STATEFUL = ("fedavgm", "fedadam", "fedyogi", "fedadagrad")
LINEAR = ("fedavg", "mean", *STATEFUL)
STEP_KEY = "step"


def uses_moments(method: str) -> tuple[bool, bool]:
    """Whether a method keeps a first (m) and a second (v) moment."""
    if method == "fedavgm":
        return True, False
    if method in ("fedadam", "fedyogi", "fedadagrad"):
        return True, True
    return False, False


def initial_state(
    layout: ModelLayout, config: AveragingConfig
) -> dict[str, torch.Tensor]:
    """Fresh optimizer state: zero moments, v at tau^2 as in the paper."""
    has_m, has_v = uses_moments(config.method)
    state: dict[str, torch.Tensor] = {STEP_KEY: torch.zeros((), dtype=torch.int64)}
    for spec in layout:
        if not spec.is_floating:
            continue
        dtype = accumulation_dtype(spec.dtype)
        if has_m:
            state[f"m/{spec.name}"] = torch.zeros(spec.shape, dtype=dtype)
        if has_v:
            state[f"v/{spec.name}"] = torch.full(spec.shape, config.tau**2, dtype=dtype)
    return state


def check_state(
    state: Mapping[str, torch.Tensor], layout: ModelLayout, config: AveragingConfig
) -> dict[str, torch.Tensor]:
    """Validate a stored optimizer state against the model; return a copy."""
    expected = initial_state(layout, config)
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        raise InvalidArgument(
            f"server state does not fit {config.method} on this model: "
            f"missing {missing[:5]}, unexpected {extra[:5]}"
        )
    checked: dict[str, torch.Tensor] = {}
    for name, fresh in expected.items():
        stored = state[name]
        if stored.shape != fresh.shape or stored.dtype != fresh.dtype:
            raise InvalidArgument(
                f"server state tensor {name!r} is {list(stored.shape)} of "
                f"{stored.dtype}; expected {list(fresh.shape)} of {fresh.dtype}"
            )
        if stored.dtype.is_floating_point and not bool(torch.isfinite(stored).all()):
            raise InvalidArgument(f"server state tensor {name!r} holds NaN or Inf")
        checked[name] = stored.clone()
    return checked


def _direction(
    spec: TensorSpec,
    delta: torch.Tensor,
    state: dict[str, torch.Tensor],
    config: AveragingConfig,
) -> torch.Tensor:
    method = config.method
    if method in ("fedavg", "mean"):
        return delta
    m = state[f"m/{spec.name}"]
    if method == "fedavgm":
        m.mul_(config.momentum).add_(delta)
        return m
    m.mul_(config.beta1).add_(delta, alpha=1.0 - config.beta1)
    v = state[f"v/{spec.name}"]
    squared = delta * delta
    if method == "fedadagrad":
        v.add_(squared)
    elif method == "fedadam":
        v.mul_(config.beta2).add_(squared, alpha=1.0 - config.beta2)
    elif method == "fedyogi":
        v.sub_((1.0 - config.beta2) * squared * torch.sign(v - squared))
    else:
        raise InvalidArgument(f"averaging method {method!r} has no server step")
    return m / (v.sqrt() + config.tau)


def server_step(
    current: Mapping[str, torch.Tensor],
    mean_diff: Mapping[str, torch.Tensor],
    layout: ModelLayout,
    config: AveragingConfig,
    state: dict[str, torch.Tensor] | None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """Apply one cycle's averaged diff; return the new model and optimizer state.

    `state` is updated in place when given; stateless methods return None.
    """
    if config.method not in LINEAR:
        raise InvalidArgument(f"averaging method {config.method!r} is not linear")
    stateful = config.method in STATEFUL
    if stateful and state is None:
        state = initial_state(layout, config)
    new: dict[str, torch.Tensor] = {}
    for spec in layout:
        base = current[spec.name]
        delta = mean_diff[spec.name].reshape(spec.shape)
        if not spec.is_floating:
            rounded = torch.round(delta).to(spec.dtype)
            new[spec.name] = base - rounded
            continue
        assert state is not None or not stateful
        direction = _direction(spec, delta, state or {}, config)
        updated = base.to(direction.dtype) - config.server_learning_rate * direction
        new[spec.name] = updated.to(spec.dtype)
    if stateful:
        assert state is not None
        state[STEP_KEY] = state[STEP_KEY] + 1
        return new, state
    return new, None
