"""Gateway fixtures: real model store, cycle manager and object store behind a
gateway served over HTTP on a free loopback port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
import requests
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server

from fedgrid import tensors
from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.grpcserver import wait_until_serving
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.objectstore import ObjectStore, object_store_from_settings
from fedgrid.plans import trace_training_plan
from fedgrid.plans.examples import sgd_training_step
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid.v1 import report_pb2
from fedgrid_cycle_manager.service import CycleManagerReplica
from fedgrid_gateway.app import create_app
from fedgrid_gateway.bodies import BodyTimeouts
from fedgrid_model_store.server import build_server
from tests.conftest import REDIS_URL
from tests.support import free_port, stop_process, wait_for

API = "/api/v1"
PROTOBUF = "application/x-protobuf"
MAX_REPORT_BYTES = 64 * 1024


class TinyModel(torch.nn.Module):
    """A linear classifier small enough to trace and ship in every test."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, data: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.fc(data)
        return result


@dataclass(frozen=True)
class Artifacts:
    """A model and its traced training plan, made once per session."""

    state: dict[str, torch.Tensor]
    plan_bytes: bytes


@pytest.fixture(scope="session")
def artifacts() -> Artifacts:
    torch.manual_seed(0)
    model = TinyModel()
    example = {
        "data": torch.randn(4, 3),
        "target": torch.randint(0, 2, (4,)),
        "lr": torch.tensor(0.1),
    }
    plan = trace_training_plan(sgd_training_step, model, example, name="train")
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    return Artifacts(state=state, plan_bytes=plan.to_bytes())


def job_upload(
    name: str,
    version: str,
    model: Mapping[str, torch.Tensor],
    server_config: Mapping[str, Any] | str,
    client_config: Mapping[str, Any] | None = None,
    plans: Mapping[str, bytes] | None = None,
    protocols: Mapping[str, bytes] | None = None,
    plan_format: str = "ops",
) -> bytes:
    """A framed HostJobPart stream as `fedgrid push` sends it."""
    config_text = (
        server_config if isinstance(server_config, str) else json.dumps(server_config)
    )
    header = pb.HostJobHeader(
        name=name,
        version=version,
        server_config_json=config_text,
        client_config_json=json.dumps(client_config or {}),
    )
    parts = [pb.HostJobPart(header=header)]
    parts.append(pb.HostJobPart(blob=pb.BlobRef(kind=pb.BlobRef.MODEL)))
    parts += [
        pb.HostJobPart(data=piece)
        for piece in tensors.encode_state_stream(model, chunk_bytes=64)
    ]
    for plan_name, data in (plans or {}).items():
        ref = pb.BlobRef(kind=pb.BlobRef.PLAN, name=plan_name, format=plan_format)
        parts += [pb.HostJobPart(blob=ref), pb.HostJobPart(data=data)]
    for protocol_name, data in (protocols or {}).items():
        ref = pb.BlobRef(kind=pb.BlobRef.PROTOCOL, name=protocol_name)
        parts += [pb.HostJobPart(blob=ref), pb.HostJobPart(data=data)]
    return b"".join(tensors.frame(part.SerializeToString()) for part in parts)


def report_body(
    request_key: str,
    diff: Mapping[str, torch.Tensor],
    sample_count: int = 4,
    metrics: Mapping[str, float] | None = None,
) -> bytes:
    """A framed Report followed by the framed diff state stream."""
    report = report_pb2.Report(
        request_key=request_key, sample_count=sample_count, metrics=metrics or {}
    )
    return tensors.frame(report.SerializeToString()) + tensors.state_stream_bytes(
        diff, chunk_bytes=16
    )


@dataclass
class Stack:
    """A running gateway over real backends, with helpers for its callers."""

    settings: Settings
    url: str
    model_store: ModelStoreClient
    cycle_manager: CycleManagerClient
    store: ObjectStore
    artifacts: Artifacts
    app: Any = None
    http: requests.Session = field(default_factory=requests.Session)

    def store_keys(self, prefix: str) -> list[str]:
        """Object keys under prefix (file backend: walk the directory)."""
        root = self.settings.object_store_path / prefix
        if not root.exists():
            return []
        return [
            str(path.relative_to(self.settings.object_store_path))
            for path in root.rglob("*")
            if path.is_file()
        ]

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.admin_token}"}

    def admin_upload(self) -> dict[str, str]:
        """Headers of a job upload: the admin token and the protobuf type."""
        return {**self.admin(), "Content-Type": PROTOBUF}

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, **kwargs)

    def host(
        self,
        server_config: Mapping[str, Any] | None = None,
        name: str | None = None,
        plans: Mapping[str, bytes] | None = None,
        client_config: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Host a job through the admin API; return its JSON."""
        config = {"pool_selection": "iterate", "max_workers": 5, "cycle_length": 60}
        config.update(server_config or {})
        body = job_upload(
            name or f"job-{uuid.uuid4().hex[:8]}",
            "1.0.0",
            self.artifacts.state,
            config,
            client_config=client_config or {"batch_size": 4, "lr": 0.1},
            plans={"training_plan": self.artifacts.plan_bytes}
            if plans is None
            else plans,
        )
        reply = self.post(f"{API}/admin/jobs", data=body, headers=self.admin_upload())
        assert reply.status_code == 201, reply.text
        return dict(reply.json())

    def auth(self, job: str, auth_token: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"job": job}
        if auth_token is not None:
            body["auth_token"] = auth_token
        reply = self.post(f"{API}/auth", json=body)
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def cycle(self, session_token: str, **speeds: float) -> requests.Response:
        return self.post(
            f"{API}/cycle-request",
            json=speeds,
            headers={"Authorization": f"Bearer {session_token}"},
        )


@pytest.fixture
def backends(
    make_settings: Callable[..., Settings],
) -> Iterator[tuple[Settings, ModelStoreClient, CycleManagerClient]]:
    """A model store and a cycle manager in-process on free ports."""
    settings = make_settings(max_report_bytes=MAX_REPORT_BYTES)
    model_store = build_server(settings, bind=f"127.0.0.1:{free_port()}")
    model_store.start()
    replica = CycleManagerReplica(
        settings, port=free_port(), deadline_interval=0.05, sweep_interval=0.5
    )
    replica.start()
    try:
        wait_until_serving(model_store.service.address, timeout=30)
        wait_until_serving(replica.address, timeout=30)
        with (
            ModelStoreClient(model_store.service.address) as store_client,
            CycleManagerClient(replica.address, timeout=30) as cycle_client,
        ):
            yield settings, store_client, cycle_client
    finally:
        replica.stop(grace=1.0)
        model_store.stop(grace=1.0)
        broker = redis.Redis.from_url(REDIS_URL)
        broker.delete(f"_kombu.binding.{settings.aggregation_queue}")
        broker.close()


class ServerThread:
    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def start_gateway(
    backends: tuple[Settings, ModelStoreClient, CycleManagerClient],
    artifacts: Artifacts,
) -> Iterator[Callable[..., Stack]]:
    """Start gateways over the shared backends, with setting overrides."""
    base, store_client, cycle_client = backends
    servers: list[ServerThread] = []
    clients: list[redis.Redis] = []

    def start(body_timeouts: BodyTimeouts | None = None, **overrides: Any) -> Stack:
        values = {
            "gateway_auth_per_ip": 0,
            "gateway_cycle_requests_per_ip": 0,
            "gateway_cycle_requests_per_worker": 0,
            **overrides,
        }
        settings = _replace(base, **values)
        client = redis.Redis.from_url(REDIS_URL)
        clients.append(client)
        store = object_store_from_settings(settings)
        app = create_app(
            settings,
            store_client,
            cycle_client,
            store,
            client,
            body_timeouts=body_timeouts,
        )
        server = ServerThread(app)
        servers.append(server)
        return Stack(
            settings=settings,
            url=f"http://127.0.0.1:{server.port}",
            model_store=store_client,
            cycle_manager=cycle_client,
            store=store,
            artifacts=artifacts,
            app=app,
        )

    yield start
    for server in servers:
        server.stop()
    for client in clients:
        client.close()


@pytest.fixture
def stack(start_gateway: Callable[..., Stack]) -> Stack:
    """One gateway with rate limits off."""
    return start_gateway()


def _replace(settings: Settings, **values: Any) -> Settings:
    import dataclasses

    return dataclasses.replace(settings, **values)


# --- keys and a verification endpoint ------------------------------------


@dataclass(frozen=True)
class RsaKeys:
    private_pem: bytes
    public_pem: str

    @classmethod
    def fresh(cls) -> RsaKeys:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        return cls(private_pem=private_pem, public_pem=public.decode())


@pytest.fixture(scope="session")
def rsa_keys() -> RsaKeys:
    return RsaKeys.fresh()


@dataclass
class VerifyEndpoint:
    """A loopback HTTP server answering token checks with a chosen status."""

    url: str
    status: int = 200
    seen: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def verify_endpoint() -> Iterator[VerifyEndpoint]:
    endpoint = VerifyEndpoint(url="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            endpoint.seen.append((self.command, self.headers.get("Authorization", "")))
            self.send_response(endpoint.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = _answer
        do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/verify"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


# --- the gateway as it ships, under gunicorn ------------------------------


def gunicorn_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The process environment for `python -m fedgrid_gateway` over settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FEDGRID_")
    }
    env.update(
        {
            "FEDGRID_HOST": "127.0.0.1",
            "FEDGRID_REDIS_URL": settings.redis_url,
            "FEDGRID_REDIS_PREFIX": settings.redis_prefix,
            "FEDGRID_DATABASE_URL": settings.database_url,
            "FEDGRID_OBJECT_STORE": "file",
            "FEDGRID_OBJECT_STORE_PATH": str(settings.object_store_path),
            "FEDGRID_ADMIN_TOKEN": settings.admin_token,
            "FEDGRID_SESSION_SECRET": settings.session_secret,
            "FEDGRID_MAX_REPORT_BYTES": str(settings.max_report_bytes),
            "FEDGRID_GATEWAY_WORKERS": "1",
            "FEDGRID_GATEWAY_THREADS": "4",
            **extra,
        }
    )
    return env


@pytest.fixture
def gunicorn_gateway(stack: Stack) -> Iterator[str]:
    """`python -m fedgrid_gateway` over the stack's backends; yields its URL."""
    port = free_port()
    env = gunicorn_environment(
        stack.settings,
        FEDGRID_GATEWAY_PORT=str(port),
        FEDGRID_MODEL_STORE_ADDRESS=stack.model_store.address,
        FEDGRID_CYCLE_MANAGER_ADDRESS=stack.cycle_manager.address,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedgrid_gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            lambda: requests.get(f"{url}/healthz", timeout=2).ok,
            timeout=60,
            what="gunicorn",
        )
        yield url
    finally:
        stop_process(proc)
