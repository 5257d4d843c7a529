"""Replicas on one Redis and PostgreSQL behave as one, and survive restarts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.v1 import cycle_manager_pb2 as pb
from tests.cycles.conftest import StartReplica, accepted, queued_tasks, report
from tests.support import wait_for

Status = pb.SubmitReportResponse.Status


def test_restart_mid_cycle_keeps_the_cycle_and_its_reports(
    start_replica: StartReplica,
    register_on: Callable[..., tuple[CycleManagerClient, str]],
) -> None:
    first = start_replica()
    client, job = register_on(first, max_workers=3, max_diffs=2, cycle_length=60)
    one = accepted(client.request_cycle(job, "one"))
    two = accepted(client.request_cycle(job, "two"))
    report(client, one.request_key, "one")
    first.stop(grace=1.0)

    second = start_replica()
    with CycleManagerClient(second.address, timeout=30) as after:
        before_report = after.job_status(job).cycles[0]
        answer = report(after, two.request_key, "two")
        repeat = report(after, one.request_key, "one")
        listed = after.list_reports(one.cycle_id)
        cycle = after.job_status(job).cycles[0]

    assert (before_report.state, before_report.admitted) == ("open", 2)
    assert before_report.reports == 1
    assert answer.status == Status.ACCEPTED
    assert repeat.status == Status.ALREADY_REPORTED
    assert sorted(r.worker_id for r in listed.reports) == ["one", "two"]
    assert (cycle.state, cycle.reports) == ("closing", 2)


def test_two_replicas_share_seats_and_close_once(
    start_replica: StartReplica,
    register_on: Callable[..., tuple[CycleManagerClient, str]],
    settings: Settings,
) -> None:
    left, right = start_replica(), start_replica()
    to_left, job = register_on(left, max_workers=40, min_diffs=1, cycle_length=4)
    with CycleManagerClient(right.address, timeout=30) as to_right:
        clients = [to_left, to_right]
        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(
                pool.map(
                    lambda n: clients[n % 2].request_cycle(job, f"w{n}"), range(400)
                )
            )
        seats = [r.accepted for r in responses if r.HasField("accepted")]
        by_replica = Counter(
            n % 2 for n, r in enumerate(responses) if r.HasField("accepted")
        )
        for seat in seats[:5]:
            worker = next(
                f"w{n}"
                for n, r in enumerate(responses)
                if r.accepted.request_key == seat.request_key
            )
            assert report(to_right, seat.request_key, worker).status == Status.ACCEPTED

        wait_for(
            lambda: to_right.job_status(job).cycles[0].state == "closing",
            timeout=15,
            what="the deadline close",
        )

    assert len(seats) == 40
    assert set(by_replica) == {0, 1}  # both replicas admitted workers
    # the close is recorded first, then the aggregation is enqueued
    tasks = wait_for(lambda: queued_tasks(settings), timeout=15, what="enqueue")
    assert [task["kwargs"]["cycle_id"] for task in tasks] == [seats[0].cycle_id]
    assert len(to_left.list_reports(seats[0].cycle_id).reports) == 5
