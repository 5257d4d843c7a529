"""Built-in averaging methods against hand computations, and exclusions."""

from __future__ import annotations

import math

import pytest
import torch

from fedgrid.averaging import AveragingFailed, ModelLayout, average
from fedgrid.averaging.optimizers import initial_state
from fedgrid.averaging.planned import average_with_plan
from fedgrid.jobconfig import AveragingConfig
from fedgrid.plans import trace_averaging_plan
from tests.averaging.conftest import diff_report, random_diff


def test_fedavg_weights_diffs_by_sample_count(model: dict[str, torch.Tensor]) -> None:
    first, second = random_diff(1), random_diff(2)
    reports = [
        diff_report("a", first, samples=30, metrics={"loss": 1.0, "accuracy": 0.5}),
        diff_report("b", second, samples=10, metrics={"loss": 3.0, "accuracy": 0.9}),
    ]

    result = average(model, reports, AveragingConfig(method="fedavg"))

    expected = (
        model["fc.weight"] - (30 * first["fc.weight"] + 10 * second["fc.weight"]) / 40
    )
    assert torch.allclose(result.state["fc.weight"], expected, atol=1e-6)
    assert int(result.state["bn.num_batches_tracked"]) == 12  # 10 - (-2)
    assert result.metrics["loss"] == pytest.approx((30 * 1.0 + 10 * 3.0) / 40)
    assert result.metrics["accuracy"] == pytest.approx((30 * 0.5 + 10 * 0.9) / 40)
    assert result.metrics["num_samples"] == 40
    assert result.metrics["reports_used"] == 2
    assert result.metrics["reports_excluded"] == 0
    assert result.server_state is None


def test_mean_ignores_sample_counts(model: dict[str, torch.Tensor]) -> None:
    first, second = random_diff(1), random_diff(2)
    reports = [diff_report("a", first, 1000), diff_report("b", second, 0)]

    result = average(model, reports, AveragingConfig(method="mean"))

    expected = model["fc.bias"] - (first["fc.bias"] + second["fc.bias"]) / 2
    assert torch.allclose(result.state["fc.bias"], expected, atol=1e-6)
    assert result.metrics["num_samples"] == 1000


def test_server_learning_rate_scales_the_step(model: dict[str, torch.Tensor]) -> None:
    diff = random_diff(1)

    result = average(
        model,
        [diff_report("a", diff, 5)],
        AveragingConfig(method="fedavg", server_learning_rate=0.5),
    )

    assert torch.allclose(
        result.state["fc.bias"], model["fc.bias"] - 0.5 * diff["fc.bias"]
    )


def test_fedavgm_accumulates_momentum_across_cycles(
    model: dict[str, torch.Tensor],
) -> None:
    config = AveragingConfig(method="fedavgm", momentum=0.5)
    diff = random_diff(1)

    first = average(model, [diff_report("a", diff, 1)], config)
    second = average(
        first.state, [diff_report("b", diff, 1)], config, first.server_state
    )

    # m1 = d, m2 = 0.5 d + d: the model moves by d then by 1.5 d.
    assert torch.allclose(
        second.state["fc.bias"], model["fc.bias"] - 2.5 * diff["fc.bias"], atol=1e-6
    )
    assert second.server_state is not None
    assert int(second.server_state["step"]) == 2


@pytest.mark.parametrize("method", ["fedadam", "fedyogi", "fedadagrad"])
def test_adaptive_first_step_matches_the_paper(
    model: dict[str, torch.Tensor], method: str
) -> None:
    config = AveragingConfig(method=method, beta1=0.9, beta2=0.99, tau=1e-3)
    diff = random_diff(7)
    delta = diff["fc.weight"]

    result = average(model, [diff_report("a", diff, 3)], config)

    m = 0.1 * delta
    v0 = torch.full_like(delta, 1e-6)
    if method == "fedadam":
        v = 0.99 * v0 + 0.01 * delta**2
    elif method == "fedyogi":
        v = v0 - 0.01 * delta**2 * torch.sign(v0 - delta**2)
    else:
        v = v0 + delta**2
    expected = model["fc.weight"] - m / (v.sqrt() + 1e-3)
    assert torch.allclose(result.state["fc.weight"], expected, atol=1e-5)
    assert result.server_state is not None
    assert torch.allclose(result.server_state["v/fc.weight"], v)


def test_fedadam_over_ten_cycles_stays_finite(model: dict[str, torch.Tensor]) -> None:
    config = AveragingConfig(method="fedadam")
    state, server_state = model, None
    for cycle in range(10):
        reports = [
            diff_report(f"{cycle}-{i}", random_diff(cycle * 10 + i, scale=5.0), i + 1)
            for i in range(4)
        ]
        result = average(state, reports, config, server_state)
        state, server_state = result.state, result.server_state

    assert all(bool(torch.isfinite(t.float()).all()) for t in state.values())
    assert not torch.equal(state["fc.weight"], model["fc.weight"])
    assert server_state is not None and int(server_state["step"]) == 10


def test_stored_server_state_of_another_model_is_refused(
    model: dict[str, torch.Tensor],
) -> None:
    config = AveragingConfig(method="fedadam")
    foreign = initial_state(ModelLayout.of({"w": torch.zeros(2)}), config)

    with pytest.raises(Exception, match="server state does not fit"):
        average(model, [diff_report("a", random_diff(1), 1)], config, foreign)


def test_coordinate_median_and_trimmed_mean(model: dict[str, torch.Tensor]) -> None:
    values = [1.0, 2.0, 3.0, 100.0, -50.0]
    reports = [
        diff_report(
            str(i),
            {
                "fc.weight": torch.full((4, 3), v),
                "fc.bias": torch.full((4,), v),
                "bn.num_batches_tracked": torch.tensor(0),
            },
            1,
        )
        for i, v in enumerate(values)
    ]

    median = average(model, reports, AveragingConfig(method="median"))
    trimmed = average(
        model, reports, AveragingConfig(method="trimmed_mean", trim_ratio=0.2)
    )

    assert torch.allclose(median.state["fc.bias"], model["fc.bias"] - 2.0)
    assert torch.allclose(
        trimmed.state["fc.bias"], model["fc.bias"] - 2.0
    )  # mean(1,2,3)
    assert median.metrics["reports_used"] == 5


def test_median_of_an_even_count_averages_the_middle_pair(
    model: dict[str, torch.Tensor],
) -> None:
    reports = []
    for i, v in enumerate([4.0, 1.0, 2.0, 10.0]):
        diff = random_diff(i)
        diff["fc.weight"] = torch.full((4, 3), v)
        reports.append(diff_report(str(i), diff, 1))

    result = average(model, reports, AveragingConfig(method="median"))

    assert torch.allclose(result.state["fc.weight"], model["fc.weight"] - 3.0)


def test_robust_methods_work_in_small_memory_blocks() -> None:
    big = {"w": torch.zeros(1000)}
    diffs = [torch.randn(1000) for _ in range(7)]
    reports = [diff_report(str(i), {"w": d}, 1) for i, d in enumerate(diffs)]
    from fedgrid.averaging.robust import robust_mean

    mean, tally = robust_mean(reports, ModelLayout.of(big), "median", memory_budget=500)

    assert torch.allclose(mean["w"], torch.stack(diffs).median(dim=0).values)
    assert tally.used == 7


def test_all_zero_sample_counts_fail_weighted_averaging(
    model: dict[str, torch.Tensor],
) -> None:
    reports = [diff_report(str(i), random_diff(i), 0) for i in range(3)]

    with pytest.raises(AveragingFailed, match="all 3 reports were excluded"):
        average(model, reports, AveragingConfig(method="fedavg"))


@pytest.mark.parametrize("bad", [-3, "12", None, math.nan, True])
def test_bad_sample_count_is_excluded_and_the_rest_used(
    model: dict[str, torch.Tensor], bad: object
) -> None:
    good = random_diff(1)
    reports = [diff_report("good", good, 4), diff_report("bad", random_diff(2), bad)]

    result = average(model, reports, AveragingConfig(method="fedavg"))

    assert torch.allclose(result.state["fc.bias"], model["fc.bias"] - good["fc.bias"])
    assert list(result.excluded) == ["bad"]
    assert "sample count" in result.excluded["bad"]
    assert result.metrics["reports_excluded"] == 1


def test_mismatched_shape_among_good_diffs_is_excluded(
    model: dict[str, torch.Tensor],
) -> None:
    first, second = random_diff(1), random_diff(2)
    wrong = random_diff(3)
    wrong["fc.weight"] = torch.zeros(3, 4)
    reports = [
        diff_report("a", first, 1),
        diff_report("wrong", wrong, 1),
        diff_report("b", second, 1),
    ]

    result = average(model, reports, AveragingConfig(method="fedavg"))

    expected = model["fc.weight"] - (first["fc.weight"] + second["fc.weight"]) / 2
    assert torch.allclose(result.state["fc.weight"], expected, atol=1e-6)
    assert "fc.weight" in result.excluded["wrong"]
    assert result.metrics["reports_used"] == 2


def test_nan_diff_is_excluded(model: dict[str, torch.Tensor]) -> None:
    good, poisoned = random_diff(1), random_diff(2)
    poisoned["fc.bias"][2] = math.nan

    result = average(
        model,
        [diff_report("nan", poisoned, 1), diff_report("good", good, 1)],
        AveragingConfig(method="fedavg"),
    )

    assert torch.allclose(result.state["fc.bias"], model["fc.bias"] - good["fc.bias"])
    assert "NaN" in result.excluded["nan"]


@pytest.mark.parametrize("method", ["fedavg", "median"])
def test_nothing_usable_raises(model: dict[str, torch.Tensor], method: str) -> None:
    poisoned = random_diff(1)
    poisoned["fc.weight"][0, 0] = math.inf

    with pytest.raises(AveragingFailed, match="excluded"):
        average(model, [diff_report("x", poisoned, 1)], AveragingConfig(method=method))


def test_overflow_to_inf_never_becomes_a_model() -> None:
    model = {"w": torch.full((2,), 3e38)}
    diff = {"w": torch.full((2,), -3e38)}

    with pytest.raises(AveragingFailed, match="NaN or Inf"):
        average(model, [diff_report("a", diff, 1)], AveragingConfig(method="fedavg"))


@pytest.mark.parametrize("style", ["iterative", "list"])
def test_user_averaging_plan_in_both_styles(
    model: dict[str, torch.Tensor], style: str
) -> None:
    def running_mean(avg, diff, n):  # type: ignore[no-untyped-def]
        return {k: avg[k] + (diff[k] - avg[k]) / n for k in avg}

    def stacked_mean(diffs):  # type: ignore[no-untyped-def]
        return {k: diffs[k].mean(dim=0) for k in diffs}

    floats = {k: v for k, v in model.items() if v.is_floating_point()}
    fn = running_mean if style == "iterative" else stacked_mean
    plan = trace_averaging_plan(fn, floats, style=style)  # type: ignore[arg-type]
    first, second = random_diff(1), random_diff(2)
    for diff in (first, second):
        del diff["bn.num_batches_tracked"]
    broken = random_diff(3)
    del broken["bn.num_batches_tracked"]
    broken["fc.bias"][0] = math.nan
    reports = [
        diff_report("a", first, 2, {"loss": 1.0}),
        diff_report("nan", broken, 2),
        diff_report("b", second, 6, {"loss": 2.0}),
    ]

    result = average_with_plan(floats, reports, plan)

    mean = (first["fc.weight"] + second["fc.weight"]) / 2
    expected = floats["fc.weight"] - mean
    assert torch.allclose(result.state["fc.weight"], expected, atol=1e-6)
    assert list(result.excluded) == ["nan"]
    assert result.metrics["loss"] == pytest.approx(1.75)
