"""The gateway as it ships: `python -m fedgrid_gateway` under gunicorn."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import requests

from tests.gateway.conftest import API, Stack, gunicorn_environment
from tests.support import free_port, stop_process, wait_for


def test_gunicorn_serves_the_worker_api(start_gateway: Callable[..., Stack]) -> None:
    stack = start_gateway()
    job = stack.host()
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
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(
            lambda: requests.get(f"{url}/healthz", timeout=2),
            timeout=60,
            what="gunicorn",
        )
        auth = requests.post(f"{url}{API}/auth", json={"job": job["name"]}, timeout=30)
        token = auth.json()["session_token"]
        cycle = requests.post(
            f"{url}{API}/cycle-request",
            json={},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        metrics = requests.get(f"{url}/metrics", timeout=10)
    finally:
        stop_process(proc)
        assert proc.stderr is not None
        proc.stderr.close()

    assert health.json() == {"status": "ok"}
    assert cycle.json()["status"] == "accepted"
    assert (
        'fedgrid_gateway_cycle_requests_total{outcome="accepted",reason=""} 1.0'
        in metrics.text
    )
    assert 'route="/api/v1/auth"' in metrics.text
    assert proc.returncode == 0


def test_refuses_to_start_without_its_secrets(
    start_gateway: Callable[..., Stack],
) -> None:
    stack = start_gateway()
    env = gunicorn_environment(stack.settings, FEDGRID_GATEWAY_PORT=str(free_port()))
    del env["FEDGRID_SESSION_SECRET"]

    done = subprocess.run(
        [sys.executable, "-m", "fedgrid_gateway"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 2
    assert b"FEDGRID_SESSION_SECRET must be set" in done.stderr
