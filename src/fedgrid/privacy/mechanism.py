"""The Gaussian mechanism on one cycle's sum of clipped diffs (DP-FedAvg).

Every used report counts with weight 1 and is clipped to clipping_norm, on
the grid or (with secure aggregation on) on the worker, so adding or removing
one worker changes the sum by at most clipping_norm. Gaussian noise of
standard deviation noise_multiplier x clipping_norm goes on the sum, once per
cycle, and the sum is divided by a FIXED denominator, max_diffs (the most
reports a cycle can use), not by the number that arrived: a count that
depends on who took part would itself reveal something. A cycle with fewer
reports than max_diffs therefore moves the model by less.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from fedgrid.privacy.accountant import PrivacyParameters, cycles_within, epsilon
from fedgrid.privacy.clipping import clip_diff
from fedgrid.privacy.noise import NoiseSource, SecureGaussian

if TYPE_CHECKING:
    from fedgrid.jobconfig import ServerConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrivateAveraging:
    """DP for one cycle: clipping, noise on the sum, fixed denominator, epsilon.

    `cycle` counts the cycles that produced a checkpoint, this one included;
    `clip_on_grid` is False when secure aggregation is on and workers clipped.
    """

    clipping_norm: float
    noise_multiplier: float
    denominator: int
    parameters: PrivacyParameters
    cycle: int
    clip_on_grid: bool = True
    noise: NoiseSource = field(default_factory=SecureGaussian)

    @property
    def noise_std(self) -> float:
        """Standard deviation of the noise added to each summed coordinate."""
        return self.noise_multiplier * self.clipping_norm

    def noised_mean(self, sums: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(sum + N(0, std^2)) / denominator for every tensor of the sum."""
        mean: dict[str, torch.Tensor] = {}
        for name, total in sums.items():
            draws = self.noise.standard_normal(total.numel()).reshape(total.shape)
            noised = total.to(torch.float64) + draws * self.noise_std
            mean[name] = (noised / self.denominator).to(
                total.dtype if total.is_floating_point() else torch.float64
            )
        logger.info(
            "[Privacy.noise] cycle=%d std=%s denominator=%d",
            self.cycle,
            self.noise_std,
            self.denominator,
        )
        return mean

    def epsilon(self) -> float:
        """Cumulative epsilon at target_delta once this cycle's model is out."""
        return epsilon(self.parameters, self.cycle)

    def metrics(self) -> dict[str, float]:
        """What a checkpoint records about its privacy."""
        return {
            "epsilon": self.epsilon(),
            "delta": self.parameters.target_delta,
            "noise_std": self.noise_std,
        }


def private_averaging(
    config: ServerConfig, cycle: int, noise: NoiseSource | None = None
) -> PrivateAveraging | None:
    """The job's DP for its `cycle`-th checkpoint-making cycle; None without DP."""
    private = config.differential_privacy
    parameters = config.privacy_parameters
    if private is None or parameters is None:
        return None
    secure = config.secure_aggregation
    return PrivateAveraging(
        clipping_norm=private.clipping_norm,
        noise_multiplier=private.noise_multiplier,
        denominator=config.max_diffs,
        parameters=parameters,
        cycle=cycle,
        clip_on_grid=not (secure is not None and secure.enabled),
        noise=noise or SecureGaussian(),
    )


def stop_rule(config: ServerConfig) -> tuple[int, str] | None:
    """How many cycles max_epsilon allows and the reason the job then gives."""
    private = config.differential_privacy
    parameters = config.privacy_parameters
    if private is None or parameters is None or private.max_epsilon is None:
        return None
    allowed = cycles_within(parameters, private.max_epsilon)
    reason = (
        f"max_epsilon reached: after {allowed} cycles epsilon is "
        f"{epsilon(parameters, allowed):.4g} and one more cycle would make it "
        f"{epsilon(parameters, allowed + 1):.4g}, above max_epsilon "
        f"{private.max_epsilon:g} at delta {private.target_delta:g}"
    )
    return allowed, reason


def worker_clip(
    config: ServerConfig, diff: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A worker's diff as it must leave the worker under the job's config.

    Clipped to the DP clipping norm when differential privacy and secure
    aggregation are both on (the grid then sees only the masked sum);
    unchanged otherwise, since the grid clips plain diffs itself.
    """
    private = config.differential_privacy
    secure = config.secure_aggregation
    if private is None or secure is None or not secure.enabled:
        return dict(diff)
    return clip_diff(diff, private.clipping_norm)
