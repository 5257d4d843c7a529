"""Averaging plans in both styles fold diffs as their functions say."""

from __future__ import annotations

import pytest
import torch

from fedgrid.errors import PlanError
from fedgrid.plans import (
    IterativeAverager,
    Plan,
    PlanKind,
    average,
    load_torchscript,
    trace_averaging_plan,
)
from fedgrid.plans.examples import fedavg_iterative, fedavg_list, median_list

SHAPES = {"layer.weight": (4, 3), "layer.bias": (4,)}


def _state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(shape, generator=generator) for name, shape in SHAPES.items()
    }


def _stacked(diffs: list[dict[str, torch.Tensor]], name: str) -> torch.Tensor:
    return torch.stack([diff[name] for diff in diffs])


@pytest.fixture(scope="module")
def diffs() -> list[dict[str, torch.Tensor]]:
    return [_state(seed) for seed in range(5)]


def test_iterative_mean_equals_the_plain_mean(
    diffs: list[dict[str, torch.Tensor]],
) -> None:
    plan = trace_averaging_plan(fedavg_iterative, _state(99), style="iterative")

    result = average(Plan.from_bytes(plan.to_bytes()), diffs)

    assert plan.kind is PlanKind.AVERAGING_ITERATIVE
    assert plan.input_names[-1] == "n"
    for name in SHAPES:
        torch.testing.assert_close(result[name], _stacked(diffs, name).mean(dim=0))


def test_iterative_averager_folds_one_diff_at_a_time(
    diffs: list[dict[str, torch.Tensor]],
) -> None:
    plan = trace_averaging_plan(fedavg_iterative, _state(99), style="iterative")
    averager = IterativeAverager(plan)

    averager.add(diffs[0])
    first = averager.result()
    averager.add(diffs[1])

    torch.testing.assert_close(first["layer.bias"], diffs[0]["layer.bias"])
    expected = (diffs[0]["layer.bias"] + diffs[1]["layer.bias"]) / 2
    torch.testing.assert_close(averager.result()["layer.bias"], expected)
    assert averager.count == 2


@pytest.mark.parametrize("count", [1, 2, 5])
def test_list_mean_works_for_any_number_of_diffs(
    diffs: list[dict[str, torch.Tensor]], count: int
) -> None:
    plan = trace_averaging_plan(fedavg_list, _state(99), style="list")

    result = average(plan, diffs[:count])

    assert plan.inputs[0].shape == ("count", 4, 3)
    for name in SHAPES:
        torch.testing.assert_close(result[name], _stacked(diffs[:count], name).mean(0))


def test_list_median_resists_an_outlier(diffs: list[dict[str, torch.Tensor]]) -> None:
    plan = trace_averaging_plan(median_list, _state(99), style="list")
    poisoned = [*diffs[:4], {name: value * 1e6 for name, value in diffs[4].items()}]

    result = average(plan, poisoned)

    for name in SHAPES:
        expected = _stacked(poisoned, name).median(dim=0).values
        torch.testing.assert_close(result[name], expected)
        assert float(result[name].abs().max()) < 10.0


def test_averaging_plans_export_to_torchscript(
    diffs: list[dict[str, torch.Tensor]],
) -> None:
    plan = trace_averaging_plan(fedavg_list, _state(99), style="list")
    module = load_torchscript(plan.to_torchscript())

    for count in (1, 3):
        result = module(*[_stacked(diffs[:count], name) for name in SHAPES])
        expected = _stacked(diffs[:count], "layer.weight").mean(0)
        torch.testing.assert_close(result["layer.weight"], expected)


def test_averaging_refuses_wrong_input(diffs: list[dict[str, torch.Tensor]]) -> None:
    iterative = trace_averaging_plan(fedavg_iterative, _state(99))
    listed = trace_averaging_plan(fedavg_list, _state(99), style="list")

    with pytest.raises(PlanError, match=r"diff 1 has no tensor 'layer\.bias'"):
        average(iterative, [{"layer.weight": diffs[0]["layer.weight"]}])
    with pytest.raises(PlanError, match="nothing to average"):
        average(listed, [])
    with pytest.raises(PlanError, match=r"has dtype torch\.float64"):
        average(iterative, [{name: v.double() for name, v in diffs[0].items()}])
    with pytest.raises(PlanError, match="unknown averaging style 'median'"):
        trace_averaging_plan(fedavg_list, _state(99), style="median")
