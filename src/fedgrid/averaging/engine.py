"""One cycle's averaging, the same for the aggregator and the local simulator."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fedgrid.averaging.accumulate import ReportInput, Tally, WeightedSum
from fedgrid.averaging.errors import AveragingFailed
from fedgrid.averaging.layout import ModelLayout, is_finite
from fedgrid.averaging.optimizers import LINEAR, STATEFUL, check_state, server_step
from fedgrid.averaging.robust import ROBUST, robust_mean
from fedgrid.jobconfig import AveragingConfig
from fedgrid.privacy.mechanism import PrivateAveraging

logger = logging.getLogger(__name__)


@dataclass
class AveragingResult:
    """The new model, its checkpoint metrics and the optimizer state to keep."""

    state: dict[str, torch.Tensor]
    metrics: dict[str, float]
    excluded: dict[str, str] = field(default_factory=dict)
    server_state: dict[str, torch.Tensor] | None = None


def weighted(method: str) -> bool:
    """Whether a built-in method weights diffs by sample count."""
    return method != "mean" and method in LINEAR


def fold_options(
    method: str, privacy: PrivateAveraging | None
) -> tuple[bool, float | None]:
    """Whether to weight by sample count, and the norm to clip each diff to."""
    if privacy is None:
        return weighted(method), None
    # Under DP each worker counts once: a claimed sample count must not let
    # one worker's diff outweigh the clipping bound.
    return False, privacy.clipping_norm if privacy.clip_on_grid else None


def nothing_usable(tally: Tally) -> AveragingFailed:
    """The failure raised when every report was excluded."""
    if not tally.excluded:
        return AveragingFailed("the cycle has no reports to average")
    reasons = "; ".join(
        f"{key}: {reason}" for key, reason in list(tally.excluded.items())[:5]
    )
    return AveragingFailed(
        f"all {len(tally.excluded)} reports were excluded ({reasons})"
    )


def checked_model(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Refuse a new model holding NaN or Inf; it must never become a checkpoint."""
    for name, tensor in state.items():
        if not is_finite(tensor):
            raise AveragingFailed(
                f"averaging produced NaN or Inf in {name!r}; no checkpoint written"
            )
    return dict(state)


def finish_linear(
    current: Mapping[str, torch.Tensor],
    sums: WeightedSum,
    config: AveragingConfig,
    server_state: Mapping[str, torch.Tensor] | None = None,
    privacy: PrivateAveraging | None = None,
) -> AveragingResult:
    """Turn a (possibly combined) weighted sum into the next model.

    With privacy the sum (of clipped, unweighted diffs) gets Gaussian noise
    and is divided by the fixed denominator instead of the reports' weight.
    """
    if sums.tally.used == 0 or sums.total_weight <= 0:
        raise nothing_usable(sums.tally)
    layout = sums.layout
    state = None
    if config.method in STATEFUL and server_state is not None:
        state = check_state(server_state, layout, config)
    mean = sums.mean() if privacy is None else privacy.noised_mean(sums.sums)
    new, state = server_step(current, mean, layout, config, state)
    metrics = sums.tally.metrics()
    if privacy is not None:
        metrics.update(privacy.metrics())
    return AveragingResult(
        state=checked_model(new),
        metrics=metrics,
        excluded=dict(sums.tally.excluded),
        server_state=state,
    )


def average(
    current: Mapping[str, torch.Tensor],
    reports: Sequence[ReportInput],
    config: AveragingConfig,
    server_state: Mapping[str, torch.Tensor] | None = None,
    spool_dir: Path | None = None,
    privacy: PrivateAveraging | None = None,
) -> AveragingResult:
    """Average one cycle's reports with a built-in method into the next model.

    With privacy every diff counts once, clipped unless workers clipped it,
    and the sum gets noise (see fedgrid.privacy.mechanism). Raises
    AveragingFailed when no report is usable or the result is not finite.
    """
    layout = ModelLayout.of(current)
    method = config.method
    if privacy is not None and method not in LINEAR:
        raise AveragingFailed(
            f"averaging method {method!r} cannot run under differential privacy"
        )
    if method in LINEAR:
        sums = WeightedSum(layout)
        sums.fold_reports(reports, *fold_options(method, privacy))
        result = finish_linear(current, sums, config, server_state, privacy)
    elif method in ROBUST:
        mean, tally = robust_mean(
            reports, layout, method, config.trim_ratio, spool_dir=spool_dir
        )
        if not tally.used:
            raise nothing_usable(tally)
        plain = AveragingConfig(
            method="mean", server_learning_rate=config.server_learning_rate
        )
        new, _ = server_step(current, mean, layout, plain, None)
        result = AveragingResult(
            state=checked_model(new),
            metrics=tally.metrics(),
            excluded=dict(tally.excluded),
        )
    else:
        raise AveragingFailed(f"averaging method {method!r} is not built in")
    logger.info(
        "[Averaging.average] method=%s used=%d excluded=%d samples=%s",
        method,
        int(result.metrics["reports_used"]),
        len(result.excluded),
        _number(result.metrics["num_samples"]),
    )
    return result


def _number(value: float) -> str:
    return (
        str(int(value)) if math.isfinite(value) and value.is_integer() else str(value)
    )
