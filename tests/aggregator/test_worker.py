"""The Celery worker process on the real Redis: enqueued by the cycle manager."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import requests
import torch

from fedgrid_aggregator.hold import marker_path
from tests.aggregator.conftest import Grid, Upload, WorkerProcess, model_state
from tests.support import wait_for


def diff(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(t.shape, generator=generator) * 0.1
        for name, t in model_state().items()
    }


def checkpoint_numbers(grid: Grid, job_name: str) -> list[int]:
    return [c.number for c in grid.models.list_checkpoints(job_name)]


def test_worker_aggregates_a_cycle_the_cycle_manager_closed(
    grid: Grid, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    job = grid.host(max_workers=2)
    first, second = diff(1), diff(2)

    cycle_id = grid.run_cycle(job, [Upload(first, 1), Upload(second, 3)])

    wait_for(
        lambda: grid.cycle_state(job, cycle_id) == "completed",
        timeout=60,
        what="the cycle to complete",
    )
    assert checkpoint_numbers(grid, job.name) == [1, 2]
    mean = (first["fc.bias"] + 3 * second["fc.bias"]) / 4
    new = grid.checkpoint(job, 2)
    assert torch.allclose(new["fc.bias"], model_state()["fc.bias"] - mean, atol=1e-6)
    metrics = requests.get(
        f"http://127.0.0.1:{worker.metrics_port}/metrics", timeout=10
    ).text
    assert 'fedgrid_aggregation_reports_total{outcome="used"} 2.0' in metrics
    assert (
        'fedgrid_aggregation_seconds_count{outcome="stored",task="Aggregate"} 1.0'
        in metrics
    )
    assert "fedgrid_aggregation_queue_depth{queue=" in metrics


def test_large_cycle_runs_as_a_chord_of_shards(
    grid: Grid, start_worker: Callable[..., WorkerProcess]
) -> None:
    start_worker()
    job = grid.host(averaging={"shard_size": 2}, max_workers=5)
    diffs = [diff(i) for i in range(5)]

    cycle_id = grid.run_cycle(job, [Upload(d, 2) for d in diffs])

    wait_for(
        lambda: grid.cycle_state(job, cycle_id) == "completed",
        timeout=90,
        what="the sharded cycle to complete",
    )
    [stored] = [c for c in grid.models.list_checkpoints(job.name) if c.number == 2]
    assert stored.metrics["reports_used"] == 5
    mean = sum(d["fc.weight"] for d in diffs) / 5
    new = grid.checkpoint(job, 2)
    assert torch.allclose(
        new["fc.weight"], model_state()["fc.weight"] - mean, atol=1e-6
    )


def test_worker_killed_mid_task_is_redelivered_once(
    grid: Grid, start_worker: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.write_text("hold")
    doomed = start_worker(aggregator_test_hold_file=str(hold))
    job = grid.host(max_workers=1)
    cycle_id = grid.run_cycle(job, [Upload(diff(1))])
    marker = marker_path(hold, cycle_id)
    wait_for(marker.exists, timeout=60, what="the task to reach the hold")

    os.killpg(doomed.process.pid, signal.SIGKILL)
    doomed.process.wait(timeout=30)
    hold.unlink()
    assert checkpoint_numbers(grid, job.name) == [1]
    start_worker(aggregator_test_hold_file=str(hold))

    wait_for(
        lambda: grid.cycle_state(job, cycle_id) == "completed",
        timeout=90,
        what="the redelivered task to complete",
    )
    assert int(marker.read_text()) == doomed.process.pid
    assert checkpoint_numbers(grid, job.name) == [1, 2]
