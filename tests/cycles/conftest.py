"""Fixtures for the cycle manager: in-process replicas on the real stores."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.grpcserver import wait_until_serving
from fedgrid.v1 import cycle_manager_pb2 as pb
from fedgrid_cycle_manager.service import CycleManagerReplica
from tests.conftest import REDIS_URL
from tests.support import free_port

StartReplica = Callable[..., CycleManagerReplica]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Settings on this test's Redis prefix and aggregation queue."""
    return make_settings()


@pytest.fixture
def start_replica(settings: Settings) -> Iterator[StartReplica]:
    """Start cycle-manager replicas in-process; all are stopped after the test."""
    started: list[CycleManagerReplica] = []

    def start(**options: Any) -> CycleManagerReplica:
        options.setdefault("deadline_interval", 0.05)
        options.setdefault("sweep_interval", 0.2)
        replica = CycleManagerReplica(settings, port=free_port(), **options)
        replica.start()
        started.append(replica)
        wait_until_serving(replica.address, timeout=30)
        return replica

    yield start
    for replica in started:
        replica.stop(grace=1.0)
    broker = redis.Redis.from_url(REDIS_URL)
    broker.delete(f"_kombu.binding.{settings.aggregation_queue}")
    broker.close()


@pytest.fixture
def replica(start_replica: StartReplica) -> CycleManagerReplica:
    """One running replica."""
    return start_replica()


@pytest.fixture
def client(replica: CycleManagerReplica) -> Iterator[CycleManagerClient]:
    """A client of the running replica."""
    with CycleManagerClient(replica.address, timeout=30) as connected:
        yield connected


@pytest.fixture
def register(client: CycleManagerClient) -> Callable[..., str]:
    """Register a job with a fresh id and the given server config; return its id."""

    def make(checkpoint: int = 1, **config: Any) -> str:
        job_id = f"job-{uuid.uuid4().hex[:12]}"
        config.setdefault("pool_selection", "iterate")
        client.register_job(job_id, "mnist", "1.0.0", json.dumps(config), checkpoint)
        return job_id

    return make


def accepted(response: pb.CycleResponse) -> pb.Accepted:
    """The Accepted part of a response, failing the test on a rejection."""
    assert response.WhichOneof("outcome") == "accepted", response
    return response.accepted


def rejected(response: pb.CycleResponse) -> pb.Rejected:
    """The Rejected part of a response, failing the test on an admission."""
    assert response.WhichOneof("outcome") == "rejected", response
    return response.rejected


def report(
    client: CycleManagerClient, key: str, worker: str, samples: int = 10
) -> pb.SubmitReportResponse:
    """Submit a report with plausible metadata."""
    return client.submit_report(
        key,
        worker,
        sample_count=samples,
        diff_object_key=f"diffs/{key}",
        diff_size=1234,
        diff_digest="ab" * 32,
        metrics={"loss": 0.5},
    )


def queued_tasks(settings: Settings) -> list[dict[str, Any]]:
    """Celery messages waiting on the aggregation queue: task name and kwargs."""
    broker = redis.Redis.from_url(settings.broker_url)
    try:
        raw = broker.lrange(settings.aggregation_queue, 0, -1)
    finally:
        broker.close()
    tasks = []
    for item in raw:
        message = json.loads(item)
        body = json.loads(base64.b64decode(message["body"]))
        tasks.append({"task": message["headers"]["task"], "kwargs": body[1]})
    return tasks


@pytest.fixture
def register_on() -> Iterator[Callable[..., tuple[CycleManagerClient, str]]]:
    """Register a job on a given replica; returns a client of it and the job id."""
    clients: list[CycleManagerClient] = []

    def make(
        replica: CycleManagerReplica, checkpoint: int = 1, **config: Any
    ) -> tuple[CycleManagerClient, str]:
        client = CycleManagerClient(replica.address, timeout=30)
        clients.append(client)
        job_id = f"job-{uuid.uuid4().hex[:12]}"
        config.setdefault("pool_selection", "iterate")
        client.register_job(job_id, "mnist", "1.0.0", json.dumps(config), checkpoint)
        return client, job_id

    yield make
    for client in clients:
        client.close()
