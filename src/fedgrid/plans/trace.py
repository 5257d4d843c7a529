"""Tracing Python functions over tensors into plans of aten operators."""

from __future__ import annotations

import logging
import operator
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
from fedgrid.plans.ir import (
    BATCH,
    Argument,
    InputKind,
    InputSpec,
    Node,
    PlanKind,
    Program,
    Ref,
    check_name,
)
from fedgrid.plans.opset import load_opset, op_name
from fedgrid.plans.plan import Plan

logger = logging.getLogger(__name__)

Outputs = Mapping[str, torch.Tensor]
Call = Callable[[dict[str, torch.Tensor]], Outputs]

# Ops that only matter to autograd; in a plan they are the identity.
_IDENTITY_OPS = {"aten.detach.default", "aten.alias.default"}


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
    _fold_double_transposes(graph_module.graph)
    graph_module.graph.eliminate_dead_code()
    return graph_module, output_names


def _fold_double_transposes(graph: fx.Graph) -> None:
    """Read x where the backward pass transposes a transpose of x."""
    if any(_writes(node) for node in graph.nodes):
        return  # a view and its source differ once something writes in place
    transpose = torch.ops.aten.t.default
    for node in graph.nodes:
        source = node.args[0] if node.target is transpose else None
        if isinstance(source, fx.Node) and source.target is transpose:
            node.replace_all_uses_with(source.args[0])


class _Converter:
    """Turns an fx graph from make_fx into a plan Program."""

    def __init__(self, module: fx.GraphModule, specs: Sequence[InputSpec]) -> None:
        self.module = module
        self.specs = specs
        self.values: dict[fx.Node, str] = {}
        self.taken = {spec.name for spec in specs}
        self.constants: dict[str, torch.Tensor] = {}
        self.nodes: list[Node] = []
        self.computed: dict[tuple[str, str, str], tuple[str, ...]] = {}
        self.reuse = not any(_writes(node) for node in module.graph.nodes)
        self.opset = load_opset()

    def _fresh(self, base: str) -> str:
        candidate, counter = base, 0
        while candidate in self.taken:
            counter += 1
            candidate = f"{base}_{counter}"
        self.taken.add(candidate)
        return candidate

    def _argument(self, value: Any) -> Argument:
        if isinstance(value, fx.Node):
            if value not in self.values:
                raise PlanError(
                    f"value {value.name!r} is used in a way plans cannot hold"
                )
            return Ref(self.values[value])
        if isinstance(value, (list, tuple)):
            return tuple(self._argument(item) for item in value)
        if value is None or isinstance(
            value,
            (bool, int, float, str, torch.dtype, torch.device, torch.layout),
        ):
            return value
        if isinstance(value, torch.memory_format):
            return value
        raise PlanError(
            f"argument {value!r} of type {type(value).__name__} cannot be traced"
        )

    def _call(self, node: fx.Node) -> None:
        if node.target is operator.getitem:
            return  # folded into the node that produced the tuple
        name = op_name(node.target)
        if name in _IDENTITY_OPS:
            self.values[node] = self.values[node.args[0]]  # type: ignore[index]
            return
        if name not in self.opset:
            raise PlanError(
                f"the function uses op {name!r}, which is not in the opset "
                f"(version {self.opset.version})"
            )
        args = tuple(self._argument(value) for value in node.args)
        kwargs = tuple(
            (key, self._argument(value)) for key, value in node.kwargs.items()
        )
        key = (name, repr(args), repr(kwargs))  # repr keeps 1 and 1.0 apart
        getters = [user for user in node.users if user.target is operator.getitem]
        if getters:
            if len(getters) != len(node.users):
                raise PlanError(f"op {name!r}: its results are used as a whole")
            by_index = {int(user.args[1]): user for user in getters}  # type: ignore[arg-type]
            earlier = self.computed.get(key)
            if earlier is not None and all(earlier[i] for i in by_index):
                for position, part in by_index.items():
                    self.values[part] = earlier[position]
                return
            width = _result_count(node, max(by_index) + 1)
            outputs = []
            for position in range(width):
                if position not in by_index:
                    outputs.append("")
                    continue
                part = by_index[position]
                self.values[part] = self._fresh(part.name)
                outputs.append(self.values[part])
            self._emit(key, Node(name, args, kwargs, tuple(outputs)))
            return
        if key in self.computed:
            (self.values[node],) = self.computed[key]
            return
        self.values[node] = self._fresh(node.name)
        self._emit(key, Node(name, args, kwargs, (self.values[node],)))

    def _emit(self, key: tuple[str, str, str], node: Node) -> None:
        self.nodes.append(node)
        # The same call on the same values gives the same result, unless
        # something in the graph writes in place.
        if self.reuse:
            self.computed[key] = node.outputs

    def convert(
        self, name: str, kind: PlanKind, output_names: Sequence[str]
    ) -> Program:
        placeholders = iter(self.specs)
        outputs: list[tuple[str, str]] = []
        for node in self.module.graph.nodes:
            if node.op == "placeholder":
                self.values[node] = next(placeholders).name
            elif node.op == "get_attr":
                tensor = getattr(self.module, node.target)
                constant = self._fresh(f"constant{len(self.constants)}")
                self.constants[constant] = tensor.detach().clone().contiguous()
                self.values[node] = constant
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                results = node.args[0]
                for output, value in zip(output_names, results, strict=True):
                    if not isinstance(value, fx.Node) or value not in self.values:
                        raise PlanError(f"output {output!r} is not a tensor")
                    outputs.append((output, self.values[value]))
            else:
                raise PlanError(f"unexpected graph node {node.op} ({node.name})")
        return Program(
            name=name,
            kind=kind,
            opset_version=self.opset.version,
            inputs=tuple(self.specs),
            outputs=tuple(outputs),
            nodes=tuple(self.nodes),
            constants=self.constants,
        )


def _writes(node: fx.Node) -> bool:
    target = node.target
    return isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable


def _result_count(node: fx.Node, used: int) -> int:
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        returns = target._schema.returns
        if len(returns) > 1:
            return len(returns)
    value = node.meta.get("val")
    if isinstance(value, (list, tuple)):
        return len(value)
    return used


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
    program = _Converter(module, specs).convert(name, kind, output_names)
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
