"""Folding diffs one by one into a single model-sized weighted sum."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from fedgrid.averaging.diffs import DiffBuffer, ParsedDiff, parse_diff
from fedgrid.averaging.errors import DiffRejected
from fedgrid.averaging.layout import ModelLayout
from fedgrid.errors import InvalidArgument
from fedgrid.privacy.clipping import clip_factor, l2_norm
from fedgrid.tensors import encode_state_stream, read_state_stream

logger = logging.getLogger(__name__)

DiffLoader = Callable[[DiffBuffer], memoryview | bytes | bytearray]


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
    report: ReportInput, layout: ModelLayout, buffer: DiffBuffer, weighted: bool
) -> tuple[ParsedDiff, float]:
    """Load and validate one report; raise DiffRejected with the reason."""
    weight = sample_weight(report.sample_count) if weighted else 1.0
    return parse_diff(report.load(buffer), layout), weight


class WeightedSum:
    """The running sum of weight x diff over reports, one accumulator per model."""

    def __init__(self, layout: ModelLayout) -> None:
        self.layout = layout
        self.sums = layout.zeros()
        self.total_weight = 0.0
        self.tally = Tally()

    def fold(self, parsed: ParsedDiff, weight: float, scale: float = 1.0) -> None:
        """Add weight x scale x diff; the diff must already be validated."""
        for segment in parsed.segments:
            target = self.sums[segment.spec.name]
            stop = segment.start + segment.values.numel()
            target[segment.start : stop].add_(segment.values, alpha=weight * scale)
        self.total_weight += weight

    def fold_reports(
        self,
        reports: Iterable[ReportInput],
        weighted: bool,
        clipping_norm: float | None = None,
    ) -> None:
        """Fold every usable report, recording why the others were left out.

        With clipping_norm each diff is first scaled down to that L2 norm.
        """
        buffer = DiffBuffer()
        for report in reports:
            try:
                parsed, weight = read_report(report, self.layout, buffer, weighted)
            except DiffRejected as exc:
                self.tally.exclude(report.key, str(exc))
                continue
            scale = 1.0
            if clipping_norm is not None:
                norm = l2_norm(segment.values for segment in parsed.segments)
                scale = clip_factor(norm, clipping_norm)
            self.fold(parsed, weight, scale)
            self.tally.count(report)
            del parsed  # the buffer is overwritten by the next report

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
