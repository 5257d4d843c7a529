"""Tracing Python functions over tensors into plans of aten operators."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx
from torch.fx.experimental.symbolic_shapes import (
    DimDynamic,
    ShapeEnv,
    StatelessSymbolicContext,
)

from fedgrid.errors import PlanError
from fedgrid.plans.convert import GraphConverter, fold_double_transposes
from fedgrid.plans.ir import (
    BATCH,
    InputKind,
    InputSpec,
    PlanKind,
    check_name,
)
from fedgrid.plans.plan import Plan

logger = logging.getLogger(__name__)

Outputs = Mapping[str, torch.Tensor]
Call = Callable[[dict[str, torch.Tensor]], Outputs]


def _fake_input(
    mode: FakeTensorMode, spec: InputSpec, example: torch.Tensor
) -> torch.Tensor:
    dynamic = [isinstance(dim, str) for dim in spec.shape]
    if any(dynamic) and example.shape[0] < 2:
        # Sizes 0 and 1 would be fixed by the tracer; the values do not matter.
        if example.shape[0] == 0:
            raise PlanError(f"example input {spec.name!r} is empty; give one row")
        example = example.expand(2, *example.shape[1:]).contiguous()
    sizes = [DimDynamic.DYNAMIC if flag else DimDynamic.STATIC for flag in dynamic]
    fake = mode.from_tensor(
        example.detach(),
        symbolic_context=StatelessSymbolicContext(dynamic_sizes=sizes),
    )
    if spec.kind is InputKind.STATE and fake.is_floating_point():
        fake.requires_grad_(True)
    return fake


def _check_symbols(
    env: ShapeEnv, specs: Sequence[InputSpec], fakes: Sequence[torch.Tensor]
) -> None:
    """Refuse a function that only works for the example's batch size."""
    for spec, fake in zip(specs, fakes, strict=True):
        for axis, dim in enumerate(spec.shape):
            if not isinstance(dim, str):
                continue
            size = fake.shape[axis]
            if not isinstance(size, torch.SymInt):
                continue
            fixed = env.replace(size.node.expr)
            if fixed.is_number:
                raise PlanError(
                    f"the function only works when input {spec.name!r} has "
                    f"{dim} size {int(fixed)}; use x.shape[0] or -1 in view/reshape "
                    "so that any size works"
                )


def _make_graph(
    call: Call,
    specs: Sequence[InputSpec],
    examples: Mapping[str, torch.Tensor],
    name: str,
) -> tuple[fx.GraphModule, list[str]]:
    env = ShapeEnv()
    mode = FakeTensorMode(shape_env=env)
    fakes = [_fake_input(mode, spec, examples[spec.name]) for spec in specs]
    names = [spec.name for spec in specs]
    output_names: list[str] = []

    def flat(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        result = call(dict(zip(names, tensors, strict=True)))
        if isinstance(result, torch.Tensor):
            result = {"output": result}
        if not isinstance(result, Mapping) or not result:
            raise PlanError(
                f"plan {name!r}: the function must return a dict of named tensors"
            )
        output_names[:] = [check_name(key, "output") for key in result]
        return tuple(result.values())

    try:
        with mode:
            graph_module = make_fx(flat, tracing_mode="fake")(*fakes)
    except PlanError:
        raise
    except Exception as exc:  # the user's code or an untraceable op
        raise PlanError(f"tracing plan {name!r} failed: {exc}") from exc
    _check_symbols(env, specs, fakes)
    fold_double_transposes(graph_module.graph)
    graph_module.graph.eliminate_dead_code()
    return graph_module, output_names


def trace_program(
    call: Call,
    specs: Sequence[InputSpec],
    examples: Mapping[str, torch.Tensor],
    name: str,
    kind: PlanKind,
) -> Plan:
    """Trace call (inputs by name -> outputs by name) into a checked Plan."""
    check_name(name, "plan")
    seen: set[str] = set()
    for spec in specs:
        check_name(spec.name, "input")
        if spec.name in seen:
            raise PlanError(f"input {spec.name!r} is given twice")
        seen.add(spec.name)
    module, output_names = _make_graph(call, specs, examples, name)
    program = GraphConverter(module, specs).convert(name, kind, output_names)
    plan = Plan(program)
    logger.info(
        "[Plans.trace] plan=%s kind=%s nodes=%s ops=%s",
        name,
        kind.name.lower(),
        len(program.nodes),
        len(plan.ops),
    )
    return plan


def _tensor_inputs(example_inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for key, value in example_inputs.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = torch.tensor(value, dtype=torch.float32)
        if not isinstance(value, torch.Tensor):
            raise PlanError(f"example input {key!r} must be a tensor")
        tensors[key] = value.detach()
    return tensors


def _input_specs(
    examples: Mapping[str, torch.Tensor], fixed: Iterable[str]
) -> list[InputSpec]:
    fixed_names = set(fixed)
    unknown = fixed_names - set(examples)
    if unknown:
        raise PlanError(f"hyperparameter {sorted(unknown)[0]!r} is not an input")
    specs = []
    for key, tensor in examples.items():
        if tensor.dim() == 0 or key in fixed_names:
            specs.append(
                InputSpec(
                    key, InputKind.HYPERPARAMETER, tensor.dtype, tuple(tensor.shape)
                )
            )
        else:
            shape = (BATCH, *tensor.shape[1:])
            specs.append(InputSpec(key, InputKind.DATA, tensor.dtype, shape))
    return specs


def trace_plan(
    fn: Callable[..., Outputs | torch.Tensor],
    example_inputs: Mapping[str, torch.Tensor | float],
    name: str = "plan",
    *,
    hyperparameters: Iterable[str] = (),
) -> Plan:
    """Trace fn(**inputs) -> {name: tensor} into a plan.

    Inputs with at least one dimension are batches: their first dimension
    is symbolic, so the plan runs on any batch size. Zero-dimensional inputs
    and those named in hyperparameters keep their example shape.
    """
    examples = _tensor_inputs(example_inputs)
    specs = _input_specs(examples, hyperparameters)

    def call(values: dict[str, torch.Tensor]) -> Outputs:
        return fn(**values)  # type: ignore[return-value]

    return trace_program(call, specs, examples, name, PlanKind.GENERIC)


def trace_training_plan(
    fn: Callable[..., Outputs],
    model: nn.Module,
    example_inputs: Mapping[str, torch.Tensor | float],
    name: str = "training_plan",
    *,
    hyperparameters: Iterable[str] = (),
) -> Plan:
    """Trace a training step fn(model, params, **inputs) into a plan.

    params maps each name of model.named_parameters() to a tensor; fn calls
    the model on them (torch.func.functional_call), takes gradients with
    torch.func.grad or torch.autograd.grad, and returns a dict with its
    metrics (loss, accuracy...) and every updated parameter under its name.
    The plan's state inputs are the parameters; batches keep a symbolic
    batch dimension.
    """
    params = {key: value.detach() for key, value in model.named_parameters()}
    if not params:
        raise PlanError("the model has no parameters to train")
    examples = _tensor_inputs(example_inputs)
    clash = set(params) & set(examples)
    if clash:
        raise PlanError(f"input {sorted(clash)[0]!r} has the name of a parameter")
    state_specs = [
        InputSpec(key, InputKind.STATE, value.dtype, tuple(value.shape))
        for key, value in params.items()
    ]
    specs = state_specs + _input_specs(examples, hyperparameters)

    def call(values: dict[str, torch.Tensor]) -> Outputs:
        state = {key: values[key] for key in params}
        inputs = {key: values[key] for key in examples}
        result = fn(model, state, **inputs)
        missing = [key for key in params if key not in result]
        if missing:
            raise PlanError(
                f"a training plan must return every updated parameter under its "
                f"name; missing {missing[0]!r}"
            )
        for key, value in params.items():
            if tuple(result[key].shape) != tuple(value.shape):
                raise PlanError(
                    f"updated parameter {key!r} has shape {list(result[key].shape)}; "
                    f"the model's is {list(value.shape)}"
                )
        return result

    return trace_program(call, specs, {**params, **examples}, name, PlanKind.TRAINING)
