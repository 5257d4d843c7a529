"""The simulator: cycle rules, averaging and scale, checked against hand math."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

import fedgrid
from fedgrid.errors import ConfigError
from fedgrid.job import JobSpec
from fedgrid.worker import train
from tests.worker.sample_job import make_job, make_partition


def _hand_fedavg(
    job: JobSpec,
    partitions: list[list[dict[str, torch.Tensor]]],
    groups: list[list[int]],
) -> dict[str, torch.Tensor]:
    """FedAvg worked out directly: sample-weighted mean diff, current - mean."""
    traced = job.trace()
    current = dict(traced.state)
    for group in groups:
        results = [
            train(
                traced.plans["training_plan"],
                current,
                partitions[worker],
                traced.client_config,
            )
            for worker in group
        ]
        total = sum(result.sample_count for result in results)
        current = {
            name: tensor
            - sum(
                (tensor - result.params[name]) * result.sample_count
                for result in results
            )
            / total
            for name, tensor in current.items()
        }
    return current


def test_two_cycles_of_fedavg_match_the_hand_computation() -> None:
    job = make_job(num_cycles=2, max_workers=2, max_diffs=2)
    partitions = [
        make_partition(worker, samples=8 * (worker + 1)) for worker in range(4)
    ]

    result = fedgrid.simulate(job, partitions)

    expected = _hand_fedavg(job, partitions, [[0, 1], [2, 3]])
    assert [cycle.admitted for cycle in result.cycles] == [[0, 1], [2, 3]]
    for name, tensor in expected.items():
        torch.testing.assert_close(result.state[name], tensor, rtol=1e-5, atol=1e-6)
    assert result.checkpoints == 3 and result.finish_reason == "num_cycles reached"
    assert result.metrics[0]["num_samples"] == 8 + 16
    assert set(result.metrics[0]) >= {"loss", "accuracy", "reports_used"}


def test_recently_used_workers_wait_and_short_cycles_fail() -> None:
    job = make_job(
        num_cycles=2, max_workers=2, max_diffs=2, min_diffs=2,
        do_not_reuse_workers_until_cycle=2,
    )  # fmt: skip
    partitions = [make_partition(worker) for worker in range(3)]

    result = fedgrid.simulate(job, partitions)

    assert [cycle.admitted for cycle in result.cycles] == [[0, 1], [2], [0, 1]]
    assert [cycle.checkpoint for cycle in result.cycles] == [2, None, 3]
    assert "fewer than min_diffs=2" in result.cycles[1].failure


def test_the_cycle_closes_at_max_diffs() -> None:
    job = make_job(num_cycles=1, max_workers=3, max_diffs=2)
    partitions = [make_partition(worker) for worker in range(3)]

    result = fedgrid.simulate(job, partitions)

    assert result.cycles[0].admitted == [0, 1, 2]
    assert result.cycles[0].reported == [0, 1]
    assert result.metrics[0]["reports_used"] == 2


def test_the_job_stops_after_max_cycle_attempts() -> None:
    job = make_job(num_cycles=2, max_workers=2, max_diffs=2, min_diffs=2)

    result = fedgrid.simulate(job, [make_partition(0)])

    assert len(result.cycles) == 6  # 3 x num_cycles attempts, none usable
    assert result.checkpoints == 1
    assert result.finish_reason == "max_cycle_attempts reached"
    for name, tensor in job.trace().state.items():
        assert torch.equal(result.state[name], tensor)


def test_random_selection_is_seeded_and_never_exceeds_max_workers() -> None:
    job = make_job(
        num_cycles=3, max_workers=4, max_diffs=4, pool_selection="random",
        random_admission_probability=0.5,
    )  # fmt: skip
    partitions = [make_partition(worker) for worker in range(12)]

    first = fedgrid.simulate(job, partitions, seed=7)
    again = fedgrid.simulate(job, partitions, seed=7)
    other = fedgrid.simulate(job, partitions, seed=8)

    admitted = [cycle.admitted for cycle in first.cycles]
    assert all(1 <= len(group) <= 4 for group in admitted)
    assert admitted == [cycle.admitted for cycle in again.cycles]
    assert admitted != [cycle.admitted for cycle in other.cycles]
    for name in first.state:
        assert torch.equal(first.state[name], again.state[name])


def test_an_averaging_plan_replaces_the_built_in() -> None:
    def mean_of_diffs(
        avg: dict[str, torch.Tensor], diff: dict[str, torch.Tensor], n: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        return {name: avg[name] + (diff[name] - avg[name]) / n for name in avg}

    planned = make_job(num_cycles=1, max_workers=3, max_diffs=3)
    planned.averaging_plan = mean_of_diffs
    built_in = make_job(
        num_cycles=1, max_workers=3, max_diffs=3, averaging={"method": "mean"}
    )
    partitions = [
        make_partition(worker, samples=8 * (worker + 1)) for worker in range(3)
    ]

    with_plan = fedgrid.simulate(planned, partitions)
    with_mean = fedgrid.simulate(built_in, partitions)

    for name, tensor in with_mean.state.items():
        torch.testing.assert_close(with_plan.state[name], tensor)


def test_unlimited_jobs_need_a_cycle_count() -> None:
    job = make_job(num_cycles=0)

    with pytest.raises(ConfigError, match="pass num_cycles="):
        fedgrid.simulate(job, [make_partition(0)])


@pytest.mark.slow
def test_a_thousand_workers_finish() -> None:
    job = make_job(num_cycles=2, max_workers=1000, max_diffs=1000, min_diffs=1000)
    partitions = [make_partition(worker) for worker in range(1000)]

    started = time.perf_counter()
    result = fedgrid.simulate(job, partitions)
    elapsed = time.perf_counter() - started

    assert result.checkpoints == 3
    assert result.metrics[1]["reports_used"] == 1000
    assert result.metrics[1]["num_samples"] == 16_000
    assert result.metrics[1]["loss"] < result.metrics[0]["loss"]
    assert elapsed < 120, f"1,000 workers took {elapsed:.1f}s"


def test_a_job_file_path_can_be_simulated() -> None:
    path = Path(__file__).parents[1] / "worker" / "sample_job.py"
    partitions = [make_partition(worker) for worker in range(2)]

    from_file = fedgrid.simulate(path, partitions, num_cycles=1)
    from_spec = fedgrid.simulate(make_job(), partitions, num_cycles=1)

    assert from_file.checkpoints == 2
    for name, tensor in from_spec.state.items():
        assert torch.equal(from_file.state[name], tensor)
