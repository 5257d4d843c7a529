"""Running a downloaded training plan over the app's batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from fedgrid.errors import InvalidArgument

if TYPE_CHECKING:
    from fedgrid.plans import Plan


@dataclass
class TrainingResult:
    """Trained parameters, the samples seen and sample-weighted mean metrics."""

    params: dict[str, torch.Tensor]
    sample_count: int
    metrics: dict[str, float] = field(default_factory=dict)


class PlanRunner:
    """A downloaded plan made callable: `runner(**inputs)` runs the interpreter."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    @property
    def name(self) -> str:
        return self.plan.name

    def __call__(self, *args: Mapping[str, Any], **inputs: Any) -> dict[str, Any]:
        """Run with keyword inputs, or one mapping for names with dots in them."""
        merged: dict[str, Any] = {}
        for mapping in args:
            merged.update(mapping)
        merged.update(inputs)
        return self.plan.run_with(merged)


def hyperparameters(plan: Plan, client_config: Mapping[str, Any]) -> dict[str, Any]:
    """The plan's hyperparameter inputs (such as lr) taken from the client config."""
    from fedgrid.plans.ir import InputKind

    values: dict[str, Any] = {}
    for spec in plan.inputs:
        if spec.kind is not InputKind.HYPERPARAMETER:
            continue
        if spec.name not in client_config:
            raise InvalidArgument(
                f"plan {plan.name!r} needs hyperparameter {spec.name!r}; add it to "
                "the job's client_config"
            )
        shape = tuple(int(dim) for dim in spec.shape)
        tensor = torch.as_tensor(client_config[spec.name], dtype=spec.dtype)
        values[spec.name] = tensor.reshape(shape)
    return values


def batch_size(batch: Mapping[str, torch.Tensor]) -> int:
    """The first dimension shared by a batch's tensors."""
    sizes = {int(tensor.shape[0]) for tensor in batch.values() if tensor.dim() > 0}
    if len(sizes) != 1:
        raise InvalidArgument(
            f"a batch's tensors must share their first dimension, got {sorted(sizes)}"
        )
    return sizes.pop()


def train(
    plan: Plan,
    params: Mapping[str, torch.Tensor],
    batches: Iterable[Mapping[str, torch.Tensor]],
    client_config: Mapping[str, Any],
    epochs: int | None = None,
) -> TrainingResult:
    """Run the plan over every batch (client_config "epochs" times, default 1).

    Each step feeds the current parameters, the batch and the hyperparameters,
    and takes the updated parameters from the outputs named like the state.
    Scalar outputs (loss, accuracy...) are averaged weighted by batch size.
    """
    state_names = plan.state_names
    fixed = hyperparameters(plan, client_config)
    rounds = int(client_config.get("epochs", 1)) if epochs is None else epochs
    current = {name: params[name] for name in state_names}
    seen = 0
    sums: dict[str, float] = {}
    inputs: dict[str, Any] = dict(fixed)
    data = list(batches)
    for _ in range(rounds):
        for batch in data:
            size = batch_size(batch)
            inputs.update(current)
            inputs.update(batch)
            outputs = plan.run_with(inputs)
            current = {name: outputs[name] for name in state_names}
            for name, value in outputs.items():
                if name not in current and value.numel() == 1:
                    sums[name] = sums.get(name, 0.0) + float(value) * size
            seen += size
    metrics = {name: total / seen for name, total in sums.items()} if seen else {}
    samples = seen // rounds if rounds else 0
    return TrainingResult(params=current, sample_count=samples, metrics=metrics)
