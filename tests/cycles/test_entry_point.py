"""`python -m fedgrid_cycle_manager`: schema check, health, metrics, SIGTERM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable

from fedgrid import db
from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.grpcserver import wait_until_serving
from tests.support import port_open, stop_process, wait_for


def _environment(settings: Settings) -> dict[str, str]:
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("FEDGRID")
    }
    env.update(
        {
            "FEDGRID_REDIS_URL": settings.redis_url,
            "FEDGRID_REDIS_PREFIX": settings.redis_prefix,
            "FEDGRID_DATABASE_URL": settings.database_url,
            "FEDGRID_AGGREGATION_QUEUE": settings.aggregation_queue,
            "FEDGRID_CYCLE_MANAGER_PORT": str(settings.cycle_manager_port),
            "FEDGRID_CYCLE_MANAGER_METRICS_PORT": str(
                settings.cycle_manager_metrics_port
            ),
        }
    )
    return env


def test_service_serves_metrics_and_stops_on_sigterm(settings: Settings) -> None:
    job = f"job-{uuid.uuid4().hex[:12]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedgrid_cycle_manager"],
        env=_environment(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        address = f"127.0.0.1:{settings.cycle_manager_port}"
        wait_until_serving(address, timeout=60)
        with CycleManagerClient(address) as client:
            config = json.dumps({"pool_selection": "iterate"})
            client.register_job(job, "m", "1.0.0", config, 1)
            client.request_cycle(job, "w")
        metrics_port = settings.cycle_manager_metrics_port
        wait_for(lambda: port_open(metrics_port), timeout=30, what="metrics port")
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()

        proc.terminate()
        code = proc.wait(timeout=30)
    finally:
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()

    assert code == 0
    assert 'fedgrid_cycle_admissions_total{outcome="ACCEPTED"} 1.0' in text
    assert "fedgrid_open_cycles 1.0" in text


def test_service_refuses_an_unmigrated_database(
    make_settings: Callable[..., Settings], fresh_database_url: str
) -> None:
    db.ensure_database(fresh_database_url)
    settings = make_settings(database_url=fresh_database_url)

    result = subprocess.run(
        [sys.executable, "-m", "fedgrid_cycle_manager"],
        env=_environment(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "fedgrid db migrate" in result.stderr
