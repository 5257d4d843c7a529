"""A moto S3 server fixture started the way moto 5's command line accepts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.support import free_port, port_open, stop_process, wait_for


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port (moto 5 takes no service name)."""
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
