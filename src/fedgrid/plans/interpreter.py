"""A pure interpreter: runs a checked plan by calling allowlisted torch ops."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

import torch

from fedgrid.errors import PlanError
from fedgrid.plans.check import NodeInfo
from fedgrid.plans.ir import Argument, InputSpec, Node, Program, Ref, iter_refs
from fedgrid.plans.opset import SYM_FUNCTIONS

logger = logging.getLogger(__name__)

Env = list[Any]
Step = Callable[[Env], None]

_RUN_ERRORS = (RuntimeError, TypeError, ValueError, IndexError)


def _size(tensor: torch.Tensor, dim: int) -> int:
    return tensor.shape[dim]


def _numel(tensor: torch.Tensor) -> int:
    return tensor.numel()


# Faster equivalents of ops whose result is a plain Python int.
_FAST_PATHS: dict[str, Callable[..., Any]] = {
    "aten.sym_size.int": _size,
    "aten.sym_numel.default": _numel,
}


def _callable(node: Node, info: NodeInfo) -> Callable[..., Any]:
    if node.op in _FAST_PATHS:
        return _FAST_PATHS[node.op]
    if info.overload is None:
        return SYM_FUNCTIONS[node.op]
    # The bound C++ function skips one Python frame per call.
    function: Callable[..., Any] = getattr(info.overload, "_op", info.overload)
    return function


class _Slots:
    """Assigns each value a position in the run-time environment list."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.template: Env = []
        self.builders: list[Step] = []

    def add(self, name: str | None, value: Any = None) -> int:
        self.template.append(value)
        slot = len(self.template) - 1
        if name:
            self.index[name] = slot
        return slot

    def argument(self, value: Argument) -> int:
        """A slot holding the value: the ref's slot, a literal, or a built list."""
        if isinstance(value, Ref):
            return self.index[value.name]
        if isinstance(value, tuple):
            items = [self.argument(item) for item in value]
            if not iter_refs(value):
                return self.add(None, [self.template[item] for item in items])
            return self._dynamic_list(items)
        return self.add(None, value)

    def _dynamic_list(self, items: list[int]) -> int:
        slot = self.add(None)
        if len(items) == 1:
            (only,) = items

            def build_one(env: Env) -> None:
                env[slot] = [env[only]]

            self.builders.append(build_one)
        else:
            getter = itemgetter(*items)

            def build(env: Env) -> None:
                env[slot] = list(getter(env))

            self.builders.append(build)
        return slot


def _call_step(
    function: Callable[..., Any],
    arg_slots: Sequence[int],
    kwargs: dict[str, Any],
    kwarg_slots: dict[str, int],
    out_slots: Sequence[int],
    multiple: bool,
) -> Step:
    """A closure specialised to the node's shape, so a run does little else."""
    if multiple:
        getter = itemgetter(*arg_slots) if len(arg_slots) > 1 else None
        outs = list(out_slots)

        def multi(env: Env) -> None:
            args = getter(env) if getter else tuple(env[s] for s in arg_slots)
            extra = {key: env[slot] for key, slot in kwarg_slots.items()}
            results = function(*args, **kwargs, **extra)
            for slot, result in zip(outs, results, strict=False):
                env[slot] = result

        return multi

    (out,) = out_slots
    if kwarg_slots:

        def with_ref_kwargs(env: Env) -> None:
            extra = {key: env[slot] for key, slot in kwarg_slots.items()}
            env[out] = function(*[env[s] for s in arg_slots], **kwargs, **extra)

        return with_ref_kwargs
    if len(arg_slots) == 1:
        (only,) = arg_slots
        if kwargs:

            def one_kw(env: Env) -> None:
                env[out] = function(env[only], **kwargs)

            return one_kw

        def one(env: Env) -> None:
            env[out] = function(env[only])

        return one
    if not arg_slots:

        def none(env: Env) -> None:
            env[out] = function(**kwargs)

        return none
    getter = itemgetter(*arg_slots)
    if kwargs:

        def many_kw(env: Env) -> None:
            env[out] = function(*getter(env), **kwargs)

        return many_kw

    def many(env: Env) -> None:
        env[out] = function(*getter(env))

    return many


class Interpreter:
    """Runs one checked program; op callables and argument slots bound once."""

    def __init__(self, program: Program, infos: Sequence[NodeInfo]) -> None:
        self._program = program
        slots = _Slots()
        self._inputs = [(spec, slots.add(spec.name)) for spec in program.inputs]
        for name, tensor in program.constants.items():
            slots.add(name, tensor)

        # Each node becomes zero or more list builders and one call step.
        self._steps: list[Step] = []
        self._owners: list[int] = []
        for index, (node, info) in enumerate(zip(program.nodes, infos, strict=True)):
            slots.builders = []
            arg_slots = [slots.argument(value) for value in node.args]
            kwargs: dict[str, Any] = {}
            kwarg_slots: dict[str, int] = {}
            for key, value in node.kwargs:
                if isinstance(value, (Ref, tuple)):
                    kwarg_slots[key] = slots.argument(value)
                else:
                    kwargs[key] = value
            out_slots = [slots.add(name or None) for name in node.outputs]
            step = _call_step(
                _callable(node, info),
                arg_slots,
                kwargs,
                kwarg_slots,
                out_slots,
                info.multiple,
            )
            for builder in [*slots.builders, step]:
                self._steps.append(builder)
                self._owners.append(index)
        self._template = slots.template
        self._outputs = [(name, slots.index[ref]) for name, ref in program.outputs]

    def _bind_inputs(self, inputs: Mapping[str, Any], env: Env) -> None:
        missing = [spec.name for spec, _ in self._inputs if spec.name not in inputs]
        if missing:
            raise PlanError(
                f"plan {self._program.name!r}: missing input {missing[0]!r}"
            )
        if len(inputs) != len(self._inputs):
            known = {spec.name for spec, _ in self._inputs}
            extra = sorted(set(inputs) - known)
            raise PlanError(
                f"plan {self._program.name!r}: unknown input {extra[0]!r}; it takes "
                f"{', '.join(sorted(known))}"
            )
        symbols: dict[str, tuple[int, str]] = {}
        for spec, slot in self._inputs:
            env[slot] = _checked_input(spec, inputs[spec.name], symbols)

    def run(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Execute the plan on named inputs; return its outputs by name."""
        env = self._template.copy()
        self._bind_inputs(inputs, env)
        position = 0
        try:
            with torch.no_grad():
                for position, step in enumerate(self._steps):  # noqa: B007
                    step(env)
        except _RUN_ERRORS as exc:
            index = self._owners[position]
            node = self._program.nodes[index]
            logger.info(
                "[Plan.run] plan=%s node=%s op=%s failed",
                self._program.name,
                index,
                node.op,
            )
            raise PlanError(
                f"plan {self._program.name!r}, node {index} ({node.op}) failed: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        return {name: env[slot] for name, slot in self._outputs}


def _checked_input(
    spec: InputSpec, value: Any, symbols: dict[str, tuple[int, str]]
) -> torch.Tensor:
    """Refuse an input of the wrong dtype or shape with a message that says so."""
    if not isinstance(value, torch.Tensor):
        if spec.shape or not isinstance(value, (int, float)):
            raise PlanError(
                f"input {spec.name!r} must be a tensor, got {type(value).__name__}"
            )
        value = torch.tensor(value, dtype=spec.dtype)
    tensor: torch.Tensor = value
    if value.dtype != spec.dtype:
        raise PlanError(
            f"input {spec.name!r} has dtype {value.dtype}; the plan expects "
            f"{spec.dtype}"
        )
    if value.dim() != len(spec.shape):
        raise PlanError(
            f"input {spec.name!r} has shape {list(value.shape)}; the plan "
            f"expects {len(spec.shape)} dimensions {list(spec.shape)}"
        )
    for axis, (size, expected) in enumerate(zip(value.shape, spec.shape, strict=True)):
        if isinstance(expected, str):
            first = symbols.setdefault(expected, (size, spec.name))
            if first[0] != size:
                raise PlanError(
                    f"input {spec.name!r} has {expected} size {size} on dimension "
                    f"{axis}; input {first[1]!r} has {first[0]}"
                )
        elif size != expected:
            raise PlanError(
                f"input {spec.name!r} has size {size} on dimension {axis}; the "
                f"plan expects {expected}"
            )
    return tensor
