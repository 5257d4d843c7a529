"""Bad plans, bad inputs and untraceable functions are refused with PlanError."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from fedgrid.errors import PlanError
from fedgrid.plans import InputKind, InputSpec, Plan, PlanKind, trace_plan
from fedgrid.plans.ir import Node, Program, Ref
from fedgrid.plans.opset import Opset, load_opset
from fedgrid.plans.serialize import program_to_bytes
from tests.plans.conftest import Case


def _with_node(program: Program, index: int, node: Node) -> bytes:
    nodes = list(program.nodes)
    nodes[index] = node
    return program_to_bytes(dataclasses.replace(program, nodes=tuple(nodes)))


def _find(program: Program, op: str) -> int:
    return next(i for i, node in enumerate(program.nodes) if node.op == op)


def test_op_outside_the_allowlist_is_refused(mlp_case: Case) -> None:
    program = mlp_case.plan.program
    index = _find(program, "aten.relu.default")
    node = dataclasses.replace(program.nodes[index], op="aten.bernoulli.default")

    with pytest.raises(PlanError) as error:
        Plan.from_bytes(_with_node(program, index, node))

    assert str(error.value) == (
        f"node {index} (aten.bernoulli.default): op 'aten.bernoulli.default' is "
        f"not in the opset (version {load_opset().version})"
    )


def test_unknown_ref_is_refused(mlp_case: Case) -> None:
    program = mlp_case.plan.program
    index = _find(program, "aten.relu.default")
    node = dataclasses.replace(program.nodes[index], args=(Ref("ghost"),))

    with pytest.raises(PlanError, match=rf"^node {index} \(aten.relu.default\): "):
        Plan.from_bytes(_with_node(program, index, node))
    with pytest.raises(PlanError, match="unknown ref 'ghost'"):
        Plan.from_bytes(_with_node(program, index, node))


def test_unknown_output_ref_is_refused(mlp_case: Case) -> None:
    program = mlp_case.plan.program
    outputs = (("loss", "ghost"), *program.outputs[1:])
    data = program_to_bytes(dataclasses.replace(program, outputs=outputs))

    with pytest.raises(
        PlanError, match="output 'loss' refers to unknown tensor 'ghost'"
    ):
        Plan.from_bytes(data)


def test_missing_argument_is_refused_as_wrong_arity(mlp_case: Case) -> None:
    program = mlp_case.plan.program
    index = _find(program, "aten.addmm.default")
    node = program.nodes[index]
    short = dataclasses.replace(node, args=node.args[:2])

    with pytest.raises(PlanError) as error:
        Plan.from_bytes(_with_node(program, index, short))

    assert str(error.value) == (
        f"node {index} (aten.addmm.default): missing argument 'mat2' "
        "(wrong arity: 2 given)"
    )


def test_too_many_arguments_are_refused(mlp_case: Case) -> None:
    program = mlp_case.plan.program
    index = _find(program, "aten.relu.default")
    node = program.nodes[index]
    long = dataclasses.replace(node, args=(*node.args, 1, 2))

    with pytest.raises(PlanError) as error:
        Plan.from_bytes(_with_node(program, index, long))

    assert str(error.value) == (
        f"node {index} (aten.relu.default): 3 positional arguments; "
        "the op takes at most 1"
    )


def test_integer_where_a_tensor_belongs_is_refused(mlp_case: Case) -> None:
    program = mlp_case.plan.program
    index = _find(program, "aten.relu.default")
    node = dataclasses.replace(program.nodes[index], args=(3,))

    with pytest.raises(PlanError, match="argument 'self' must refer to a tensor"):
        Plan.from_bytes(_with_node(program, index, node))


def test_input_dtype_mismatch_is_refused_at_run_time(mlp_case: Case) -> None:
    inputs = {**mlp_case.params(), "target": torch.zeros(3, dtype=torch.int64)}
    inputs["lr"] = torch.tensor(0.1)
    inputs["data"] = torch.zeros(3, 64, dtype=torch.float64)

    with pytest.raises(PlanError) as error:
        mlp_case.plan.run_with(inputs)

    assert str(error.value) == (
        "input 'data' has dtype torch.float64; the plan expects torch.float32"
    )


def test_shape_mismatches_are_refused_at_run_time(mlp_case: Case) -> None:
    inputs = {**mlp_case.params(), "lr": torch.tensor(0.1)}
    inputs["target"] = torch.zeros(4, dtype=torch.int64)

    inputs["data"] = torch.zeros(3, 63)
    with pytest.raises(PlanError, match="'data' has size 63 on dimension 1; the plan "):
        mlp_case.plan.run_with(inputs)
    inputs["data"] = torch.zeros(3, 64)
    with pytest.raises(PlanError, match="'target' has batch size 4 on dimension 0"):
        mlp_case.plan.run_with(inputs)


def test_missing_and_unknown_inputs_are_refused(mlp_case: Case) -> None:
    inputs = {**mlp_case.params(), "data": torch.zeros(2, 64), "lr": 0.1}

    with pytest.raises(PlanError, match="missing input 'target'"):
        mlp_case.plan.run_with(inputs)
    inputs["target"] = torch.zeros(2, dtype=torch.int64)
    with pytest.raises(PlanError, match="unknown input 'extra'"):
        mlp_case.plan.run_with({**inputs, "extra": torch.zeros(1)})


def test_dtype_mismatch_inside_an_op_names_the_node() -> None:
    program = Program(
        name="bad_mm",
        kind=PlanKind.GENERIC,
        opset_version=1,
        inputs=(
            InputSpec("a", InputKind.DATA, torch.float32, ("batch", 3)),
            InputSpec("b", InputKind.HYPERPARAMETER, torch.int64, (3, 2)),
        ),
        outputs=(("out", "product"),),
        nodes=(Node("aten.mm.default", (Ref("a"), Ref("b")), (), ("product",)),),
    )
    plan = Plan.from_bytes(program_to_bytes(program))

    with pytest.raises(PlanError) as error:
        plan.run(a=torch.ones(2, 3), b=torch.ones(3, 2, dtype=torch.int64))

    assert str(error.value).startswith(
        "plan 'bad_mm', node 0 (aten.mm.default) failed:"
    )
    assert "dtype" in str(error.value)


def test_truncated_bytes_are_refused_wherever_they_stop(mlp_case: Case) -> None:
    data = mlp_case.plan.to_bytes()

    for cut in (
        0,
        1,
        2,
        10,
        len(data) // 3,
        len(data) // 2,
        len(data) - 33,
        len(data) - 1,
    ):
        with pytest.raises(PlanError, match="truncated"):
            Plan.from_bytes(data[:cut])


def test_damaged_bytes_are_refused(mlp_case: Case) -> None:
    data = bytearray(mlp_case.plan.to_bytes())
    data[len(data) // 2] ^= 0xFF

    with pytest.raises(PlanError, match=r"damaged|truncated"):
        Plan.from_bytes(bytes(data))


def test_validate_names_the_op_and_the_target(cnn_case: Case) -> None:
    cnn_case.plan.validate(["python", "torchscript"])

    with pytest.raises(PlanError) as error:
        cnn_case.plan.validate(["python", "browser"])

    assert str(error.value) == (
        "op 'aten.max_pool2d_with_indices.default' cannot run on target 'browser' "
        f"(opset version {load_opset().version})"
    )
    with pytest.raises(PlanError, match="unknown plan target 'phone'"):
        cnn_case.plan.validate(["phone"])


def test_export_names_the_op_and_the_format(mlp_case: Case) -> None:
    opset = load_opset()
    ops = dict(opset.ops)
    ops["aten.addmm.default"] = frozenset({"python"})
    narrow = Opset(version=opset.version, targets=opset.targets, ops=ops)
    plan = Plan(mlp_case.plan.program, narrow)
    index = _find(plan.program, "aten.addmm.default")

    with pytest.raises(PlanError) as error:
        plan.to_torchscript()

    assert str(error.value) == (
        "plan 'mlp_training' cannot be exported to torchscript: node "
        f"{index} uses op 'aten.addmm.default', which torchscript cannot run"
    )


def test_newer_opset_version_is_refused(mlp_case: Case) -> None:
    program = dataclasses.replace(mlp_case.plan.program, opset_version=999)

    with pytest.raises(PlanError, match="needs opset version 999"):
        Plan.from_bytes(program_to_bytes(program))


def test_tracing_refuses_a_fixed_batch_size() -> None:
    def flatten_five(data: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"flat": data.view(5, -1) * 2}

    with pytest.raises(
        PlanError, match="only works when input 'data' has batch size 5"
    ):
        trace_plan(flatten_five, {"data": torch.randn(5, 4)})


def test_tracing_refuses_ops_outside_the_opset() -> None:
    def noisy(data: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": torch.nn.functional.dropout(data, 0.5)}

    with pytest.raises(
        PlanError, match=r"uses op 'aten\.\w+\.\w+', which is not in the opset"
    ):
        trace_plan(noisy, {"data": torch.randn(4, 3)})


def test_tracing_refuses_writes_into_inputs() -> None:
    def scale_in_place(data: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": torch.relu_(data)}

    with pytest.raises(PlanError, match="changes 'data' in place; a plan may not"):
        trace_plan(scale_in_place, {"data": torch.randn(4, 3)})


def test_tracing_refuses_writes_into_views_of_inputs() -> None:
    def clamp_a_view(data: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": torch.relu_(data.t())}

    with pytest.raises(PlanError, match=r"node 1 \(aten\.relu_\.default\): changes"):
        trace_plan(clamp_a_view, {"data": torch.randn(4, 3)})


def test_a_training_plan_must_return_every_parameter(mlp_case: Case) -> None:
    from fedgrid.plans import trace_training_plan

    def forgetful(model, params, data, target, lr):  # type: ignore[no-untyped-def]
        return {"loss": data.sum()}

    example: dict[str, torch.Tensor | float] = {
        "data": torch.randn(3, 64),
        "target": torch.zeros(3),
        "lr": 0.1,
    }
    with pytest.raises(PlanError, match=r"missing 'fc1\.weight'"):
        trace_training_plan(forgetful, mlp_case.model, example)
