"""Folding diffs unchecked, and starting over checked when the sum is not finite."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping

import pytest
import torch

from fedgrid.averaging import (
    AveragingFailed,
    DiffBuffer,
    DiffRejected,
    ModelLayout,
    ReportInput,
    WeightedSum,
    average,
    parse_diff,
)
from fedgrid.jobconfig import AveragingConfig
from fedgrid.tensors import state_stream_bytes
from tests.averaging.conftest import diff_report, model_state, random_diff


class CountingReports:
    """Reports whose loads are counted, to see which diffs were read twice."""

    def __init__(self) -> None:
        self.loads: Counter[str] = Counter()

    def report(
        self, key: str, diff: Mapping[str, torch.Tensor], samples: float = 1
    ) -> ReportInput:
        data = state_stream_bytes(diff)

        def load(_buffer: DiffBuffer) -> bytes:
            self.loads[key] += 1
            return data

        return ReportInput(key, samples, {"loss": float(samples)}, load)


def folded(reports: list[ReportInput], weighted: bool = True) -> WeightedSum:
    sums = WeightedSum(ModelLayout.of(model_state()))
    sums.fold_reports(reports, weighted)
    return sums


def assert_same_sum(actual: WeightedSum, expected: WeightedSum) -> None:
    for name, total in expected.sums.items():
        assert torch.equal(actual.sums[name], total), name
    assert actual.total_weight == expected.total_weight
    assert actual.tally.used == expected.tally.used
    assert actual.tally.metric_sums == expected.tally.metric_sums
    assert actual.tally.num_samples == expected.tally.num_samples


def poisoned(seed: int, value: float) -> dict[str, torch.Tensor]:
    diff = random_diff(seed)
    diff["fc.weight"][1, 2] = value
    return diff


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_one_bad_diff_among_good_ones_is_excluded_and_the_sum_exact(
    value: float,
) -> None:
    counting = CountingReports()
    good = {key: random_diff(seed) for seed, key in enumerate("abc")}
    weights = {"a": 3, "b": 2, "c": 4}
    reports = [
        counting.report("a", good["a"], 3),
        counting.report("bad", poisoned(7, value), 5),
        counting.report("b", good["b"], 2),
        counting.report("c", good["c"], 4),
    ]

    sums = folded(reports)

    expected = folded([counting.report(k, good[k], weights[k]) for k in good])
    assert list(sums.tally.excluded) == ["bad"]
    assert "'fc.weight' holds NaN or Inf" in sums.tally.excluded["bad"]
    assert_same_sum(sums, expected)
    reference = torch.zeros(12)
    for key, diff in good.items():
        reference.add_(diff["fc.weight"].reshape(-1), alpha=weights[key])
    assert torch.equal(sums.sums["fc.weight"], reference)


def test_good_diffs_are_read_once_and_a_bad_one_makes_the_folded_ones_reread() -> None:
    clean, dirty = CountingReports(), CountingReports()
    wrong_shape = random_diff(9)
    wrong_shape["fc.bias"] = torch.zeros(5)

    folded([clean.report(k, random_diff(i)) for i, k in enumerate("ab")])
    sums = folded(
        [
            dirty.report("a", random_diff(0)),
            dirty.report("shape", wrong_shape),
            dirty.report("nan", poisoned(1, math.nan)),
            dirty.report("b", random_diff(2)),
        ]
    )

    assert clean.loads == {"a": 1, "b": 1}
    # The misshapen diff was never folded, so only the folded ones are reread.
    assert dirty.loads == {"a": 2, "shape": 1, "nan": 2, "b": 2}
    assert set(sums.tally.excluded) == {"shape", "nan"}
    assert "is [5]" in sums.tally.excluded["shape"]
    assert sums.tally.used == 2


def test_a_bad_diff_in_a_later_batch_keeps_what_was_folded_before() -> None:
    first, second, third = random_diff(1), random_diff(2), random_diff(3)
    expected = folded(
        [
            diff_report("1", first, 2),
            diff_report("2", second, 3),
            diff_report("3", third, 5),
        ]
    )

    sums = folded([diff_report("1", first, 2), diff_report("2", second, 3)])
    sums.fold_reports(
        [diff_report("nan", poisoned(4, math.nan), 1), diff_report("3", third, 5)],
        weighted=True,
    )

    assert list(sums.tally.excluded) == ["nan"]
    assert_same_sum(sums, expected)


def test_inf_under_a_weight_too_small_for_float32_is_still_excluded() -> None:
    # The factor rounds to zero in float32, and zero times Inf is NaN.
    good = random_diff(1)

    sums = folded(
        [diff_report("tiny", poisoned(2, math.inf), 1e-50), diff_report("g", good, 1)]
    )

    assert list(sums.tally.excluded) == ["tiny"]
    assert torch.equal(sums.sums["fc.bias"], good["fc.bias"])


def test_finite_diffs_whose_sum_overflows_fail_clearly() -> None:
    huge = {name: tensor.clone() for name, tensor in random_diff(1).items()}
    huge["fc.bias"].fill_(3e38)
    reports = [diff_report("a", huge, 1), diff_report("b", huge, 1)]

    with pytest.raises(AveragingFailed, match=r"2 finite diffs overflows .*'fc.bias'"):
        folded(reports)
    with pytest.raises(AveragingFailed, match="no checkpoint written"):
        average(model_state(), reports, AveragingConfig(method="fedavg"))


def test_clipping_excludes_non_finite_diffs_by_their_norm() -> None:
    layout = ModelLayout.of(model_state())
    good = random_diff(1)
    sums = WeightedSum(layout)

    sums.fold_reports(
        [diff_report("nan", poisoned(2, math.nan)), diff_report("g", good)],
        weighted=False,
        clipping_norm=1e6,
    )

    assert list(sums.tally.excluded) == ["nan"]
    assert "'fc.weight' holds NaN or Inf" in sums.tally.excluded["nan"]
    assert torch.equal(sums.sums["fc.weight"], good["fc.weight"].reshape(-1))


def test_clipping_excludes_a_finite_diff_whose_norm_overflows() -> None:
    layout = ModelLayout.of({"w": torch.zeros(3, dtype=torch.float64)})
    huge = {"w": torch.full((3,), 1e200, dtype=torch.float64)}
    small = {"w": torch.tensor([3.0, 0.0, 4.0], dtype=torch.float64)}
    sums = WeightedSum(layout)

    sums.fold_reports(
        [diff_report("huge", huge), diff_report("small", small)],
        weighted=False,
        clipping_norm=1.0,
    )

    assert "too large" in sums.tally.excluded["huge"]
    assert sums.sums["w"].tolist() == pytest.approx([0.6, 0.0, 0.8])


def test_unchecked_parse_keeps_non_finite_values_for_the_caller() -> None:
    layout = ModelLayout.of(model_state())
    data = state_stream_bytes(poisoned(1, math.inf))

    parsed = parse_diff(data, layout, check_values=False)

    weight = parsed.tensor(layout.get("fc.weight"))  # type: ignore[arg-type]
    assert weight[1, 2].item() == math.inf
    with pytest.raises(DiffRejected, match=r"'fc\.weight' holds NaN or Inf"):
        parsed.check_finite()
