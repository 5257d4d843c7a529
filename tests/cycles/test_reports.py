"""Reports: accepted once, by their worker, for the open cycle, before the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import InvalidArgument, NotFound
from fedgrid.v1 import cycle_manager_pb2 as pb
from tests.cycles.conftest import accepted, report
from tests.support import wait_for

Status = pb.SubmitReportResponse.Status


def _reports_of(client: CycleManagerClient, job: str, number: int) -> int:
    return next(c.reports for c in client.job_status(job).cycles if c.number == number)


def test_accepted_report_is_stored_for_the_aggregator(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=3, checkpoint=4)
    seat = accepted(client.request_cycle(job, "w"))

    answer = report(client, seat.request_key, "w", samples=32)

    assert (answer.status, answer.cycle_id) == (Status.ACCEPTED, seat.cycle_id)
    listed = client.list_reports(seat.cycle_id)
    assert (listed.job_id, listed.checkpoint_number) == (job, 4)
    [stored] = listed.reports
    assert (stored.worker_id, stored.sample_count, stored.diff_size) == ("w", 32, 1234)
    assert stored.diff_object_key == f"diffs/{seat.request_key}"
    assert dict(stored.metrics) == {"loss": 0.5}


def test_duplicate_unknown_and_wrong_worker_reports_change_nothing(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=3)
    seat = accepted(client.request_cycle(job, "owner"))

    wrong = report(client, seat.request_key, "thief")
    unknown = report(client, "not-a-key", "owner")
    first = report(client, seat.request_key, "owner")
    again = report(client, seat.request_key, "owner")

    assert wrong.status == Status.WRONG_WORKER
    assert unknown.status == Status.UNKNOWN_KEY
    assert first.status == Status.ACCEPTED
    assert again.status == Status.ALREADY_REPORTED
    assert "once" in again.message
    assert _reports_of(client, job, 1) == 1
    assert len(client.list_reports(seat.cycle_id).reports) == 1


def test_late_report_is_refused(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=3, cycle_length=2)
    seat = accepted(client.request_cycle(job, "slow"))
    wait_for(lambda: time.time() > seat.deadline_unix + 0.05, what="the deadline")

    answer = report(client, seat.request_key, "slow")

    assert answer.status == Status.DEADLINE_PASSED
    assert "deadline" in answer.message
    assert client.list_reports(seat.cycle_id).reports == []


def test_report_for_an_earlier_cycle_is_refused(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=2, max_diffs=1, cycle_length=60)
    fast = accepted(client.request_cycle(job, "fast"))
    slow = accepted(client.request_cycle(job, "slow"))
    report(client, fast.request_key, "fast")  # fills max_diffs: cycle 1 closes

    while_closing = report(client, slow.request_key, "slow")
    client.checkpoint_stored(fast.cycle_id, 2)
    next_seat = accepted(client.request_cycle(job, "slow"))
    after_next_opened = report(client, slow.request_key, "slow")

    assert while_closing.status == Status.CYCLE_CLOSED
    assert after_next_opened.status == Status.CYCLE_CLOSED
    assert next_seat.cycle_number == 2
    assert [r.worker_id for r in client.list_reports(fast.cycle_id).reports] == ["fast"]
    assert _reports_of(client, job, 2) == 0


def test_malformed_report_metadata_is_an_invalid_argument(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=3)
    seat = accepted(client.request_cycle(job, "w"))

    with pytest.raises(InvalidArgument, match="sha256"):
        client.submit_report(seat.request_key, "w", 1, "diffs/x", 10, "not-hex")
    for samples in (0, -1, 2**31, 2**63 - 1):
        with pytest.raises(InvalidArgument, match="sample_count must be between 1"):
            report(client, seat.request_key, "w", samples=samples)
    with pytest.raises(NotFound):
        client.get_assignment("never-issued")
    assert report(client, seat.request_key, "w").status == Status.ACCEPTED
