"""Structural checks of a plan before anything runs it: ops, refs and arity."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fedgrid.errors import PlanError
from fedgrid.plans.ir import (
    BATCH,
    COUNT,
    Argument,
    Node,
    Program,
    Ref,
    check_name,
    node_refs,
)
from fedgrid.plans.opset import SYM_ARITY, Opset, aten_overload

SYMBOLS = (BATCH, COUNT)
TENSOR = "tensor"
INT = "int"


@dataclass(frozen=True)
class NodeInfo:
    """What checking learned about a node: its operator and result layout."""

    overload: torch._ops.OpOverload | None  # None for size arithmetic
    multiple: bool  # the op returns a tuple or list of results


def _where(index: int, node: Node) -> str:
    return f"node {index} ({node.op})"


def _check_inputs(program: Program, kinds: dict[str, str]) -> None:
    for spec in program.inputs:
        check_name(spec.name, "input")
        if spec.name in kinds:
            raise PlanError(f"input {spec.name!r} is declared twice")
        for dim in spec.shape:
            if isinstance(dim, str) and dim not in SYMBOLS:
                raise PlanError(f"input {spec.name!r} has unknown size symbol {dim!r}")
            if isinstance(dim, int) and dim < 0:
                raise PlanError(f"input {spec.name!r} has a negative size {dim}")
        kinds[spec.name] = TENSOR
    for name in program.constants:
        check_name(name, "constant")
        if name in kinds:
            raise PlanError(f"constant {name!r} has the name of another value")
        kinds[name] = TENSOR


def _check_arity(index: int, node: Node, schema: torch._C.FunctionSchema) -> None:
    parameters = list(schema.arguments)
    positional = [p for p in parameters if not p.kwarg_only]
    if len(node.args) > len(positional):
        raise PlanError(
            f"{_where(index, node)}: {len(node.args)} positional arguments; "
            f"the op takes at most {len(positional)}"
        )
    given = {p.name for p in positional[: len(node.args)]}
    known = {p.name for p in parameters}
    for key, _ in node.kwargs:
        if key not in known:
            raise PlanError(f"{_where(index, node)}: unknown keyword argument {key!r}")
        if key in given:
            raise PlanError(f"{_where(index, node)}: argument {key!r} is given twice")
        given.add(key)
    for parameter in parameters:
        if parameter.name not in given and not parameter.has_default_value():
            raise PlanError(
                f"{_where(index, node)}: missing argument {parameter.name!r} "
                f"(wrong arity: {len(node.args)} given)"
            )


def _check_tensor_args(
    index: int,
    node: Node,
    schema: torch._C.FunctionSchema,
    kinds: dict[str, str],
    read_only: set[str],
) -> None:
    bound: list[tuple[torch._C.Argument, Argument]] = list(
        zip(schema.arguments, node.args, strict=False)
    )
    by_name = {p.name: p for p in schema.arguments}
    bound.extend((by_name[key], value) for key, value in node.kwargs)
    for parameter, value in bound:
        if str(parameter.type) != "Tensor":
            continue
        # A size may stand where a tensor goes (torch wraps it as a scalar).
        if not isinstance(value, Ref) or value.name not in kinds:
            raise PlanError(
                f"{_where(index, node)}: argument {parameter.name!r} must refer "
                f"to a tensor, got {value!r}"
            )
        alias = parameter.alias_info
        if alias is not None and alias.is_write and value.name in read_only:
            raise PlanError(
                f"{_where(index, node)}: changes {value.name!r} in place; a plan "
                "may not write into its inputs or constants"
            )


def _views_read_only(
    node: Node, schema: torch._C.FunctionSchema, read_only: set[str]
) -> bool:
    """Whether the node returns a view of an input or a constant."""
    if not any(result.alias_info is not None for result in schema.returns):
        return False
    return any(
        parameter.alias_info is not None
        and isinstance(value, Ref)
        and value.name in read_only
        for parameter, value in zip(schema.arguments, node.args, strict=False)
    )


def _define_outputs(
    index: int, node: Node, info: NodeInfo, kinds: dict[str, str]
) -> None:
    if not node.outputs:
        raise PlanError(f"{_where(index, node)}: names no result")
    if not info.multiple and len(node.outputs) != 1:
        raise PlanError(
            f"{_where(index, node)}: the op has one result; "
            f"{len(node.outputs)} names given"
        )
    if info.overload is not None and info.multiple:
        returns = info.overload._schema.returns
        is_list = len(returns) == 1
        if not is_list and len(node.outputs) != len(returns):
            raise PlanError(
                f"{_where(index, node)}: the op has {len(returns)} results; "
                f"{len(node.outputs)} names given"
            )
    kind = INT if info.overload is None or _returns_int(info.overload) else TENSOR
    for name in node.outputs:
        if not name:
            continue
        check_name(name, "value")
        if name in kinds:
            raise PlanError(f"{_where(index, node)}: value {name!r} is defined twice")
        kinds[name] = kind


def _returns_int(overload: torch._ops.OpOverload) -> bool:
    returns = overload._schema.returns
    return len(returns) == 1 and str(returns[0].type) in ("int", "SymInt")


def _node_info(index: int, node: Node, opset: Opset) -> NodeInfo:
    if node.op not in opset:
        raise PlanError(
            f"{_where(index, node)}: op {node.op!r} is not in the opset "
            f"(version {opset.version})"
        )
    if node.op in SYM_ARITY:
        if node.kwargs or len(node.args) != SYM_ARITY[node.op]:
            raise PlanError(
                f"{_where(index, node)}: wrong arity: takes "
                f"{SYM_ARITY[node.op]} arguments, {len(node.args)} given"
            )
        return NodeInfo(overload=None, multiple=False)
    overload = aten_overload(node.op)
    returns = overload._schema.returns
    multiple = len(returns) > 1 or (
        len(returns) == 1 and str(returns[0].type).startswith("List[")
    )
    return NodeInfo(overload=overload, multiple=multiple)


def check_program(program: Program, opset: Opset) -> list[NodeInfo]:
    """Refuse a plan with unknown ops, unknown refs or wrong arity.

    Every message names the node index and op, so a person can find the
    offending call in the plan.
    """
    check_name(program.name, "plan")
    if program.opset_version > opset.version:
        raise PlanError(
            f"plan {program.name!r} needs opset version {program.opset_version}; "
            f"this grid has version {opset.version}"
        )
    kinds: dict[str, str] = {}
    _check_inputs(program, kinds)
    read_only = set(kinds)
    infos: list[NodeInfo] = []
    for index, node in enumerate(program.nodes):
        info = _node_info(index, node, opset)
        for name in node_refs(node):
            if name not in kinds:
                raise PlanError(f"{_where(index, node)}: unknown ref {name!r}")
        if info.overload is not None:
            schema = info.overload._schema
            _check_arity(index, node, schema)
            _check_tensor_args(index, node, schema, kinds, read_only)
            if _views_read_only(node, schema, read_only):
                read_only.update(name for name in node.outputs if name)
        _define_outputs(index, node, info, kinds)
        infos.append(info)

    seen: set[str] = set()
    for name, ref in program.outputs:
        check_name(name, "output")
        if name in seen:
            raise PlanError(f"output {name!r} is declared twice")
        seen.add(name)
        if kinds.get(ref) != TENSOR:
            raise PlanError(f"output {name!r} refers to unknown tensor {ref!r}")
    return infos
