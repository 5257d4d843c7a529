"""The real grid for SDK, CLI and simulator tests: every service on loopback.

Model store and cycle manager serve gRPC in this process, the gateway's
Flask app runs on a werkzeug server thread, and the aggregator runs as a
real Celery worker process (when its package is installed).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from werkzeug.serving import make_server

from fedgrid.config import Settings
from tests.conftest import REDIS_URL
from tests.support import free_port, stop_process

HAS_AGGREGATOR = importlib.util.find_spec("fedgrid_aggregator.__main__") is not None
NEEDS_AGGREGATOR = "the aggregator service (fedgrid_aggregator) is not installed"


def grid_settings(database_url: str, folder: Path, **overrides: Any) -> Settings:
    """Settings for one grid: own Redis prefix and queue, free ports, a tmp dir."""
    prefix = f"fedgrid-test:{uuid.uuid4().hex[:12]}:"
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "database_url": database_url,
        "object_store": "file",
        "object_store_path": folder / "objects",
        "gateway_port": free_port(),
        "model_store_port": free_port(),
        "cycle_manager_port": free_port(),
        "aggregator_metrics_port": free_port(),
        "aggregation_queue": f"{prefix}aggregation",
        "admin_token": uuid.uuid4().hex,
        "session_secret": uuid.uuid4().hex,
        "var_dir": folder / "var",
        "gateway_auth_per_ip": 0,
        "gateway_cycle_requests_per_ip": 0,
        "gateway_cycle_requests_per_worker": 0,
    }
    values.update(overrides)
    return Settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The FEDGRID_* variables that reproduce settings in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDGRID_")}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if text:
            env[f"FEDGRID_{field.name.upper()}"] = text
    return env


@dataclasses.dataclass
class Grid:
    settings: Settings
    url: str

    @property
    def admin_token(self) -> str:
        return self.settings.admin_token


@contextmanager
def running_grid(settings: Settings) -> Iterator[Grid]:
    """Start every service on settings' ports; stop them all afterwards."""
    from fedgrid.cycles.client import CycleManagerClient
    from fedgrid.grpcserver import wait_until_serving
    from fedgrid.modelstore.client import ModelStoreClient
    from fedgrid.objectstore import object_store_from_settings
    from fedgrid_cycle_manager.service import CycleManagerReplica
    from fedgrid_gateway.app import create_app
    from fedgrid_model_store.server import build_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    model_store = build_server(settings, bind=f"127.0.0.1:{settings.model_store_port}")
    model_store.start()
    replica = CycleManagerReplica(
        settings,
        port=settings.cycle_manager_port,
        deadline_interval=0.1,
        sweep_interval=0.5,
    )
    replica.start()
    aggregator: subprocess.Popen[bytes] | None = None
    broker = redis.Redis.from_url(REDIS_URL)
    server = None
    thread = None
    try:
        wait_until_serving(model_store.service.address, timeout=30)
        wait_until_serving(replica.address, timeout=30)
        if HAS_AGGREGATOR:
            aggregator = subprocess.Popen(
                [sys.executable, "-m", "fedgrid_aggregator"],
                env=settings_env(settings),
                start_new_session=True,
            )
        with (
            ModelStoreClient(model_store.service.address) as store_client,
            CycleManagerClient(replica.address, timeout=30) as cycle_client,
        ):
            app = create_app(
                settings,
                store_client,
                cycle_client,
                object_store_from_settings(settings),
                broker,
            )
            server = make_server("127.0.0.1", settings.gateway_port, app, threaded=True)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            yield Grid(settings, f"http://127.0.0.1:{settings.gateway_port}")
    finally:
        if server is not None and thread is not None:
            server.shutdown()
            server.server_close()
            thread.join(10)
        if aggregator is not None:
            stop_process(aggregator)
        replica.stop(grace=1.0)
        model_store.stop(grace=1.0)
        keys = list(broker.scan_iter(match=f"{settings.redis_prefix}*", count=1000))
        keys += list(broker.scan_iter(match=f"*{settings.aggregation_queue}*"))
        if keys:
            broker.delete(*keys)
        broker.close()
