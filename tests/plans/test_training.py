"""Traced training plans match eager PyTorch at any batch size, in every form."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fedgrid.plans import InputKind, Plan, load_torchscript, trace_training_plan
from fedgrid.plans.examples import DigitsMLP, sgd_training_step
from tests.plans.conftest import BATCH_SIZES, Case

LR = torch.tensor(0.1)


def _assert_same(
    actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]
) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, rtol=1e-5, atol=1e-6, msg=key)


def test_plan_describes_its_inputs_and_outputs(mlp_case: Case) -> None:
    plan = mlp_case.plan

    assert plan.state_names == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert plan.input_names == [*plan.state_names, "data", "target", "lr"]
    assert plan.output_names == ["loss", "accuracy", *plan.state_names]
    kinds = {spec.name: (spec.kind, spec.shape) for spec in plan.inputs}
    assert kinds["data"] == (InputKind.DATA, ("batch", 64))
    assert kinds["target"] == (InputKind.DATA, ("batch",))
    assert kinds["lr"] == (InputKind.HYPERPARAMETER, ())
    assert {"aten.addmm.default", "aten.threshold_backward.default"} <= plan.ops


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_interpreter_matches_eager(case: Case, size: int) -> None:
    params = case.params()
    data, target = case.batch(size, seed=size)

    result = case.plan.run_with({**params, "data": data, "target": target, "lr": LR})

    expected = sgd_training_step(case.model, params, data, target, LR)
    _assert_same(result, expected)


@pytest.mark.parametrize("size", BATCH_SIZES)
def test_plan_from_bytes_matches_eager(case: Case, size: int) -> None:
    plan = Plan.from_bytes(case.plan.to_bytes())
    params = case.params()
    data, target = case.batch(size, seed=100 + size)

    result = plan.run_with({**params, "data": data, "target": target, "lr": LR})

    expected = sgd_training_step(case.model, params, data, target, LR)
    _assert_same(result, expected)


def test_round_trip_keeps_the_plan(case: Case) -> None:
    data = case.plan.to_bytes()

    again = Plan.from_bytes(data)

    assert again.program == case.plan.program
    assert again.to_bytes() == data


def test_torchscript_matches_eager_at_every_batch_size(case: Case) -> None:
    module = load_torchscript(case.plan.to_torchscript())
    params = case.params()

    assert module.input_names() == case.plan.input_names
    assert module.output_names() == case.plan.output_names
    for size in (*BATCH_SIZES, 7):
        data, target = case.batch(size, seed=200 + size)
        result = module(*params.values(), data, target, LR)
        expected = sgd_training_step(case.model, params, data, target, LR)
        _assert_same(dict(result), expected)


def test_autograd_style_step_traces_too() -> None:
    model = DigitsMLP()

    def step(model, params, data, target, lr):  # type: ignore[no-untyped-def]
        logits = torch.func.functional_call(model, params, (data,))
        loss = F.cross_entropy(logits, target)
        grads = torch.autograd.grad(loss, list(params.values()))
        pairs = zip(params.items(), grads, strict=True)
        updated = {key: value - lr * g for (key, value), g in pairs}
        return {"loss": loss, **updated}

    example = {"data": torch.randn(4, 64), "target": torch.randint(0, 10, (4,))}
    plan = trace_training_plan(step, model, {**example, "lr": 0.05})
    params = {key: value.detach() for key, value in model.named_parameters()}
    data, target = torch.randn(9, 64), torch.randint(0, 10, (9,))

    result = plan.run_with({**params, "data": data, "target": target, "lr": 0.05})

    expected = sgd_training_step(model, params, data, target, torch.tensor(0.05))
    for key in ["loss", *params]:
        torch.testing.assert_close(result[key], expected[key], rtol=1e-5, atol=1e-6)


def test_plan_trains_on_digits(mlp_case: Case) -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    data = torch.tensor(digits.data[:256] / 16.0, dtype=torch.float32)
    target = torch.tensor(digits.target[:256], dtype=torch.int64)
    state = mlp_case.params()
    plan = Plan.from_bytes(mlp_case.plan.to_bytes())

    losses = []
    for _ in range(60):
        result = plan.run_with({**state, "data": data, "target": target, "lr": 0.5})
        state = {key: result[key] for key in state}
        losses.append(float(result["loss"]))

    assert losses[-1] < 0.5 * losses[0]
    assert float(result["accuracy"]) > 0.8


def test_export_and_load_raise_no_torch_jit_warning(mlp_case: Case) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_torchscript(mlp_case.plan.to_torchscript())

    assert [str(item.message) for item in caught] == []


def test_formats_follow_the_targets(cnn_case: Case) -> None:
    served = cnn_case.plan.formats(["python", "torchscript"])

    assert sorted(served) == ["ops", "torchscript"]
    assert Plan.from_bytes(served["ops"]).program == cnn_case.plan.program
    assert load_torchscript(served["torchscript"]).output_names()[0] == "loss"


def test_sequential_model_with_in_place_relu() -> None:
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(inplace=True), nn.Linear(16, 10))
    example = {"data": torch.randn(4, 64), "target": torch.randint(0, 10, (4,))}
    plan = trace_training_plan(sgd_training_step, model, {**example, "lr": 0.1})
    module = load_torchscript(plan.to_torchscript())
    params = {key: value.detach() for key, value in model.named_parameters()}
    data, target = torch.randn(9, 64), torch.randint(0, 10, (9,))

    result = plan.run_with({**params, "data": data, "target": target, "lr": 0.1})
    scripted = module(*params.values(), data, target, LR)

    assert plan.state_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    expected = sgd_training_step(model, params, data, target, LR)
    _assert_same(result, expected)
    _assert_same(dict(scripted), expected)
