"""Secure cycles on the real grid: SDK workers, gateway rounds, Celery unmasking."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from fedgrid.cli.admin_client import AdminClient
from fedgrid.job import TracedJob
from fedgrid.secagg.driver import Round
from fedgrid.secagg.rounds import SecAggRounds
from fedgrid.tensors import load_state_stream
from fedgrid.worker import CycleAssignment, RetryPolicy, Worker, WorkerJob, train
from fedgrid.worker.report import compute_diff
from tests.conftest import REDIS_URL
from tests.support import wait_for
from tests.worker.real_stack import HAS_AGGREGATOR, NEEDS_AGGREGATOR, Grid
from tests.worker.sample_job import make_job, make_partition

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAS_AGGREGATOR, reason=NEEDS_AGGREGATOR),
]
RETRY = RetryPolicy(attempts=4, base_delay=0.1, max_delay=0.5)
SECURE = {"enabled": True, "threshold": 7, "neighbours": 10, "clipping_range": 0.05}


def _host(grid: Grid, **server: Any) -> TracedJob:
    traced = make_job(name=f"secure-{uuid.uuid4().hex[:8]}", **server).trace()
    client = AdminClient(grid.url, grid.admin_token)
    try:
        client.push(traced.host_body())
    finally:
        client.close()
    return traced


def _status(grid: Grid, name: str) -> dict[str, Any]:
    client = AdminClient(grid.url, grid.admin_token)
    try:
        return client.job(name, None)["status"]
    finally:
        client.close()


@dataclass
class Crowd:
    """SDK workers that train, then drop or report once the test decides."""

    traced: TracedJob
    jobs: dict[str, WorkerJob] = field(default_factory=dict)
    trained: dict[str, tuple[dict[str, torch.Tensor], int]] = field(
        default_factory=dict
    )
    cycle_ids: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)
    decided: threading.Event = field(default_factory=threading.Event)
    reported: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def join(self, grid: Grid, count: int) -> None:
        for index in range(count):
            job = Worker(grid.url, retry=RETRY).new_job(self.traced.spec.name)
            job.on("accepted", self._trainer(job, index))
            job.on("error", lambda exc: self.errors.append(str(exc)))
            self.jobs[str(index)] = job
            job.start()

    def _trainer(self, job: WorkerJob, index: int) -> Any:
        def on_accepted(assignment: CycleAssignment) -> None:
            data = make_partition(index, samples=8 * (1 + index % 3))
            result = train(
                assignment.plans["training_plan"].plan,
                assignment.params,
                data,
                assignment.client_config,
            )
            worker_id = str(job._auth["worker_id"])
            with self.lock:
                self.cycle_ids.add(assignment.cycle_id)
                self.trained[worker_id] = (
                    compute_diff(assignment.params, result.params),
                    result.sample_count,
                )
            assert self.decided.wait(60)
            if worker_id in self.dropped:
                job.stop(wait=False)
                return
            job.report(
                result.params, sample_count=result.sample_count, next_cycle=False
            )
            with self.lock:
                self.reported.append(worker_id)

        return on_accepted

    def stop(self) -> None:
        self.decided.set()
        for job in self.jobs.values():
            job.stop(wait=False)
        for job in self.jobs.values():
            job.join(30)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    # Twenty workers train at once on a small machine; keep torch to one thread
    # each so the rounds' HTTP calls are not starved.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def rounds(grid: Grid) -> Iterator[SecAggRounds]:
    store = SecAggRounds(REDIS_URL, grid.settings.redis_prefix)
    yield store
    store.close_connection()


def _after_key_sharing(crowd: Crowd, rounds: SecAggRounds, count: int) -> str:
    """Wait until every worker shared keys; returns the cycle id."""
    wait_for(lambda: len(crowd.trained) == count, timeout=60, what="all trained")
    (cycle_id,) = crowd.cycle_ids

    def shared() -> bool:
        try:
            current, _ = rounds.state(cycle_id)
        except Exception:
            return False
        return current == Round.MASKED_INPUT.name

    # Round deadlines leave a loaded machine seconds for every worker's keys.
    wait_for(shared, timeout=60, what="keys shared")
    return cycle_id


def _pull(grid: Grid, name: str, number: int, path: Path) -> dict[str, torch.Tensor]:
    client = AdminClient(grid.url, grid.admin_token)
    try:
        client.pull(name, None, str(number), path)
    finally:
        client.close()
    with open(path, "rb") as handle:
        return load_state_stream(handle)


def test_twenty_workers_with_thirty_percent_dropping_make_one_checkpoint(
    grid: Grid, rounds: SecAggRounds, tmp_path: Path
) -> None:
    traced = _host(
        grid,
        max_workers=20,
        min_diffs=10,
        max_diffs=20,
        cycle_length=40,
        num_cycles=1,
        secure_aggregation=SECURE,
    )
    crowd = Crowd(traced)
    crowd.join(grid, 20)
    try:
        cycle_id = _after_key_sharing(crowd, rounds, 20)
        # Six drop, spread around the ring so every share group keeps 7 alive.
        order = rounds.params(cycle_id).graph.order
        crowd.dropped.update(order[0:18:3])
        crowd.decided.set()

        def completed() -> bool:
            cycles = _status(grid, traced.spec.name)["cycles"]
            return bool(cycles) and cycles[0]["state"] in ("completed", "failed")

        wait_for(completed, timeout=90, what="the secure cycle to end")
    finally:
        crowd.stop()

    cycle = _status(grid, traced.spec.name)["cycles"][0]
    assert cycle["state"] == "completed", cycle["close_reason"]
    assert cycle["checkpoint"] == 2 and cycle["reports"] == 14
    assert sorted(crowd.reported) == sorted(set(crowd.trained) - crowd.dropped)
    new = _pull(grid, traced.spec.name, 2, tmp_path / "two.state")
    limit = SECURE["clipping_range"]
    survivors = [crowd.trained[w] for w in crowd.reported]
    total_weight = sum(weight for _, weight in survivors)
    for name, before in traced.state.items():
        weighted = sum(
            weight * diff[name].to(torch.float64).clamp(-limit, limit)
            for diff, weight in survivors
        )
        expected = before.to(torch.float64) - weighted / total_weight
        assert float((expected - before).abs().max()) > 1e-3  # the model moved
        torch.testing.assert_close(
            new[name].to(torch.float64), expected, rtol=0, atol=1e-5
        )


def test_too_few_survivors_end_the_cycle_without_a_checkpoint(
    grid: Grid, rounds: SecAggRounds
) -> None:
    traced = _host(
        grid,
        max_workers=5,
        min_diffs=1,
        max_diffs=5,
        cycle_length=24,
        num_cycles=1,
        max_cycle_attempts=1,
        secure_aggregation=SECURE,
    )
    crowd = Crowd(traced)
    crowd.join(grid, 5)
    try:
        cycle_id = _after_key_sharing(crowd, rounds, 5)
        # Five workers rebuild with all five shares; two leave.
        crowd.dropped.update(rounds.params(cycle_id).participants[:2])
        crowd.decided.set()

        def ended() -> bool:
            return _status(grid, traced.spec.name)["state"] == "finished"

        wait_for(ended, timeout=60, what="the job to finish")
    finally:
        crowd.stop()

    status = _status(grid, traced.spec.name)
    cycle = status["cycles"][0]
    assert cycle["state"] == "failed" and cycle["checkpoint"] == 0
    assert "secure aggregation failed" in cycle["close_reason"]
    assert "threshold" in cycle["close_reason"]
    assert crowd.reported == []
