"""The worker SDK against the real grid: gateway, model store, cycle manager."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from fedgrid.cli.admin_client import AdminClient
from fedgrid.job import TracedJob
from fedgrid.tensors import load_state_stream
from fedgrid.worker import (
    AuthError,
    CycleAssignment,
    RetryPolicy,
    Worker,
    WorkerJob,
    train,
)
from tests.support import stop_process, wait_for
from tests.worker.real_stack import (
    HAS_AGGREGATOR,
    NEEDS_AGGREGATOR,
    Grid,
    grid_settings,
    running_grid,
)
from tests.worker.sample_job import make_job, make_partition

pytestmark = pytest.mark.slow
RETRY = RetryPolicy(attempts=4, base_delay=0.1, max_delay=0.5)
needs_aggregator = pytest.mark.skipif(not HAS_AGGREGATOR, reason=NEEDS_AGGREGATOR)


@pytest.fixture(scope="module")
def grid(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Grid]:
    settings = grid_settings(database_url, tmp_path_factory.mktemp("grid"))
    with running_grid(settings) as running:
        yield running


def _host(grid: Grid, **server: Any) -> TracedJob:
    traced = make_job(name=f"tiny-{uuid.uuid4().hex[:8]}", **server).trace()
    client = AdminClient(grid.url, grid.admin_token)
    try:
        client.push(traced.host_body())
    finally:
        client.close()
    return traced


def _train_and_report(job: WorkerJob, seed: int) -> Any:
    def on_accepted(assignment: CycleAssignment) -> None:
        plan = assignment.plans["training_plan"].plan
        result = train(
            plan, assignment.params, make_partition(seed), assignment.client_config
        )
        job.report(
            result.params, sample_count=result.sample_count, metrics=result.metrics
        )

    return on_accepted


def _status(grid: Grid, name: str) -> dict[str, Any]:
    client = AdminClient(grid.url, grid.admin_token)
    try:
        return client.job(name, None)
    finally:
        client.close()


def test_accepted_worker_reports_to_the_real_grid(grid: Grid) -> None:
    traced = _host(grid, num_cycles=1, max_workers=1, max_diffs=1)
    name = traced.spec.name
    job = Worker(grid.url, retry=RETRY).new_job(name)
    accepted: list[CycleAssignment] = []
    job.on("accepted", accepted.append)
    job.on("accepted", _train_and_report(job, seed=1))
    reported = threading.Event()
    job.on("reported", lambda _answer: reported.set())

    job.start()
    try:
        assert reported.wait(30)
    finally:
        job.stop()

    assert accepted[0].cycle_number == 1 and accepted[0].checkpoint == 1
    for key, tensor in traced.state.items():
        torch.testing.assert_close(accepted[0].params[key], tensor)
    cycles = _status(grid, name)["status"]["cycles"]
    assert cycles[0]["admitted"] == 1 and cycles[0]["reports"] == 1


@needs_aggregator
def test_worker_runs_every_cycle_until_the_job_is_done(
    grid: Grid, tmp_path: Path
) -> None:
    traced = _host(grid, num_cycles=2, max_workers=1, max_diffs=1)
    job = Worker(grid.url, retry=RETRY).new_job(traced.spec.name)
    seen: list[str] = []
    for kind in ("accepted", "reported", "done"):
        job.on(kind, lambda _data, kind=kind: seen.append(kind))
    job.on("accepted", _train_and_report(job, seed=2))

    job.start()

    assert job.join(90), seen
    assert seen == ["accepted", "reported", "accepted", "reported", "done"]
    client = AdminClient(grid.url, grid.admin_token)
    try:
        numbers = [c["number"] for c in client.checkpoints(traced.spec.name, None)]
        client.pull(traced.spec.name, None, "2", tmp_path / "two.state")
    finally:
        client.close()
    assert numbers == [1, 2, 3]
    with open(tmp_path / "two.state", "rb") as handle:
        second = load_state_stream(handle)
    expected = train(
        traced.plans["training_plan"], traced.state, make_partition(2),
        traced.client_config,
    )  # fmt: skip
    for key, tensor in expected.params.items():
        torch.testing.assert_close(second[key], tensor, rtol=1e-5, atol=1e-6)


def test_rejected_worker_asks_again_at_the_suggested_time(grid: Grid) -> None:
    traced = _host(grid, num_cycles=3, max_workers=1, max_diffs=1, cycle_length=3)
    name = traced.spec.name
    holder = Worker(grid.url, retry=RETRY).new_job(name)
    held = threading.Event()
    holder.on("accepted", lambda _a: held.set())
    holder.start()
    assert held.wait(30)

    waiting = Worker(grid.url, retry=RETRY).new_job(name)
    rejections: list[tuple[float, Any]] = []
    admissions: list[float] = []
    waiting.on("rejected", lambda r: rejections.append((time.monotonic(), r)))
    waiting.on("accepted", lambda _a: admissions.append(time.monotonic()))
    try:
        waiting.start()
        wait_for(lambda: admissions, timeout=60, what="second admission")
    finally:
        holder.stop()
        waiting.stop()

    first_at, first = rejections[0]
    assert first.reason == "cycle_full"
    assert 1 <= first.retry_after <= 4
    # Each new request waits at least the delay the previous rejection named.
    asked = [at for at, _ in rejections[1:]] + admissions[:1]
    for (at, rejection), following in zip(rejections, asked, strict=True):
        assert following - at >= rejection.retry_after - 0.1
    assert admissions[0] - first_at < first.retry_after + 10


def test_two_jobs_at_once_on_the_real_grid(grid: Grid) -> None:
    names = [
        _host(grid, num_cycles=1, max_workers=1, max_diffs=1).spec.name
        for _ in range(2)
    ]
    worker = Worker(grid.url, retry=RETRY)
    both = threading.Barrier(2, timeout=30)
    reported: list[str] = []
    jobs = []
    for seed, name in enumerate(names):
        job = worker.new_job(name)
        step = _train_and_report(job, seed)

        def on_accepted(assignment: CycleAssignment, step: Any = step) -> None:
            both.wait()
            step(assignment)

        job.on("accepted", on_accepted)
        job.on("reported", lambda _a, name=name: reported.append(name))
        jobs.append(job.start())
    try:
        wait_for(lambda: len(reported) == 2, timeout=60, what="both reports")
    finally:
        worker.stop()

    assert sorted(reported) == sorted(names)
    for name in names:
        assert _status(grid, name)["status"]["cycles"][0]["reports"] == 1


def test_crashed_worker_resumes_on_the_real_grid(grid: Grid, tmp_path: Path) -> None:
    traced = _host(grid, num_cycles=1, max_workers=1, max_diffs=1, cycle_length=120)
    name = traced.spec.name
    state, crashed, resumed = tmp_path / "s", tmp_path / "crashed", tmp_path / "ok"
    command = [sys.executable, "-m", "tests.worker.crash_worker", grid.url, str(state)]

    first = subprocess.Popen([*command, "crash", str(crashed), name])
    try:
        key = wait_for(lambda: crashed.exists() and crashed.read_text(), timeout=60)
        first.kill()
        first.wait(10)
    finally:
        stop_process(first)
    second = subprocess.Popen([*command, "resume", str(resumed), name])
    try:
        second.wait(60)
    finally:
        stop_process(second)

    assert second.returncode == 0
    assert key in resumed.read_text()
    cycle = _status(grid, name)["status"]["cycles"][0]
    assert cycle["admitted"] == 1 and cycle["reports"] == 1


def _admitted(
    grid: Grid, name: str, version: str | None = None, **worker: Any
) -> tuple[WorkerJob, Any]:
    """Start a worker on a job; return it with its first assignment or error."""
    job = Worker(grid.url, retry=RETRY, **worker).new_job(name, version)
    outcome: list[Any] = []
    job.on("accepted", outcome.append)
    job.on("error", outcome.append)
    job.start()
    wait_for(lambda: outcome, timeout=30, what="admission or error")
    job.stop()
    return job, outcome[0]


def test_without_a_version_the_worker_joins_the_newest(grid: Grid) -> None:
    name = f"tiny-{uuid.uuid4().hex[:8]}"
    client = AdminClient(grid.url, grid.admin_token)
    try:
        for version in ("1.2.0", "1.10.0", "1.9.1"):
            client.push(make_job(name=name, version=version).trace().host_body())
    finally:
        client.close()

    _, newest = _admitted(grid, name)
    _, pinned = _admitted(grid, name, version="1.9.1")

    assert newest.version == "1.10.0"  # semantic order, not text order
    assert pinned.version == "1.9.1"


def test_jwt_protected_job_admits_a_signed_worker_only(grid: Grid) -> None:
    import jwt

    secret = uuid.uuid4().hex
    auth = {"type": "jwt", "secret": secret, "algorithms": ["HS256"]}
    traced = _host(grid, authentication=auth)
    name = traced.spec.name
    good = jwt.encode({"sub": "phone-1", "exp": time.time() + 300}, secret, "HS256")
    forged = jwt.encode(
        {"sub": "phone-1"}, "another-secret-that-is-long-enough-for-hs256", "HS256"
    )

    _, accepted = _admitted(grid, name, auth_token=good)
    _, refused = _admitted(grid, name, auth_token=forged)

    assert isinstance(accepted, CycleAssignment) and accepted.cycle_number == 1
    assert isinstance(refused, AuthError) and refused.status == 401
    assert refused.code and refused.message


def test_speed_test_runs_against_the_real_gateway(grid: Grid) -> None:
    traced = _host(grid, minimum_download_speed=1, minimum_upload_speed=1)

    _, accepted = _admitted(grid, traced.spec.name, speed_test_bytes=256 * 1024)

    assert isinstance(accepted, CycleAssignment)
