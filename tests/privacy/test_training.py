"""The digits demo under DP in the simulator: finite, learns, stops at max_epsilon."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
import torch

from fedgrid.demo.data import split
from fedgrid.demo.digits_job import make_job
from fedgrid.demo.model import DigitsMLP, accuracy
from fedgrid.job import JobSpec
from fedgrid.privacy.accountant import PrivacyParameters, epsilon
from fedgrid.simulation import simulate

WORKERS = 20  # reports per cycle; the population is twice as large
PRIVATE = {"clipping_norm": 2.0, "noise_multiplier": 1.0, "target_delta": 1e-3}


def private_job(cycles: int, **privacy: Any) -> JobSpec:
    job = make_job("1.0.0", workers=WORKERS, cycles=cycles)
    return dataclasses.replace(
        job,
        client_config={"lr": 0.1, "batch_size": 16, "epochs": 4},
        server_config={
            "max_workers": WORKERS,
            "pool_selection": "iterate",
            "num_cycles": cycles,
            "population_size": 2 * WORKERS,
            "averaging": {"method": "fedavg"},
            "differential_privacy": {**PRIVATE, **privacy},
        },
    )


def partitions() -> tuple[list[list[dict[str, torch.Tensor]]], Any]:
    parts, held_out = split(2 * WORKERS)
    batches = [
        [
            {"features": f, "labels": y}
            for f, y in zip(p.features.split(16), p.labels.split(16), strict=True)
        ]
        for p in parts
    ]
    return batches, held_out


def test_digits_learn_under_dp_with_the_accounted_epsilon(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data, held_out = partitions()
    caplog.set_level(logging.INFO, logger="fedgrid.privacy")

    result = simulate(private_job(cycles=15), data)

    model = DigitsMLP()
    model.load_state_dict(result.state)
    reached = accuracy(model, held_out.features, held_out.labels)
    spent = [cycle.metrics["epsilon"] for cycle in result.cycles]
    parameters = PrivacyParameters(0.5, 1.0, 1e-3)
    assert all(bool(torch.isfinite(t).all()) for t in result.state.values())
    assert spent == pytest.approx([epsilon(parameters, k) for k in range(1, 16)])
    # Ten classes: chance is 0.1; without DP the job reaches about 0.9.
    assert reached > 0.45, f"accuracy {reached:.3f} at epsilon {spent[-1]:.2f}"
    print(f"DP digits: accuracy {reached:.3f} at epsilon {spent[-1]:.2f}")


def test_max_epsilon_stops_the_simulated_job() -> None:
    data, _ = partitions()
    parameters = PrivacyParameters(0.5, 1.0, 1e-3)
    budget = (epsilon(parameters, 3) + epsilon(parameters, 4)) / 2

    result = simulate(private_job(cycles=10, max_epsilon=budget), data)

    assert result.checkpoints == 1 + 3
    assert result.finish_reason.startswith("max_epsilon reached: after 3 cycles")
    assert result.metrics[-1]["epsilon"] <= budget
