"""Running gRPC services: health protocol, metrics port, graceful SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server

from fedgrid.errors import Unavailable

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]

Registration = tuple[Callable[[Any, grpc.Server], None], object]


class GrpcService:
    """A started gRPC server with its health servicer."""

    def __init__(
        self,
        name: str,
        registrations: Sequence[Registration],
        bind: str,
        max_workers: int = 32,
    ) -> None:
        self.name = name
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            # without this, a second server on a busy port shares it silently
            options=[*CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)],
        )
        for add, servicer in registrations:
            add(servicer, self.server)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        try:
            self.port = self.server.add_insecure_port(bind)
        except RuntimeError as exc:
            raise Unavailable(f"{name}: cannot bind {bind}: {exc}") from exc
        if self.port == 0:
            raise Unavailable(f"{name}: cannot bind {bind}; is the port in use?")
        self.address = f"{bind.rpartition(':')[0]}:{self.port}"

    def start(self) -> None:
        """Start serving and report SERVING on the health protocol."""
        self.server.start()
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(self.name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float = 5.0) -> None:
        """Report NOT_SERVING, then stop, letting calls in flight finish."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def run_service(service: GrpcService, metrics_port: int | None, host: str) -> None:
    """Serve until SIGTERM or SIGINT, with metrics on their own port."""
    if metrics_port is not None:
        try:
            start_http_server(metrics_port, addr=host)
        except OSError as exc:
            service.stop(grace=0)
            raise SystemExit(
                f"{service.name}: cannot serve metrics on {host}:{metrics_port}: {exc}"
            ) from exc
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logger.info(
            "[%s] stopping signal=%s", service.name, signal.Signals(signum).name
        )
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service.start()
    logger.info(
        "[%s] started address=%s metrics_port=%s",
        service.name,
        service.address,
        metrics_port,
    )
    stopping.wait()
    service.stop()
    logger.info("[%s] stopped", service.name)


def channel(address: str) -> grpc.Channel:
    """An insecure channel with fedgrid's message limits."""
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def health_status(address: str, timeout: float = 2.0, service: str = "") -> str:
    """The health protocol's answer as a word, or "UNREACHABLE"."""
    with channel(address) as chan:
        stub = health_pb2_grpc.HealthStub(chan)
        try:
            reply = stub.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def wait_until_serving(address: str, timeout: float = 30.0) -> None:
    """Block until the server at address reports SERVING, or raise Unavailable."""
    deadline = time.monotonic() + timeout
    with channel(address) as chan:
        try:
            grpc.channel_ready_future(chan).result(timeout=timeout)
        except grpc.FutureTimeoutError as exc:
            raise Unavailable(f"no gRPC server at {address} after {timeout}s") from exc
    while time.monotonic() < deadline:
        if health_status(address) == "SERVING":
            return
        time.sleep(0.05)
    raise Unavailable(f"gRPC server at {address} is not SERVING after {timeout}s")
