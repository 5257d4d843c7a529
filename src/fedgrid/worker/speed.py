"""The speed test a grid may require: ping, download and upload in kbit/s."""

from __future__ import annotations

import logging
import os
import time

from fedgrid.worker.client import API, GridClient

logger = logging.getLogger(__name__)

DEFAULT_TEST_BYTES = 1024 * 1024
PINGS = 3


def kbps(size: int, seconds: float) -> float:
    """Kilobits per second for size bytes moved in seconds."""
    return size * 8 / 1000 / max(seconds, 1e-6)


def measure(client: GridClient, size: int = DEFAULT_TEST_BYTES) -> dict[str, float]:
    """Measure ping (best of a few), download and upload speed against the grid."""
    best = float("inf")
    for _ in range(PINGS):
        started = time.perf_counter()
        client.get_json(f"{API}/speed-test/ping")
        best = min(best, time.perf_counter() - started)

    started = time.perf_counter()
    response = client.request(
        "GET", f"{API}/speed-test/download", params={"size": size}, stream=True
    )
    received = sum(len(part) for part in response.iter_content(64 * 1024))
    download = kbps(received, time.perf_counter() - started)

    payload = os.urandom(size)
    started = time.perf_counter()
    client.request("POST", f"{API}/speed-test/upload", data=payload)
    upload = kbps(size, time.perf_counter() - started)

    speeds = {
        "ping_ms": best * 1000,
        "download_kbps": download,
        "upload_kbps": upload,
    }
    logger.info(
        "[SpeedTest.measure] ping_ms=%.1f download_kbps=%.0f upload_kbps=%.0f",
        speeds["ping_ms"],
        download,
        upload,
    )
    return speeds
