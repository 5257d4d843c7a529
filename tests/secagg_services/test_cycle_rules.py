"""The cycle manager's secure cycles: admission, round rpcs, the cycle's end."""

from __future__ import annotations

import json
import uuid
from typing import Any

import numpy as np
import pytest

from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import Conflict, InvalidArgument
from fedgrid.secagg.params import SecAggParams
from fedgrid.secagg.worker import SecAggWorker
from fedgrid.v1 import cycle_manager_pb2 as pb
from fedgrid.v1 import secagg_pb2
from tests.cycles.conftest import accepted, queued_tasks, rejected, report
from tests.support import wait_for

SECURE = {"enabled": True, "threshold": 3, "neighbours": 2, "clipping_range": 1.0}
MODEL_SIZE = 5


def _register(client: CycleManagerClient, **config: Any) -> str:
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    config.setdefault("pool_selection", "iterate")
    config.setdefault("secure_aggregation", SECURE)
    client.register_job(
        job_id, "mnist", "1.0.0", json.dumps(config), 1, model_size=MODEL_SIZE
    )
    return job_id


def _cycle(client: CycleManagerClient, job_id: str) -> pb.Cycle:
    return client.job_status(job_id).cycles[-1]


def test_secure_job_needs_the_model_size(client: CycleManagerClient) -> None:
    config = json.dumps({"secure_aggregation": SECURE})

    with pytest.raises(InvalidArgument, match="model_size"):
        client.register_job("job-no-size", "mnist", "1.0.0", config, 1)


def test_full_secure_cycle_runs_its_rounds_then_closes_for_aggregation(
    client: CycleManagerClient, settings: Settings
) -> None:
    job_id = _register(client, max_workers=3, min_diffs=2, cycle_length=60)
    keys = {
        f"w{i}": accepted(client.request_cycle(job_id, f"w{i}")).request_key
        for i in range(3)
    }

    # The cycle filled: admission closes and the run starts with its workers.
    late = rejected(client.request_cycle(job_id, "w-late"))
    assert late.reason == pb.Rejected.ADMISSION_CLOSED
    plain = report(client, keys["w0"], "w0")
    assert plain.status == pb.SubmitReportResponse.SECURE_CYCLE
    setup = secagg_pb2.SecAggSetup()
    fetched = client.fetch_secagg(keys["w0"], "w0", "setup")
    setup.ParseFromString(fetched.payload)
    assert fetched.ready and list(setup.participants) == ["w0", "w1", "w2"]
    params = SecAggParams.from_setup(setup)
    workers = {w: SecAggWorker(w, params) for w in keys}

    def answer(worker: str, round_name: str, kind: type[Any]) -> Any:
        found = client.fetch_secagg(keys[worker], worker, round_name)
        assert found.ready, (worker, round_name, found.current_round)
        message = kind()
        message.ParseFromString(found.payload)
        return message

    # Each round completes with the last worker's message.
    for w, worker in workers.items():
        assert not client.fetch_secagg(keys[w], w, "advertise").ready
        client.post_secagg(
            keys[w], w, "advertise", worker.advertise().SerializeToString()
        )
    for w, worker in workers.items():
        roster = answer(w, "advertise", secagg_pb2.KeyRoster)
        message = worker.share_keys(roster).SerializeToString()
        client.post_secagg(keys[w], w, "share_keys", message)
    values = {w: np.full(MODEL_SIZE, 0.1 * (i + 1)) for i, w in enumerate(workers)}
    for w, worker in workers.items():
        bundle = answer(w, "share_keys", secagg_pb2.ShareBundle)
        masked = worker.masked_input(bundle, values[w], 1).SerializeToString()
        client.post_secagg(keys[w], w, "masked_input", masked)
    completions = []
    for w, worker in workers.items():
        request = answer(w, "masked_input", secagg_pb2.UnmaskRequest)
        shares = worker.unmask(request).SerializeToString()
        completions.append(client.post_secagg(keys[w], w, "unmask", shares).complete)

    assert completions == [False, False, True]
    cycle = _cycle(client, job_id)
    assert cycle.state == "closing" and cycle.reports == 3
    assert "secure aggregation finished with 3 masked inputs" in cycle.close_reason
    tasks = queued_tasks(settings)
    assert [t["kwargs"]["cycle_id"] for t in tasks] == [cycle.cycle_id]


def test_admission_time_ends_a_secure_cycle_short_of_min_diffs(
    client: CycleManagerClient,
) -> None:
    job_id = _register(client, max_workers=5, min_diffs=2, cycle_length=4)
    accepted(client.request_cycle(job_id, "alone"))
    first = _cycle(client, job_id).cycle_id

    def failed() -> pb.Cycle | None:
        cycles = client.job_status(job_id).cycles
        return cycles[0] if cycles[0].state == "failed" else None

    cycle = wait_for(failed, timeout=30, what="admission to close")

    assert cycle.cycle_id == first
    assert "admission closed with 1 of min_diffs 2 workers" in cycle.close_reason
    assert len(client.job_status(job_id).cycles) == 2


def test_rounds_close_at_their_deadlines_and_a_short_run_fails_the_cycle(
    client: CycleManagerClient,
) -> None:
    job_id = _register(client, max_workers=3, min_diffs=1, cycle_length=3)
    keys = {
        f"w{i}": accepted(client.request_cycle(job_id, f"w{i}")).request_key
        for i in range(3)
    }
    setup = secagg_pb2.SecAggSetup()
    setup.ParseFromString(client.fetch_secagg(keys["w0"], "w0", "setup").payload)
    params = SecAggParams.from_setup(setup)

    # Only two of three advertise: the threshold of three cannot be met.
    for w in ("w0", "w1"):
        keys_message = SecAggWorker(w, params).advertise().SerializeToString()
        client.post_secagg(keys[w], w, "advertise", keys_message)

    def ended() -> pb.Cycle | None:
        cycles = client.job_status(job_id).cycles
        return cycles[0] if cycles[0].state == "failed" else None

    cycle = wait_for(ended, timeout=30, what="the run to fail")
    assert cycle.close_reason.startswith("secure aggregation failed: ")
    assert "threshold" in cycle.close_reason
    with pytest.raises(Conflict, match="failed"):
        client.fetch_secagg(keys["w0"], "w0", "advertise")
