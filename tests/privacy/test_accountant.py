"""Epsilon after k cycles, against dp-accounting called directly."""

from __future__ import annotations

import dp_accounting
import pytest
from dp_accounting.rdp import RdpAccountant

from fedgrid.privacy.accountant import PrivacyParameters, cycles_within, epsilon


def library_epsilon(q: float, z: float, delta: float, cycles: int) -> float:
    accountant = RdpAccountant()
    for _ in range(cycles):
        accountant.compose(
            dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
        )
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize(
    ("q", "z", "delta", "cycles"),
    [(0.04, 1.0, 1e-5, 1), (0.04, 1.0, 1e-5, 30), (0.5, 2.0, 1e-6, 7)],
)
def test_epsilon_matches_the_library(
    q: float, z: float, delta: float, cycles: int
) -> None:
    ours = epsilon(PrivacyParameters(q, z, delta), cycles)

    assert ours == pytest.approx(library_epsilon(q, z, delta, cycles), rel=1e-9)


def test_epsilon_grows_and_starts_at_zero() -> None:
    parameters = PrivacyParameters(0.1, 1.1, 1e-5)

    values = [epsilon(parameters, k) for k in range(0, 6)]

    assert values[0] == 0.0
    assert values == sorted(values) and len(set(values)) == 6


def test_cycles_within_is_the_last_count_under_the_budget() -> None:
    parameters = PrivacyParameters(0.1, 1.1, 1e-5)
    budget = (epsilon(parameters, 12) + epsilon(parameters, 13)) / 2

    allowed = cycles_within(parameters, budget)

    assert allowed == 12
    assert cycles_within(parameters, epsilon(parameters, 1) / 2) == 0
