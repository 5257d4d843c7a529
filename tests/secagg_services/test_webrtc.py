"""A secure cycle whose sealed shares travel between workers over WebRTC."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from fedgrid.cli.admin_client import AdminClient
from fedgrid.job import TracedJob
from fedgrid.secagg.driver import Round
from fedgrid.secagg.rounds import SecAggRounds
from fedgrid.v1 import secagg_pb2
from fedgrid.worker import Worker
from fedgrid.worker.p2p import P2PConfig
from tests.conftest import REDIS_URL
from tests.secagg_services.test_secure_cycle import RETRY, Crowd, _pull, _status
from tests.support import free_port, stop_process, wait_for
from tests.worker.real_stack import HAS_AGGREGATOR, NEEDS_AGGREGATOR, Grid
from tests.worker.real_stack import settings_env as grid_env
from tests.worker.sample_job import make_job

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAS_AGGREGATOR, reason=NEEDS_AGGREGATOR),
]
SECURE: dict[str, Any] = {
    "enabled": True,
    "threshold": 7,
    "neighbours": 10,
    "clipping_range": 0.05,
    "transport": "webrtc",
}


@pytest.fixture
def signaling(grid: Grid, tmp_path: Path) -> Iterator[str]:
    """One signaling process checking the grid's session tokens."""
    port = free_port()
    settings = dataclasses.replace(grid.settings, signaling_port=port)
    log = tmp_path / "signaling.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fedgrid_signaling"],
            env=grid_env(settings),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def healthy() -> bool:
        url = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as reply:
            return bool(reply.status == 200)

    try:
        wait_for(healthy, timeout=60, what="signaling /healthz")
        yield f"ws://127.0.0.1:{port}/"
    finally:
        stop_process(proc)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def rounds(grid: Grid) -> Iterator[SecAggRounds]:
    store = SecAggRounds(REDIS_URL, grid.settings.redis_prefix)
    yield store
    store.close_connection()


class MeshCrowd(Crowd):
    """SDK workers whose peers are on this machine only."""

    def join(self, grid: Grid, count: int) -> None:
        for index in range(count):
            worker = Worker(grid.url, retry=RETRY, p2p=P2PConfig.loopback())
            job = worker.new_job(self.traced.spec.name)
            job.on("accepted", self._trainer(job, index))
            job.on("error", lambda exc: self.errors.append(str(exc)))
            self.jobs[str(index)] = job
            job.start()


def _host(grid: Grid, signaling_url: str) -> TracedJob:
    spec = make_job(
        name=f"webrtc-{uuid.uuid4().hex[:8]}",
        max_workers=4,
        min_diffs=4,
        max_diffs=4,
        cycle_length=40,
        num_cycles=1,
        secure_aggregation=SECURE,
    )
    client_config = dict(spec.client_config, signaling_url=signaling_url)
    traced = dataclasses.replace(spec, client_config=client_config).trace()
    client = AdminClient(grid.url, grid.admin_token)
    try:
        client.push(traced.host_body())
    finally:
        client.close()
    return traced


def test_four_workers_share_keys_over_webrtc_and_make_the_weighted_mean(
    grid: Grid, signaling: str, rounds: SecAggRounds, tmp_path: Path
) -> None:
    traced = _host(grid, signaling)
    crowd = MeshCrowd(traced)
    crowd.join(grid, 4)
    try:
        wait_for(lambda: len(crowd.trained) == 4, timeout=60, what="all trained")
        (cycle_id,) = crowd.cycle_ids

        def shared() -> bool:
            current, _ = rounds.state(cycle_id)
            return current == Round.MASKED_INPUT.name

        # Nobody reports before the test has read what the grid relayed.
        wait_for(shared, timeout=60, what="keys shared")
        relayed = rounds.messages(cycle_id, Round.SHARE_KEYS)[Round.SHARE_KEYS]
        crowd.decided.set()

        def completed() -> bool:
            cycles = _status(grid, traced.spec.name)["cycles"]
            return bool(cycles) and cycles[0]["state"] in ("completed", "failed")

        wait_for(completed, timeout=60, what="the secure cycle to end")
    finally:
        crowd.stop()

    cycle = _status(grid, traced.spec.name)["cycles"][0]
    assert cycle["state"] == "completed", (cycle["close_reason"], crowd.errors)
    assert cycle["checkpoint"] == 2 and cycle["reports"] == 4
    # The grid held only 32-byte digests of the sealed shares, one per neighbour.
    assert sorted(relayed) == sorted(crowd.trained)
    for raw in relayed.values():
        message = secagg_pb2.ShareKeys.FromString(raw)
        assert len(message.shares) == 2
        assert all(len(share.ciphertext) == 32 for share in message.shares)

    new = _pull(grid, traced.spec.name, 2, tmp_path / "two.state")
    limit = float(SECURE["clipping_range"])
    inputs = list(crowd.trained.values())
    total_weight = sum(weight for _, weight in inputs)
    for name, before in traced.state.items():
        weighted = sum(
            weight * diff[name].to(torch.float64).clamp(-limit, limit)
            for diff, weight in inputs
        )
        expected = before.to(torch.float64) - weighted / total_weight
        assert float((expected - before).abs().max()) > 1e-3  # the model moved
        torch.testing.assert_close(
            new[name].to(torch.float64), expected, rtol=0, atol=1e-5
        )
