"""Dead connections and dead replicas leave their rooms; health, metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace

from fedgrid.config import Settings
from fedgrid.gateway.sessions import SessionIssuer
from tests.signaling.conftest import Frame, RawClient, Replica, settings_env
from tests.support import free_port, stop_process


def _idle_client(url: str, token: str, room: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.signaling.idle_client", url, token),
            *(room["job_id"], room["cycle_id"], room["protocol"]),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["type"] == "joined"
    return proc


def test_a_connection_that_stops_answering_pings_leaves(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    replica = start_replica()

    async def scenario() -> tuple[Frame, float]:
        alice = await RawClient.open(replica.url)
        await alice.join(issuer.issue("alice", room["job_id"]), room)
        frozen = _idle_client(replica.url, issuer.issue("frozen", room["job_id"]), room)
        try:
            assert await alice.frame() == {"type": "peer_joined", "peer": "frozen"}
            os.kill(frozen.pid, signal.SIGSTOP)  # alive, but answers nothing
            started = time.monotonic()
            left = await alice.frame(timeout=15)
            waited = time.monotonic() - started
        finally:
            os.kill(frozen.pid, signal.SIGKILL)
            os.kill(frozen.pid, signal.SIGCONT)
            stop_process(frozen)  # type: ignore[arg-type]
            if frozen.stdout is not None:
                frozen.stdout.close()
        await alice.close()
        return left, waited

    left, waited = asyncio.run(scenario())

    assert left == {"type": "peer_left", "peer": "frozen"}
    assert waited < 10  # ping every 0.5 s, pong due within 1 s


def test_peers_of_a_dead_replica_leave_the_room(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    survivor, doomed = start_replica(), start_replica()

    async def scenario() -> tuple[Frame, Frame]:
        alice = await RawClient.open(survivor.url)
        await alice.join(issuer.issue("alice", room["job_id"]), room)
        bob = await RawClient.open(doomed.url)
        await bob.join(issuer.issue("bob", room["job_id"]), room)
        assert await alice.frame() == {"type": "peer_joined", "peer": "bob"}

        doomed.proc.kill()  # no chance to leave the room itself
        left = await alice.frame(timeout=15)

        carol = await RawClient.open(survivor.url)
        rejoined = await carol.join(issuer.issue("carol", room["job_id"]), room)
        await alice.close()
        await carol.close()
        return left, rejoined

    left, rejoined = asyncio.run(scenario())

    assert left == {"type": "peer_left", "peer": "bob"}
    assert rejoined["peers"] == ["alice"]


def test_health_metrics_and_a_clean_stop_on_sigterm(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    replica = start_replica()

    async def scenario() -> tuple[str, int | None]:
        alice = await RawClient.open(replica.url)
        await alice.join(issuer.issue("alice", room["job_id"]), room)
        url = f"{replica.http_url}/metrics"
        metrics = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url, timeout=10).read().decode()
        )
        replica.proc.send_signal(signal.SIGTERM)
        await alice.connection.wait_closed()
        return metrics, alice.connection.close_code

    metrics, close_code = asyncio.run(scenario())
    exit_code = replica.proc.wait(timeout=30)

    assert 'fedgrid_signaling_joins_total{outcome="ok"} 1.0' in metrics
    assert "fedgrid_signaling_connections 1.0" in metrics
    assert close_code == 1001
    assert exit_code == 0
    log = replica.log.read_text()
    assert "[Signaling] stopped" in log
    assert "Traceback" not in log


def test_the_service_refuses_to_start_without_its_secret_or_redis(
    signaling_settings: Settings,
) -> None:
    no_secret = replace(signaling_settings, session_secret="")
    no_redis = replace(signaling_settings, redis_url=f"redis://127.0.0.1:{free_port()}")

    results = [
        subprocess.run(
            [sys.executable, "-m", "fedgrid_signaling"],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=60,
        )
        for settings in (no_secret, no_redis)
    ]

    assert [result.returncode for result in results] == [1, 1]
    assert "FEDGRID_SESSION_SECRET must be set" in results[0].stderr
    assert "Redis cannot be reached" in results[1].stderr
    assert "Traceback" not in results[0].stderr + results[1].stderr
