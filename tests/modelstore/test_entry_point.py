"""`python -m fedgrid_model_store` as operators run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests

from fedgrid.config import Settings
from fedgrid.db import ensure_database
from fedgrid.grpcserver import health_status, wait_until_serving
from fedgrid.modelstore.client import ModelStoreClient
from tests.modelstore.conftest import host
from tests.support import stop_process


def _environment(
    settings: Settings, database_url: str, tmp_path: Path
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
    env.update(
        FEDGRID_HOST="127.0.0.1",
        FEDGRID_DATABASE_URL=database_url,
        FEDGRID_OBJECT_STORE_PATH=str(tmp_path / "objects"),
        FEDGRID_MODEL_STORE_PORT=str(settings.model_store_port),
        FEDGRID_MODEL_STORE_METRICS_PORT=str(settings.model_store_metrics_port),
    )
    return env


def test_serves_health_metrics_and_stops_on_sigterm(
    make_settings: Callable[..., Settings],
    database_url: str,
    tmp_path: Path,
    job_name: str,
) -> None:
    settings = make_settings()
    log = (tmp_path / "model-store.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fedgrid_model_store"],
        env=_environment(settings, database_url, tmp_path),
        stderr=log,
    )
    try:
        wait_until_serving(settings.model_store_address, timeout=60)
        with ModelStoreClient(settings.model_store_address) as client:
            host(client, job_name)
        metrics = requests.get(
            f"http://127.0.0.1:{settings.model_store_metrics_port}/metrics", timeout=5
        ).text

        assert health_status(settings.model_store_address) == "SERVING"
        assert 'fedgrid_model_store_rpcs_total{method="HostJob",outcome="ok"} 1.0' in (
            metrics
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        stop_process(proc)
        log.close()


def test_refuses_an_unmigrated_database(
    make_settings: Callable[..., Settings], fresh_database_url: str, tmp_path: Path
) -> None:
    settings = make_settings()
    env = _environment(settings, fresh_database_url, tmp_path)
    ensure_database(fresh_database_url)

    result = subprocess.run(
        [sys.executable, "-m", "fedgrid_model_store"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "fedgrid db migrate" in result.stderr
