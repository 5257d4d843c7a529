"""The simulator and the real grid train the same seeded job to the same model."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import fedgrid
from fedgrid.cli.admin_client import AdminClient
from fedgrid.tensors import load_state_stream
from fedgrid.worker import CycleAssignment, RetryPolicy, Worker, WorkerJob, train
from tests.support import wait_for
from tests.worker.real_stack import Grid, grid_settings, running_grid
from tests.worker.sample_job import make_job, make_partition

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def grid(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    settings = grid_settings(database_url, tmp_path_factory.mktemp("sim-grid"))
    with running_grid(settings) as running:
        yield running


def _join_once(
    grid: Grid, name: str, batches: list[dict[str, torch.Tensor]]
) -> WorkerJob:
    """A worker that trains one cycle on its batches, reports, and stops."""
    job = Worker(grid.url, retry=RetryPolicy(4, 0.1, 0.5)).new_job(name)
    admitted = threading.Event()

    def on_accepted(assignment: CycleAssignment) -> None:
        admitted.set()
        plan = assignment.plans["training_plan"].plan
        result = train(plan, assignment.params, batches, assignment.client_config)
        job.report(
            result.params, sample_count=result.sample_count,
            metrics=result.metrics, next_cycle=False,
        )  # fmt: skip

    job.on("accepted", on_accepted)
    job.start()
    assert admitted.wait(30), "the grid did not admit the worker"
    return job


def test_simulator_matches_the_real_grid(grid: Grid, tmp_path: Path) -> None:
    name = f"sim-{uuid.uuid4().hex[:8]}"
    server = {
        "num_cycles": 2, "max_workers": 2, "max_diffs": 2, "min_diffs": 2,
        "pool_selection": "iterate", "cycle_length": 120,
    }  # fmt: skip
    job = make_job(name=name, **server)
    partitions = [make_partition(i, samples=8 * (i + 1)) for i in range(4)]
    admin = AdminClient(grid.url, grid.admin_token)
    try:
        admin.push(job.trace().host_body())

        # Workers join in the order the simulator's iterate selection takes them.
        for first, checkpoint in ((0, 2), (2, 3)):
            workers = [
                _join_once(grid, name, partitions[i]) for i in (first, first + 1)
            ]
            wait_for(
                lambda n=checkpoint: len(admin.checkpoints(name, None)) >= n,
                timeout=60, what=f"checkpoint {checkpoint}",
            )  # fmt: skip
            for worker in workers:
                assert worker.join(30)
        admin.pull(name, None, "3", tmp_path / "grid.state")
        metrics = admin.checkpoints(name, None)[-1]["metrics"]
    finally:
        admin.close()

    simulated = fedgrid.simulate(make_job(name=name, **server), partitions)

    with open(tmp_path / "grid.state", "rb") as handle:
        on_grid = load_state_stream(handle)
    assert [cycle.admitted for cycle in simulated.cycles] == [[0, 1], [2, 3]]
    for key, tensor in simulated.state.items():
        torch.testing.assert_close(on_grid[key], tensor, rtol=1e-5, atol=1e-6)
    assert metrics["num_samples"] == simulated.metrics[1]["num_samples"] == 24 + 32
    assert metrics["loss"] == pytest.approx(simulated.metrics[1]["loss"], rel=1e-5)
