"""Fixtures for signaling tests: replicas as child processes, tokens, raw clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from fedgrid.config import Settings
from fedgrid.gateway.sessions import SessionIssuer
from tests.conftest import REDIS_URL
from tests.support import free_port, stop_process, wait_for

Frame = dict[str, Any]

# Short timings so that dead connections and replicas are noticed quickly.
FAST = {
    "signaling_ping_interval": 0.5,
    "signaling_ping_timeout": 1.0,
    "signaling_member_ttl": 1.5,
    "signaling_join_timeout": 2.0,
}


@dataclass
class Replica:
    """One signaling process."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
    for name in (
        "redis_url",
        "redis_prefix",
        "session_secret",
        "signaling_port",
        "signaling_max_message_bytes",
        "signaling_messages_per_second",
        "signaling_room_size",
        "signaling_ping_interval",
        "signaling_ping_timeout",
        "signaling_member_ttl",
        "signaling_join_timeout",
    ):
        env[f"FEDGRID_{name.upper()}"] = str(getattr(settings, name))
    env["FEDGRID_LOG_LEVEL"] = "INFO"
    return env


def healthy(replica: Replica) -> bool:
    with urllib.request.urlopen(f"{replica.http_url}/healthz", timeout=2) as reply:
        return bool(reply.status == 200)


@pytest.fixture
def signaling_settings(redis_prefix: str) -> Settings:
    """Settings for replicas that share one Redis namespace and session secret."""
    return Settings(
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        session_secret=uuid.uuid4().hex,
        signaling_port=free_port(),
        **FAST,  # type: ignore[arg-type]
    )


@pytest.fixture
def start_replica(
    signaling_settings: Settings, tmp_path: Path
) -> Iterator[Callable[..., Replica]]:
    """Start signaling processes on free ports; all are stopped afterwards."""
    started: list[Replica] = []

    def start(**overrides: Any) -> Replica:
        settings = replace(signaling_settings, signaling_port=free_port(), **overrides)
        log = tmp_path / f"signaling-{len(started)}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fedgrid_signaling"],
                env=settings_env(settings),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        replica = Replica(proc, settings.signaling_port, log)
        started.append(replica)
        wait_for(lambda: healthy(replica), timeout=60, what="signaling /healthz")
        return replica

    yield start
    for replica in started:
        if replica.proc.poll() is None:
            os.kill(replica.proc.pid, signal.SIGCONT)
        stop_process(replica.proc)


@pytest.fixture
def issuer(signaling_settings: Settings) -> SessionIssuer:
    """The gateway's own session issuer with the replicas' secret."""
    return SessionIssuer.from_settings(signaling_settings)


@pytest.fixture
def room() -> dict[str, str]:
    """A fresh room of its own for one test."""
    return {
        "job_id": f"job-{uuid.uuid4().hex[:8]}",
        "cycle_id": f"cycle-{uuid.uuid4().hex[:8]}",
        "protocol": "secagg+",
    }


class RawClient:
    """A bare WebSocket client speaking the signaling frames, for tests."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @classmethod
    async def open(cls, url: str) -> RawClient:
        return cls(await connect(url, proxy=None, open_timeout=20))

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        text = frame if isinstance(frame, str | bytes) else json.dumps(frame)
        await self.connection.send(text)

    async def frame(self, timeout: float = 10.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            data = json.loads(await self.connection.recv())
        assert isinstance(data, dict)
        return data

    async def join(self, token: str, room: dict[str, str]) -> dict[str, Any]:
        await self.send({"type": "join", "token": token, **room})
        return await self.frame()

    async def close(self) -> None:
        await self.connection.close()


def join_frame(token: str, room: dict[str, str]) -> dict[str, Any]:
    return {"type": "join", "token": token, **room}
