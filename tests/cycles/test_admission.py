"""Admission rules under concurrency: seats, reuse, speeds, random selection."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import AlreadyExists, InvalidArgument, NotFound, Unavailable
from fedgrid.v1 import cycle_manager_pb2 as pb
from fedgrid_cycle_manager.service import CycleManagerReplica
from tests.cycles.conftest import accepted, rejected, report
from tests.support import free_port

Reason = pb.Rejected.Reason


def test_concurrent_requests_admit_exactly_max_workers(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=100, cycle_length=120)

    with ThreadPoolExecutor(max_workers=48) as pool:
        responses = list(
            pool.map(lambda n: client.request_cycle(job, f"w{n}"), range(2000))
        )

    outcomes = Counter(response.WhichOneof("outcome") for response in responses)
    reasons = Counter(r.rejected.reason for r in responses if r.HasField("rejected"))
    keys = {r.accepted.request_key for r in responses if r.HasField("accepted")}
    assert outcomes == {"accepted": 100, "rejected": 1900}
    assert reasons == {Reason.CYCLE_FULL: 1900}
    assert len(keys) == 100
    assert all(len(key) == 43 for key in keys)  # 256 bits, url-safe base64
    cycle = client.job_status(job).cycles[0]
    assert (cycle.admitted, cycle.state) == (100, "open")


def test_rejections_carry_a_retry_delay_within_the_cycle(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=1, cycle_length=60)
    accepted(client.request_cycle(job, "first"))

    refusal = rejected(client.request_cycle(job, "second"))

    assert refusal.reason == Reason.CYCLE_FULL
    # a full cycle may close before its deadline: poll a thirtieth of its length
    assert refusal.retry_after_seconds == pytest.approx(2.0)
    assert "max_workers" in refusal.message


def test_workers_are_not_reused_until_k_cycles_later(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(
        max_workers=5, max_diffs=1, cycle_length=60, do_not_reuse_workers_until_cycle=2
    )

    def run_cycle(worker: str, checkpoint: int) -> None:
        seat = accepted(client.request_cycle(job, worker))
        assert report(client, seat.request_key, worker).status == 1
        client.checkpoint_stored(seat.cycle_id, checkpoint)

    run_cycle("alice", 2)  # cycle 1
    refusal = rejected(client.request_cycle(job, "alice"))  # cycle 2
    assert refusal.reason == Reason.WORKER_RECENTLY_USED
    assert "cycle 3" in refusal.message
    assert 50 < refusal.retry_after_seconds <= 60  # cycle 3 follows cycle 2
    run_cycle("bob", 3)  # cycle 2

    seat = accepted(client.request_cycle(job, "alice"))  # cycle 3 = 1 + 2
    assert (seat.cycle_number, seat.checkpoint_number) == (3, 3)
    assert rejected(client.request_cycle(job, "bob")).reason == (
        Reason.WORKER_RECENTLY_USED
    )


@pytest.mark.parametrize(
    ("download", "upload", "admitted"),
    [(1999.0, 5000.0, False), (5000.0, 999.0, False), (2000.0, 1000.0, True)],
)
def test_speeds_below_the_minimum_are_refused(
    client: CycleManagerClient,
    register: Callable[..., str],
    download: float,
    upload: float,
    admitted: bool,
) -> None:
    job = register(minimum_download_speed=2000, minimum_upload_speed=1000)

    response = client.request_cycle(
        job, "w", download_kbps=download, upload_kbps=upload
    )

    if admitted:
        accepted(response)
    else:
        refusal = rejected(response)
        assert refusal.reason == Reason.SPEED_TOO_LOW
        assert "kbit/s" in refusal.message


def test_random_selection_spreads_admissions_and_never_overfills(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(
        pool_selection="random",
        random_admission_probability=0.5,
        max_workers=60,
        cycle_length=120,
    )

    responses = [client.request_cycle(job, f"w{n}") for n in range(400)]

    # First come would admit all of the first 60; p=0.5 admits about 30 of them
    # (outside 15..45 has a probability below 1e-4).
    early = sum(r.HasField("accepted") for r in responses[:60])
    assert 15 <= early <= 45
    assert sum(r.HasField("accepted") for r in responses) == 60
    reasons = {r.rejected.reason for r in responses if r.HasField("rejected")}
    assert reasons == {Reason.NOT_SELECTED, Reason.CYCLE_FULL}
    not_selected = next(
        r.rejected for r in responses if r.rejected.reason == Reason.NOT_SELECTED
    )
    assert 1 <= not_selected.retry_after_seconds <= 60


def test_a_worker_holding_a_key_gets_already_assigned(
    client: CycleManagerClient, register: Callable[..., str]
) -> None:
    job = register(max_workers=5)
    seat = accepted(client.request_cycle(job, "w"))

    holding = rejected(client.request_cycle(job, "w"))
    report(client, seat.request_key, "w")
    reported = rejected(client.request_cycle(job, "w"))

    assert holding.reason == reported.reason == Reason.ALREADY_ASSIGNED
    assert "holds a request key" in holding.message
    assert "already reported" in reported.message
    assignment = client.get_assignment(seat.request_key)
    assert (assignment.worker_id, assignment.reported) == ("w", True)
    assert assignment.cycle_open


def test_unknown_job_is_an_error_not_a_rejection(client: CycleManagerClient) -> None:
    with pytest.raises(NotFound, match="not registered"):
        client.request_cycle("no-such-job", "w")


def test_registration_is_validated_and_idempotent(
    client: CycleManagerClient,
) -> None:
    job = f"job-{uuid.uuid4().hex[:12]}"
    config = json.dumps({"max_workers": 3, "cycle_length": 60})
    first = client.register_job(job, "m", "1.0.0", config, 1)
    again = client.register_job(job, "m", "1.0.0", config, 1)

    assert [c.cycle_id for c in again.cycles] == [c.cycle_id for c in first.cycles]
    with pytest.raises(AlreadyExists, match="different server config"):
        client.register_job(job, "m", "1.0.0", '{"max_workers": 4}', 1)
    with pytest.raises(InvalidArgument, match="max_workers"):
        client.register_job("job-bad", "m", "1.0.0", '{"max_workers": 0}', 1)
    with pytest.raises(InvalidArgument, match="checkpoint_number"):
        client.register_job("job-bad", "m", "1.0.0", "{}", 0)


def test_redis_down_is_unavailable_not_a_rejection(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    replica = CycleManagerReplica(settings, port=free_port(), deadline_interval=5)
    replica.start()
    try:
        with (
            CycleManagerClient(replica.address, timeout=30) as client,
            pytest.raises(Unavailable, match="Redis is unreachable"),
        ):
            client.request_cycle("any-job", "w")
    finally:
        replica.stop(grace=1.0)
