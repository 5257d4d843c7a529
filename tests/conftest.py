"""Shared fixtures: a fresh PostgreSQL database, a Redis namespace, an S3 server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import redis

from fedgrid import db
from fedgrid.config import Settings
from tests.support import free_port, port_open, stop_process, wait_for

POSTGRES_ADMIN_URL = os.environ.get(
    "FEDGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FEDGRID_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _database_url(name: str) -> str:
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_database(name: str) -> None:
    conn = psycopg2.connect(POSTGRES_ADMIN_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated database of its own for this test session, dropped afterwards."""
    name = f"fedgrid_test_{uuid.uuid4().hex[:12]}"
    url = _database_url(name)
    db.migrate(url)
    yield url
    _drop_database(name)


@pytest.fixture
def fresh_database_url() -> Iterator[str]:
    """An empty database (not migrated) for one test."""
    name = f"fedgrid_test_{uuid.uuid4().hex[:12]}"
    url = _database_url(name)
    yield url
    _drop_database(name)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of its own on the shared Redis, with its keys deleted after."""
    prefix = f"fedgrid-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    # the prefix's own keys, and kombu's bindings of queues named after it
    for pattern in (f"{prefix}*", f"_kombu.binding*{prefix}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


@pytest.fixture
def make_settings(
    database_url: str, redis_prefix: str, tmp_path: Path
) -> Callable[..., Settings]:
    """Build Settings pointing at the test database, Redis namespace and free ports."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "redis_url": REDIS_URL,
            "redis_prefix": redis_prefix,
            "database_url": database_url,
            "object_store": "file",
            "object_store_path": tmp_path / "objects",
            "gateway_port": free_port(),
            "model_store_port": free_port(),
            "cycle_manager_port": free_port(),
            "signaling_port": free_port(),
            "model_store_metrics_port": free_port(),
            "cycle_manager_metrics_port": free_port(),
            "aggregator_metrics_port": free_port(),
            "aggregation_queue": f"{redis_prefix}aggregation",
            "admin_token": uuid.uuid4().hex,
            "session_secret": uuid.uuid4().hex,
            "var_dir": tmp_path / "var",
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the S3 object-store path."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(lambda: port_open(port), timeout=60, what="moto S3 server")
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc)
