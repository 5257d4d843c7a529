"""The worker SDK's cycle loop against a gateway speaking the HTTP contract."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
import torch

from fedgrid.errors import InvalidArgument
from fedgrid.job import TracedJob
from fedgrid.worker import (
    AuthError,
    CycleAssignment,
    NotFoundError,
    RetryPolicy,
    ServerUnavailable,
    Worker,
    train,
)
from tests.support import free_port
from tests.worker.conftest import add_job
from tests.worker.contract_gateway import ContractGateway, Outcome
from tests.worker.sample_job import make_partition

FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)


def _trainer(job: Any, seed: int = 1) -> Any:
    """An accepted-callback that trains on local data and reports."""

    def on_accepted(assignment: CycleAssignment) -> None:
        plan = assignment.plans["training_plan"].plan
        result = train(
            plan, assignment.params, make_partition(seed), assignment.client_config
        )
        job.report(
            result.params, sample_count=result.sample_count, metrics=result.metrics
        )

    return on_accepted


def test_accepted_cycle_is_trained_and_reported_then_done(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job, script=[Outcome("accepted"), Outcome("accepted")])
    worker = Worker(gateway.url, retry=FAST_RETRY)
    job = worker.new_job("tiny")
    seen: list[str] = []
    for kind in ("accepted", "reported", "done"):
        job.on(kind, lambda _data, kind=kind: seen.append(kind))
    job.on("accepted", _trainer(job))

    job.start()

    assert job.join(timeout=30)
    assert seen == ["accepted", "reported", "accepted", "reported", "done"]
    assert job.finished and job.error is None
    assert len(gateway.reports) == 2
    first = gateway.reports[0]
    expected = train(
        traced_job.plans["training_plan"], traced_job.state, make_partition(1),
        traced_job.client_config,
    )  # fmt: skip
    for name, original in traced_job.state.items():
        torch.testing.assert_close(first.diff[name], original - expected.params[name])
    assert first.sample_count == 16
    assert first.metrics["loss"] == pytest.approx(expected.metrics["loss"])


def test_rejected_worker_retries_at_the_suggested_time(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(
        gateway, traced_job,
        script=[Outcome("rejected", retry_after=0.8), Outcome("accepted")],
    )  # fmt: skip
    worker = Worker(gateway.url, retry=FAST_RETRY)
    job = worker.new_job("tiny")
    rejections: list[Any] = []
    job.on("rejected", rejections.append)
    job.on("accepted", _trainer(job))

    job.start()

    assert job.join(timeout=30)
    times = gateway.requests_for("tiny")
    assert len(times) == 3  # rejected, accepted, finished: no busy polling
    assert 0.8 <= times[1] - times[0] < 0.8 + 1.5
    assert rejections[0].retry_after == 0.8 and rejections[0].reason == "cycle_full"
    assert len(gateway.reports) == 1


def test_stop_interrupts_a_long_rejection_wait(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job, script=[Outcome("rejected", retry_after=600)])
    job = Worker(gateway.url, retry=FAST_RETRY).new_job("tiny")
    rejected = threading.Event()
    job.on("rejected", lambda _r: rejected.set())
    job.start()
    assert rejected.wait(10)

    started = time.monotonic()
    job.stop()

    assert time.monotonic() - started < 2
    assert not job.running
    assert len(gateway.requests_for("tiny")) == 1


def test_server_errors_are_retried_with_backoff(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job, script=[Outcome("accepted")])
    gateway.fail_next = {"cycle-request": 2, "model": 1}
    job = Worker(gateway.url, retry=FAST_RETRY).new_job("tiny")
    job.on("accepted", _trainer(job))

    job.start()

    assert job.join(timeout=30)
    assert job.finished and job.error is None
    assert len(gateway.reports) == 1
    assert gateway.fail_next == {"cycle-request": 0, "model": 0}


def test_retries_are_bounded_and_end_in_a_clear_error(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job, script=[Outcome("accepted")])
    gateway.fail_next = {"cycle-request": 100}
    job = Worker(gateway.url, retry=FAST_RETRY).new_job("tiny")
    errors: list[Exception] = []
    job.on("error", errors.append)

    job.start()

    assert job.join(timeout=30)
    assert isinstance(job.error, ServerUnavailable)
    assert "failed 4 times" in str(job.error) and errors == [job.error]
    assert gateway.fail_next["cycle-request"] == 100 - 4


def test_client_errors_are_not_retried(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job)
    bad = Worker(gateway.url, auth_token="bad", retry=FAST_RETRY).new_job("tiny")
    unknown = Worker(gateway.url, retry=FAST_RETRY).new_job("nope")

    bad.start()
    unknown.start()

    assert bad.join(10) and unknown.join(10)
    assert isinstance(bad.error, AuthError)
    assert (bad.error.code, bad.error.status) == ("token_refused", 401)
    assert (
        isinstance(unknown.error, NotFoundError) and unknown.error.code == "unknown_job"
    )
    assert gateway.cycle_requests == []


def test_speed_test_runs_only_when_the_grid_requires_it(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job, name="open", script=[Outcome("rejected", 0.0)])
    add_job(
        gateway, traced_job, name="fast", requires_speed_test=True,
        script=[Outcome("rejected", 0.0)],
    )  # fmt: skip
    worker = Worker(gateway.url, retry=FAST_RETRY, speed_test_bytes=64 * 1024)
    jobs = [worker.new_job("open").start(), worker.new_job("fast").start()]

    assert all(job.join(20) for job in jobs)
    speeds = {name: body for _, name, body in gateway.cycle_requests}
    assert speeds["open"] == {}
    assert set(speeds["fast"]) == {"ping_ms", "download_kbps", "upload_kbps"}
    assert speeds["fast"]["download_kbps"] > 0 and speeds["fast"]["upload_kbps"] > 0


def test_two_jobs_run_at_once_in_one_worker(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    for name in ("first", "second"):
        add_job(gateway, traced_job, name=name, script=[Outcome("accepted")])
    worker = Worker(gateway.url, retry=FAST_RETRY)
    both_accepted = threading.Barrier(2, timeout=20)
    jobs = []
    for seed, name in enumerate(("first", "second")):
        job = worker.new_job(name)
        train_and_report = _trainer(job, seed)

        def on_accepted(
            assignment: CycleAssignment, step: Any = train_and_report
        ) -> None:
            both_accepted.wait()  # both jobs hold a cycle at the same time
            step(assignment)

        job.on("accepted", on_accepted)
        jobs.append(job.start())

    assert all(job.join(30) for job in jobs)
    assert all(job.finished and job.error is None for job in jobs)
    reports = {gateway.keys[r.request_key][1]: r for r in gateway.reports}
    assert set(reports) == {"first", "second"}
    assert reports["first"].worker_id != reports["second"].worker_id
    assert not torch.equal(
        reports["first"].diff["out.bias"], reports["second"].diff["out.bias"]
    )


def test_events_can_be_iterated_asynchronously(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job, script=[Outcome("rejected", 0.0), Outcome("accepted")])
    job = Worker(gateway.url, retry=FAST_RETRY).new_job("tiny")

    async def drive() -> list[str]:
        kinds = []
        stream = job.events()
        job.start()
        async for event in stream:
            kinds.append(event.kind)
            if event.kind == "accepted":
                assignment = event.data
                result = train(
                    assignment.plans["training_plan"].plan, assignment.params,
                    make_partition(3), assignment.client_config,
                )  # fmt: skip
                await asyncio.to_thread(
                    job.report, result.params, sample_count=result.sample_count
                )
        return kinds

    kinds = asyncio.run(drive())

    assert kinds == ["rejected", "accepted", "reported", "done"]


def test_report_refuses_parameters_of_another_model(
    gateway: ContractGateway, traced_job: TracedJob
) -> None:
    add_job(gateway, traced_job, script=[Outcome("accepted")])
    job = Worker(gateway.url, retry=FAST_RETRY).new_job("tiny")
    accepted = threading.Event()
    job.on("accepted", lambda _a: accepted.set())
    job.start()
    assert accepted.wait(20)

    with pytest.raises(InvalidArgument) as caught:
        job.report({"other": torch.zeros(2)}, sample_count=1)
    still_assigned = job.assignment is not None
    job.stop()

    assert "missing ['hidden.bias'" in str(caught.value)
    assert still_assigned and gateway.reports == []


def test_an_unreachable_grid_fails_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    job = Worker(url, retry=FAST_RETRY).new_job("tiny")
    errors: list[Exception] = []
    job.on("error", errors.append)

    started = time.monotonic()
    job.start()

    assert job.join(timeout=30)
    assert time.monotonic() - started < 10
    assert isinstance(job.error, ServerUnavailable) and errors == [job.error]
    assert "failed 4 times" in str(job.error) and "ConnectionError" in str(job.error)
