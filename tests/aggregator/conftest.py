"""Aggregator fixtures: a real model store and cycle manager, jobs and cycles."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis
import torch

from fedgrid.aggregation import CycleAggregator
from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.grpcserver import wait_until_serving
from fedgrid.localstack.health import celery_health
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.objectstore import ObjectStore, object_store_from_settings
from fedgrid.tensors import frame, load_state_stream, state_stream_bytes
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid.v1 import report_pb2
from fedgrid_cycle_manager.service import CycleManagerReplica
from fedgrid_model_store.server import build_server
from tests.conftest import REDIS_URL
from tests.support import free_port, stop_process, wait_for

CHUNK_BYTES = 64 * 1024


def model_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "fc.weight": torch.randn(6, 5, generator=generator),
        "fc.bias": torch.randn(6, generator=generator),
    }


@dataclass
class Upload:
    """One worker's report for run_cycle."""

    diff: Mapping[str, torch.Tensor]
    samples: int = 10
    metrics: Mapping[str, float] = field(default_factory=dict)
    wrong_digest: bool = False


@dataclass
class Grid:
    """The services the aggregator talks to, and helpers to drive a job."""

    settings: Settings
    models: ModelStoreClient
    cycles: CycleManagerClient
    objects: ObjectStore

    def aggregator(self) -> CycleAggregator:
        return CycleAggregator(
            self.models,
            self.cycles,
            self.objects,
            chunk_bytes=CHUNK_BYTES,
            max_report_bytes=self.settings.max_report_bytes,
        )

    def host(
        self,
        averaging: Mapping[str, Any] | None = None,
        max_workers: int = 3,
        plans: Sequence[tuple[str, bytes]] = (),
        averaging_plan: str = "",
    ) -> pb.Job:
        """Host a job with model_state() as checkpoint 1 and register it."""
        config = {
            "max_workers": max_workers,
            "pool_selection": "iterate",
            "cycle_length": 600,
            "averaging": dict(averaging or {}),
        }
        header = pb.HostJobHeader(
            name=f"agg-{uuid.uuid4().hex[:10]}",
            version="1.0.0",
            client_config_json="{}",
            server_config_json=json.dumps(config),
            averaging_plan=averaging_plan,
        )
        blobs = [
            (pb.BlobRef(kind=pb.BlobRef.MODEL), [state_stream_bytes(model_state())])
        ]
        blobs += [
            (pb.BlobRef(kind=pb.BlobRef.PLAN, name=name, format="ops"), [data])
            for name, data in plans
        ]
        job = self.models.host_job(header, blobs)
        self.cycles.register_job(
            job.id, job.name, job.version, header.server_config_json, 1
        )
        return job

    def run_cycle(self, job: pb.Job, uploads: Sequence[Upload]) -> str:
        """Admit one worker per upload, store each diff, report it; the cycle id."""
        cycle_id = ""
        for index, upload in enumerate(uploads):
            worker = f"worker-{uuid.uuid4().hex[:8]}"
            answer = self.cycles.request_cycle(job.id, worker)
            assert answer.WhichOneof("outcome") == "accepted", answer
            seat = answer.accepted
            cycle_id = seat.cycle_id
            report = report_pb2.Report(
                request_key=seat.request_key,
                sample_count=upload.samples,
                metrics=dict(upload.metrics),
            )
            blob = frame(report.SerializeToString()) + state_stream_bytes(
                upload.diff, chunk_bytes=CHUNK_BYTES
            )
            key = f"diffs/{job.id}/{cycle_id}/{index}"
            stored = self.objects.put(key, [blob])
            reply = self.cycles.submit_report(
                seat.request_key,
                worker,
                sample_count=upload.samples,
                diff_object_key=key,
                diff_size=stored.size,
                diff_digest="0" * 64 if upload.wrong_digest else stored.sha256,
                metrics=dict(upload.metrics),
            )
            assert reply.status == 1, reply  # ACCEPTED
        return cycle_id

    def checkpoint(self, job: pb.Job, number: int) -> dict[str, torch.Tensor]:
        _, data = self.models.open_checkpoint(job.name, job.version, number=number)
        return load_state_stream(io.BytesIO(b"".join(data)))

    def cycle_state(self, job: pb.Job, cycle_id: str) -> str:
        status = self.cycles.job_status(job.id)
        return next(c.state for c in status.cycles if c.cycle_id == cycle_id)


@pytest.fixture
def grid_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(chunk_bytes=CHUNK_BYTES, aggregation_visibility_timeout=2)


@pytest.fixture
def grid(grid_settings: Settings) -> Iterator[Grid]:
    """A model store and a cycle-manager replica on free ports, with clients."""
    settings = grid_settings
    store = build_server(settings, bind=settings.model_store_address)
    store.start()
    replica = CycleManagerReplica(settings, deadline_interval=0.1, sweep_interval=1.0)
    replica.start()
    wait_until_serving(settings.model_store_address)
    wait_until_serving(settings.cycle_manager_address)
    models = ModelStoreClient(settings.model_store_address, chunk_bytes=CHUNK_BYTES)
    cycles = CycleManagerClient(settings.cycle_manager_address, timeout=30)
    try:
        yield Grid(settings, models, cycles, object_store_from_settings(settings))
    finally:
        models.close()
        cycles.close()
        replica.stop(grace=1.0)
        store.stop(grace=1.0)
        broker = redis.Redis.from_url(REDIS_URL)
        broker.delete(settings.aggregation_queue)
        broker.delete(f"_kombu.binding.{settings.aggregation_queue}")
        broker.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """The FEDGRID_* variables that make Settings.from_env() equal settings."""
    env: dict[str, str] = {}
    for name, value in vars(settings).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text:
            env[f"FEDGRID_{name.upper()}"] = text
    return env


@dataclass
class WorkerProcess:
    """A `python -m fedgrid_aggregator` child and its Celery node name."""

    process: subprocess.Popen[bytes]
    node: str
    log: Path
    metrics_port: int


@pytest.fixture
def start_worker(
    grid_settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start aggregator worker processes; each is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(**overrides: Any) -> WorkerProcess:
        name = f"agg-{uuid.uuid4().hex[:8]}"
        settings = replace(
            grid_settings,
            aggregator_name=name,
            aggregator_metrics_port=free_port(),
            **overrides,
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
        env.update(settings_env(settings))
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "fedgrid_aggregator"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = f"{name}@{socket.gethostname()}"
        worker = WorkerProcess(process, node, log, settings.aggregator_metrics_port)
        started.append(worker)
        wait_for(
            lambda: celery_health(settings.broker_url, worker.node) == "ok",
            timeout=90,
            what=f"aggregator worker {worker.node} to answer ping",
        )
        return worker

    yield start
    for worker in started:
        stop_process(worker.process)
