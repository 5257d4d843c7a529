"""Cumulative privacy loss of a job's cycles, from Google's dp-accounting library.

Every cycle that produces a checkpoint is one release of the Gaussian
mechanism on a Poisson-subsampled population: each eligible worker takes part
with probability q (the sampling rate), the sum of clipped diffs gets noise
of standard deviation noise_multiplier x clipping_norm. The Renyi DP
accountant composes the cycles and converts to (epsilon, delta).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

from dp_accounting import (  # type: ignore[import-untyped]
    GaussianDpEvent,
    PoissonSampledDpEvent,
)
from dp_accounting.rdp import RdpAccountant  # type: ignore[import-untyped]

from fedgrid.errors import ConfigError


class _QuietOrders(logging.Filter):
    """Drops the library's note that one fractional Renyi order did not converge.

    The order is then left out of the minimum over orders, which stays valid;
    the note would otherwise repeat on every epsilon computed for small noise.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_QuietOrders())

# How many cycles a budget search looks at before calling the budget unlimited.
MAX_CYCLES_SEARCHED = 10_000_000


@dataclass(frozen=True)
class PrivacyParameters:
    """What the accountant needs: sampling rate, noise multiplier and delta."""

    sampling_rate: float
    noise_multiplier: float
    target_delta: float

    def __post_init__(self) -> None:
        if not 0 < self.sampling_rate <= 1:
            raise ConfigError(
                f"the sampling rate must be in (0, 1], got {self.sampling_rate}"
            )
        if not self.noise_multiplier > 0 or not math.isfinite(self.noise_multiplier):
            raise ConfigError(
                f"the noise multiplier must be finite and > 0, "
                f"got {self.noise_multiplier}"
            )
        if not 0 < self.target_delta < 1:
            raise ConfigError(
                f"target_delta must be in (0, 1), got {self.target_delta}"
            )


def sampling_rate(expected_reports: int, population_size: int) -> float:
    """The share of the population one cycle can use: reports / population."""
    if population_size < 1 or expected_reports < 1:
        raise ConfigError(
            "the sampling rate needs population_size >= 1 and at least one report"
        )
    if expected_reports > population_size:
        raise ConfigError(
            f"a cycle can use {expected_reports} reports but population_size is "
            f"{population_size}; population_size counts every eligible worker "
            "and must be at least max_diffs"
        )
    return expected_reports / population_size


@functools.lru_cache(maxsize=4096)
def epsilon(parameters: PrivacyParameters, cycles: int) -> float:
    """Epsilon at target_delta after `cycles` cycles; 0 before the first."""
    if cycles < 0:
        raise ConfigError(f"cycles must not be negative, got {cycles}")
    if cycles == 0:
        return 0.0
    accountant = RdpAccountant()  # the library's default Renyi orders
    event = PoissonSampledDpEvent(
        parameters.sampling_rate, GaussianDpEvent(parameters.noise_multiplier)
    )
    accountant.compose(event, cycles)
    return float(accountant.get_epsilon(parameters.target_delta))


def cycles_within(parameters: PrivacyParameters, max_epsilon: float) -> int:
    """The most cycles whose cumulative epsilon stays at or below max_epsilon.

    Epsilon grows with every cycle, so a doubling then a bisection finds the
    last cycle count that fits. Returns MAX_CYCLES_SEARCHED when even that
    many cycles fit.
    """
    if epsilon(parameters, 1) > max_epsilon:
        return 0
    low, high = 1, 2
    while epsilon(parameters, high) <= max_epsilon:
        low, high = high, high * 2
        if high > MAX_CYCLES_SEARCHED:
            return MAX_CYCLES_SEARCHED
    while high - low > 1:
        middle = (low + high) // 2
        if epsilon(parameters, middle) <= max_epsilon:
            low = middle
        else:
            high = middle
    return low
