"""Closing at the deadline, aggregation results, attempts and the end of a job."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import Conflict, NotFound
from fedgrid.v1 import cycle_manager_pb2 as pb
from tests.cycles.conftest import StartReplica, accepted, queued_tasks, rejected, report
from tests.support import wait_for

Reason = pb.Rejected.Reason


def _cycle(client: CycleManagerClient, job: str, number: int) -> pb.Cycle | None:
    found = [c for c in client.job_status(job).cycles if c.number == number]
    return found[0] if found else None


def _state(client: CycleManagerClient, job: str, number: int) -> str:
    cycle = _cycle(client, job, number)
    return cycle.state if cycle else ""


def test_deadline_closes_without_further_reports_and_enqueues_once(
    client: CycleManagerClient, register: Callable[..., str], settings: Settings
) -> None:
    job = register(
        max_workers=5, max_diffs=5, min_diffs=1, cycle_length=2, checkpoint=7
    )
    seat = accepted(client.request_cycle(job, "w"))
    report(client, seat.request_key, "w")

    wait_for(lambda: _state(client, job, 1) == "closing", timeout=15, what="close")

    cycle = _cycle(client, job, 1)
    assert cycle is not None
    assert "deadline" in cycle.close_reason
    assert cycle.closed_at_unix >= cycle.deadline_unix
    # the close is recorded first, then the aggregation is enqueued
    tasks = wait_for(lambda: queued_tasks(settings), timeout=15, what="enqueue")
    assert tasks == [
        {
            "task": "fedgrid.aggregate_cycle",
            "kwargs": {
                "job_id": job,
                "cycle_id": seat.cycle_id,
                "checkpoint_number": 7,
            },
        }
    ]
    assert rejected(client.request_cycle(job, "late")).reason == Reason.NO_OPEN_CYCLE


def test_max_diffs_report_closes_and_enqueues_exactly_one_task(
    client: CycleManagerClient, register: Callable[..., str], settings: Settings
) -> None:
    job = register(max_workers=3, max_diffs=3, cycle_length=60)
    seats = [accepted(client.request_cycle(job, f"w{n}")) for n in range(3)]

    for n, seat in enumerate(seats):
        report(client, seat.request_key, f"w{n}")

    assert _state(client, job, 1) == "closing"
    tasks = queued_tasks(settings)
    assert [task["kwargs"]["cycle_id"] for task in tasks] == [seats[0].cycle_id]
    assert len(client.list_reports(seats[0].cycle_id).reports) == 3


def test_too_few_reports_at_the_deadline_fail_the_cycle_and_open_the_next(
    client: CycleManagerClient, register: Callable[..., str], settings: Settings
) -> None:
    job = register(max_workers=5, min_diffs=2, cycle_length=2)
    seat = accepted(client.request_cycle(job, "lonely"))
    report(client, seat.request_key, "lonely")

    wait_for(lambda: _state(client, job, 2) == "open", timeout=15, what="cycle 2")

    first = _cycle(client, job, 1)
    assert first is not None
    assert first.state == "failed"
    assert "min_diffs 2" in first.close_reason
    assert first.checkpoint_number == 0
    assert queued_tasks(settings) == []
    status = client.job_status(job)
    assert (status.state, status.completed_cycles) == ("running", 0)
    assert accepted(client.request_cycle(job, "next")).cycle_number == 2


def test_checkpoint_stored_is_idempotent_and_num_cycles_finishes_the_job(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=2, max_diffs=1, num_cycles=2, cycle_length=60)
    cycle_ids = []
    for checkpoint in (2, 3):
        seat = accepted(client.request_cycle(job, f"w{checkpoint}"))
        with pytest.raises(Conflict, match="still open"):
            client.checkpoint_stored(seat.cycle_id, checkpoint)
        report(client, seat.request_key, f"w{checkpoint}")
        client.checkpoint_stored(seat.cycle_id, checkpoint)
        cycle_ids.append(seat.cycle_id)

    repeated = client.checkpoint_stored(cycle_ids[0], 2)
    refusal = rejected(client.request_cycle(job, "more"))

    assert repeated.state == "finished"
    assert repeated.completed_cycles == 2
    assert "num_cycles reached" in repeated.finish_reason
    assert [(c.number, c.state, c.checkpoint_number) for c in repeated.cycles] == [
        (1, "completed", 2),
        (2, "completed", 3),
    ]
    assert refusal.reason == Reason.JOB_FINISHED
    assert refusal.retry_after_seconds > 0
    with pytest.raises(Conflict, match="already ended"):
        client.checkpoint_stored(cycle_ids[0], 9)
    with pytest.raises(NotFound):
        client.checkpoint_stored("no-such-cycle", 2)


def test_failed_aggregations_use_up_attempts_and_stop_the_job(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(
        max_workers=2, max_diffs=1, num_cycles=2, max_cycle_attempts=2, cycle_length=60
    )
    seat = accepted(client.request_cycle(job, "a"))
    report(client, seat.request_key, "a")
    client.aggregation_failed(seat.cycle_id, "diff shapes do not match")
    unchanged = client.aggregation_failed(seat.cycle_id, "again")

    second = accepted(client.request_cycle(job, "b"))
    report(client, second.request_key, "b")
    status = client.aggregation_failed(second.cycle_id, "out of memory")

    assert len(unchanged.cycles) == 2
    assert "diff shapes do not match" in unchanged.cycles[0].close_reason
    assert status.state == "finished"
    assert "max_cycle_attempts reached" in status.finish_reason
    assert [c.state for c in status.cycles] == ["failed", "failed"]
    assert rejected(client.request_cycle(job, "c")).reason == Reason.JOB_FINISHED


def test_idle_cycles_count_as_attempts(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(num_cycles=1, max_cycle_attempts=2, cycle_length=0.5)

    wait_for(lambda: client.job_status(job).state == "finished", timeout=15)

    status = client.job_status(job)
    assert [c.state for c in status.cycles] == ["failed", "failed"]
    assert "max_cycle_attempts reached: 2 cycles ran" in status.finish_reason


def test_sweeper_enqueues_again_when_aggregation_stays_quiet(
    start_replica: StartReplica,
    register_on: Callable[..., tuple[CycleManagerClient, str]],
    settings: Settings,
) -> None:
    client, job = register_on(
        start_replica(aggregation_timeout=0.5), max_workers=1, cycle_length=60
    )
    seat = accepted(client.request_cycle(job, "w"))
    report(client, seat.request_key, "w")

    wait_for(lambda: len(queued_tasks(settings)) >= 2, timeout=15, what="a resend")
    client.checkpoint_stored(seat.cycle_id, 2)

    tasks = queued_tasks(settings)
    assert {task["kwargs"]["cycle_id"] for task in tasks} == {seat.cycle_id}
    # A completed cycle leaves the sweeper's set: no more resends.
    live = redis.Redis.from_url(settings.redis_url)
    try:
        assert live.zscore(f"{settings.redis_prefix}cm:closing", seat.cycle_id) is None
    finally:
        live.close()
