"""Folding diffs one by one into a single model-sized weighted sum.

Checking every value of a diff for NaN/Inf costs as much as adding it, so
diffs are folded after their structure is checked and the sum is checked once
at the end: NaN or Inf in any folded diff leaves the sum non-finite (NaN stays
NaN, Inf stays Inf or becomes NaN, and a zero factor times Inf is NaN). Only a
non-finite sum makes the fold start over and check each diff before adding it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fedgrid.averaging.diffs import DiffBuffer, ParsedDiff, parse_diff
from fedgrid.averaging.errors import AveragingFailed, DiffRejected
from fedgrid.averaging.layout import ModelLayout, is_finite
from fedgrid.errors import InvalidArgument
from fedgrid.privacy.clipping import clip_factor, l2_norm
from fedgrid.tensors import encode_state_stream, read_state_stream

logger = logging.getLogger(__name__)

DiffLoader = Callable[[DiffBuffer], memoryview | bytes | bytearray]

_MAX_TARGETS = 4096  # slices of the sum kept for reuse, whatever the diffs' chunking


@dataclass(frozen=True)
class ReportInput:
    """One accepted report: who sent it, its sample count, metrics and diff."""

    key: str
    sample_count: Any
    metrics: Mapping[str, Any]
    load: DiffLoader  # returns the framed diff, possibly inside the buffer


def sample_weight(count: Any) -> float:
    """A report's weight: its sample count, which must be a positive number."""
    if isinstance(count, bool) or not isinstance(count, int | float):
        raise DiffRejected(f"sample count {count!r} is not a number")
    if not math.isfinite(count) or count <= 0:
        raise DiffRejected(f"sample count {count!r} is not positive")
    return float(count)


@dataclass
class Tally:
    """What a fold used and left out: counts, samples, metric sums, reasons."""

    used: int = 0
    num_samples: float = 0.0
    excluded: dict[str, str] = field(default_factory=dict)  # key -> reason
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_weights: dict[str, float] = field(default_factory=dict)

    def exclude(self, key: str, reason: str) -> None:
        logger.warning("[Averaging.fold] excluded report=%s reason=%s", key, reason)
        self.excluded[key] = reason

    def count(self, report: ReportInput) -> None:
        self.used += 1
        try:
            weight = sample_weight(report.sample_count)
        except DiffRejected:
            return  # unweighted methods may use it; its metrics carry no weight
        self.num_samples += weight
        for name, value in report.metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value):
                continue
            self.metric_sums[name] = self.metric_sums.get(name, 0.0) + weight * value
            self.metric_weights[name] = self.metric_weights.get(name, 0.0) + weight

    def merge(self, other: Tally) -> None:
        self.used += other.used
        self.num_samples += other.num_samples
        self.excluded.update(other.excluded)
        for name, value in other.metric_sums.items():
            self.metric_sums[name] = self.metric_sums.get(name, 0.0) + value
            self.metric_weights[name] = (
                self.metric_weights.get(name, 0.0) + other.metric_weights[name]
            )

    def metrics(self) -> dict[str, float]:
        """Checkpoint metrics: sample-weighted means plus the bookkeeping counts."""
        result = {
            name: total / self.metric_weights[name]
            for name, total in self.metric_sums.items()
            if self.metric_weights[name] > 0
        }
        result["reports_used"] = float(self.used)
        result["reports_excluded"] = float(len(self.excluded))
        result["num_samples"] = self.num_samples
        return result

    def copy(self) -> Tally:
        return Tally.from_json(self.to_json())

    def to_json(self) -> dict[str, Any]:
        return {
            "used": self.used,
            "num_samples": self.num_samples,
            "excluded": dict(self.excluded),
            "metric_sums": dict(self.metric_sums),
            "metric_weights": dict(self.metric_weights),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        return cls(
            used=int(data["used"]),
            num_samples=float(data["num_samples"]),
            excluded={str(k): str(v) for k, v in data["excluded"].items()},
            metric_sums={str(k): float(v) for k, v in data["metric_sums"].items()},
            metric_weights={
                str(k): float(v) for k, v in data["metric_weights"].items()
            },
        )


def read_report(
    report: ReportInput,
    layout: ModelLayout,
    buffer: DiffBuffer,
    weighted: bool,
    check_values: bool = True,
) -> tuple[ParsedDiff, float]:
    """Load and validate one report; raise DiffRejected with the reason.

    Without check_values, NaN and Inf are left for the caller to detect.
    """
    weight = sample_weight(report.sample_count) if weighted else 1.0
    return parse_diff(report.load(buffer), layout, check_values), weight


def clip_scale(parsed: ParsedDiff, clipping_norm: float) -> float:
    """The factor that clips a diff; its norm also proves every value finite."""
    norm = l2_norm(segment.values for segment in parsed.segments)
    if not math.isfinite(norm):
        parsed.check_finite()  # names the tensor holding NaN or Inf
        raise DiffRejected("diff values are too large to take their L2 norm")
    return clip_factor(norm, clipping_norm)


@dataclass(frozen=True)
class _Snapshot:
    """A weighted sum as it was before a fold, to start that fold over."""

    sums: dict[str, torch.Tensor] | None  # None: all zeros
    total_weight: float
    tally: Tally


class WeightedSum:
    """The running sum of weight x diff over reports, one accumulator per model."""

    def __init__(self, layout: ModelLayout) -> None:
        self.layout = layout
        self.sums = layout.zeros()
        self.total_weight = 0.0
        self.tally = Tally()
        # Views into self.sums, so each segment's add skips slicing the sum.
        self._targets: dict[tuple[str, int, int], torch.Tensor] = {}

    def fold(self, parsed: ParsedDiff, weight: float, scale: float = 1.0) -> None:
        """Add weight x scale x diff; its structure must already be validated."""
        alpha = weight * scale
        for segment in parsed.segments:
            self._target(segment.spec.name, segment.start, segment.values.numel()).add_(
                segment.values, alpha=alpha
            )
        self.total_weight += weight

    def _target(self, name: str, start: int, count: int) -> torch.Tensor:
        """The slice of the sum a segment adds to; diffs mostly share chunking."""
        key = (name, start, count)
        target = self._targets.get(key)
        if target is None:
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            target = self._targets[key] = self.sums[name][start : start + count]
        return target

    def fold_reports(
        self,
        reports: Iterable[ReportInput],
        weighted: bool,
        clipping_norm: float | None = None,
    ) -> None:
        """Fold every usable report, recording why the others were left out.

        With clipping_norm each diff is first scaled down to that L2 norm (the
        norm shows NaN/Inf on the way). Otherwise values are not checked one
        diff at a time unless the sum comes out non-finite; then the fold
        starts over, checking each report it had folded before adding it, so
        the result is exactly that of checking every diff first. Raises
        AveragingFailed if finite diffs sum to values too large to hold.
        """
        reports = list(reports)
        if clipping_norm is None:
            snapshot = self._snapshot()
            folded = self._fold_each(reports, weighted, None, check_values=False)
            broken = self._non_finite()
            if broken is not None:
                logger.warning(
                    "[Averaging.fold] sum holds NaN or Inf tensor=%s; checking "
                    "reports=%d one by one",
                    broken,
                    len(folded),
                )
                self._restore(snapshot)
                self._fold_each(folded, weighted, None, check_values=True)
        else:
            self._fold_each(reports, weighted, clipping_norm, check_values=True)
        overflowed = self._non_finite()
        if overflowed is not None:
            raise AveragingFailed(
                f"the weighted sum of {self.tally.used} finite diffs overflows "
                f"{self.sums[overflowed].dtype} in {overflowed!r}; "
                "no checkpoint written"
            )

    def _fold_each(
        self,
        reports: list[ReportInput],
        weighted: bool,
        clipping_norm: float | None,
        check_values: bool,
    ) -> list[ReportInput]:
        """Fold the reports one by one; return those that were folded."""
        buffer = DiffBuffer()
        folded = []
        for report in reports:
            try:
                parsed, weight = read_report(
                    report,
                    self.layout,
                    buffer,
                    weighted,
                    check_values and clipping_norm is None,
                )
                scale = 1.0
                if clipping_norm is not None:
                    scale = clip_scale(parsed, clipping_norm)
            except DiffRejected as exc:
                self.tally.exclude(report.key, str(exc))
                continue
            self.fold(parsed, weight, scale)
            self.tally.count(report)
            folded.append(report)
            del parsed  # the buffer is overwritten by the next report
        return folded

    def _non_finite(self) -> str | None:
        """The first tensor of the sum holding NaN or Inf, if any."""
        for name, total in self.sums.items():
            if not is_finite(total):
                return name
        return None

    def _snapshot(self) -> _Snapshot:
        pristine = self.total_weight == 0 and not any(
            bool(total.any()) for total in self.sums.values()
        )
        sums = None
        if not pristine:
            sums = {name: total.clone() for name, total in self.sums.items()}
        return _Snapshot(sums, self.total_weight, self.tally.copy())

    def _restore(self, snapshot: _Snapshot) -> None:
        """Go back to the snapshot, keeping the reasons reports were excluded."""
        for name, total in self.sums.items():
            if snapshot.sums is None:
                total.zero_()
            else:
                total.copy_(snapshot.sums[name])
        self.total_weight = snapshot.total_weight
        excluded = self.tally.excluded
        self.tally = snapshot.tally.copy()
        self.tally.excluded = excluded

    def merge(self, other: WeightedSum) -> None:
        """Add another (partial) sum of the same model."""
        for name, total in other.sums.items():
            self.sums[name].add_(total)
        self.total_weight += other.total_weight
        self.tally.merge(other.tally)

    def mean(self) -> dict[str, torch.Tensor]:
        """The averaged diff (flat tensors in the accumulation dtype)."""
        if self.total_weight <= 0:
            raise InvalidArgument("no diff was folded; there is no mean")
        return {name: total / self.total_weight for name, total in self.sums.items()}

    # --- partial sums across processes -----------------------------------

    def encode(self, chunk_bytes: int) -> Iterable[bytes]:
        """The sums as a framed state stream (the meta goes with to_json)."""
        return encode_state_stream(self.sums, chunk_bytes)

    def meta(self) -> dict[str, Any]:
        return {"total_weight": self.total_weight, "tally": self.tally.to_json()}

    @classmethod
    def decode(
        cls, layout: ModelLayout, stream: Any, meta: Mapping[str, Any]
    ) -> WeightedSum:
        """Rebuild a partial sum written by encode() and meta()."""
        partial = cls(layout)
        seen: set[str] = set()
        for name, tensor in read_state_stream(stream):
            target = partial.sums.get(name)
            if (
                target is None
                or tensor.shape != target.shape
                or (tensor.dtype != target.dtype)
            ):
                raise InvalidArgument(f"partial sum tensor {name!r} does not fit")
            target.copy_(tensor)
            seen.add(name)
        if seen != set(partial.sums):
            raise InvalidArgument("partial sum lacks tensors of the model")
        partial.total_weight = float(meta["total_weight"])
        partial.tally = Tally.from_json(meta["tally"])
        return partial
