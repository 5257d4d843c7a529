"""`fedgrid stack`: five services as child processes, healthy, stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from fedgrid.config import Settings
from fedgrid.errors import Unavailable
from fedgrid.localstack import LocalStack, read_stack_info
from fedgrid.localstack.embedded import redis_reachable
from tests.support import free_port, stop_process, wait_for

pytestmark = pytest.mark.slow

HEALTHY = ("SERVING", "ok")
FEDGRID = [sys.executable, "-c", "from fedgrid.cli import main; main()"]


def _assert_all_healthy(local: LocalStack) -> None:
    report = local.health()
    assert set(report) == {
        "model-store",
        "cycle-manager",
        "aggregator",
        "gateway",
        "signaling",
    }
    assert all(word in HEALTHY for word in report.values()), report


def test_stack_on_the_real_servers(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    local = LocalStack(settings)

    info = local.start(timeout=120)
    try:
        _assert_all_healthy(local)
        assert info.embedded == []
        assert requests.get(f"{info.gateway_url}/healthz", timeout=5).status_code == 200
        assert read_stack_info(settings.var_dir) is not None
        with pytest.raises(Unavailable, match="a stack is already running"):
            LocalStack(settings).start(timeout=30)
        assert read_stack_info(settings.var_dir) == info
        pids = list(info.pids.values())
    finally:
        local.stop()

    assert all(not _alive(pid) for pid in pids)
    assert read_stack_info(settings.var_dir) is None


def test_stack_falls_back_to_embedded_servers(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    redis_port, postgres_port = free_port(), free_port()
    settings = make_settings(
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        broker_url="",
        database_url=f"postgresql://postgres@127.0.0.1:{postgres_port}/fedgrid",
        var_dir=tmp_path / "embedded-var",
    )
    local = LocalStack(settings)

    info = local.start(timeout=180)
    try:
        assert sorted(info.embedded) == ["postgres", "redis"]
        assert info.redis_url == f"redis://127.0.0.1:{redis_port}/0"
        _assert_all_healthy(local)
    finally:
        local.stop()

    assert not redis_reachable(f"redis://127.0.0.1:{redis_port}/0")


def test_cli_stack_up_stops_everything_on_sigterm(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
    for key, value in vars(settings).items():
        env[f"FEDGRID_{key.upper()}"] = str(value)
    output = (settings.var_dir.parent / "stack-up.log").open("wb")
    proc = subprocess.Popen(
        [*FEDGRID, "stack", "up"],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        info = wait_for(
            lambda: read_stack_info(settings.var_dir), timeout=120, what="stack.json"
        )
        wait_for(
            lambda: requests.get(f"{info.gateway_url}/healthz", timeout=2).ok,
            timeout=120,
            what="gateway health",
        )
        status = subprocess.run(
            [*FEDGRID, "stack", "status"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        without_token = {k: v for k, v in env.items() if k != "FEDGRID_ADMIN_TOKEN"}
        listing = subprocess.run(
            [*FEDGRID, "jobs", "--json"],
            env=without_token,
            capture_output=True,
            text=True,
            timeout=60,
        )
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        stop_process(proc)
        output.close()

    log = (settings.var_dir.parent / "stack-up.log").read_text()
    assert "fedgrid stack is up" in log
    assert "fedgrid stack stopped" in log
    assert status.returncode == 0, status.stdout + status.stderr
    # the CLI finds the local stack's gateway and admin token by itself
    assert listing.returncode == 0, listing.stderr
    assert isinstance(json.loads(listing.stdout)["jobs"], list)
    assert "gateway" in status.stdout
    assert proc.returncode == 0
    assert all(not _alive(pid) for pid in info.pids.values())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that its parent has not reaped yet counts as stopped
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
