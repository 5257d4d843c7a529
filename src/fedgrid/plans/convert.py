"""From the fx graph make_fx records to a plan Program of opset nodes."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import fx

from fedgrid.errors import PlanError
from fedgrid.plans.ir import Argument, InputSpec, Node, PlanKind, Program, Ref
from fedgrid.plans.opset import load_opset, op_name

# Ops that only matter to autograd; in a plan they are the identity.
_IDENTITY_OPS = {"aten.detach.default", "aten.alias.default"}


def fold_double_transposes(graph: fx.Graph) -> None:
    """Read x where the backward pass transposes a transpose of x."""
    if any(_writes(node) for node in graph.nodes):
        return  # a view and its source differ once something writes in place
    transpose = torch.ops.aten.t.default
    for node in graph.nodes:
        source = node.args[0] if node.target is transpose else None
        if isinstance(source, fx.Node) and source.target is transpose:
            node.replace_all_uses_with(source.args[0])


class GraphConverter:
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
            by_index = {int(cast(int, user.args[1])): user for user in getters}
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
