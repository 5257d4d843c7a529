"""Workers on loopback form WebRTC meshes through signaling and move big messages."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import subprocess
import sys
from collections.abc import Callable

import pytest

from fedgrid.gateway.sessions import SessionIssuer
from fedgrid.worker.p2p import (
    P2PConfig,
    PeerGone,
    PeerMesh,
    SignalingRefused,
)
from tests.signaling.conftest import Replica
from tests.support import stop_process

FIVE_MB = 5 * 1024 * 1024
LOOPBACK = P2PConfig.loopback()


def _payload(sender: str, receiver: str, size: int) -> bytes:
    """Bytes that differ per pair and per position, so mix-ups show."""
    seed = hashlib.sha256(f"{sender}->{receiver}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


async def _join_all(
    urls: list[str], issuer: SessionIssuer, room: dict[str, str], names: list[str]
) -> list[PeerMesh]:
    meshes = []
    for index, name in enumerate(names):
        token = issuer.issue(name, room["job_id"])
        meshes.append(
            await PeerMesh.join(urls[index % len(urls)], token, **room, config=LOOPBACK)
        )
    return meshes


@pytest.mark.slow
def test_five_workers_form_a_mesh_and_exchange_five_megabyte_messages(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    # Workers alternate between two replicas, so half the pairs meet through Redis.
    urls = [start_replica().url, start_replica().url]
    names = [f"worker-{n}" for n in range(5)]

    async def scenario() -> tuple[dict[str, frozenset[str]], dict[str, dict[str, str]]]:
        meshes = await _join_all(urls, issuer, room, names)
        try:
            await asyncio.gather(*(m.wait_for_peers(4, timeout=60) for m in meshes))
            connected = {m.peer_id: m.peers for m in meshes}

            # Every worker sends its own 5 MB message to every other worker.
            async def send_all(mesh: PeerMesh) -> None:
                await asyncio.gather(
                    *(
                        mesh.send(peer, _payload(mesh.peer_id, peer, FIVE_MB))
                        for peer in names
                        if peer != mesh.peer_id
                    )
                )

            async def receive_all(mesh: PeerMesh) -> dict[str, str]:
                digests = {}
                for _ in range(4):
                    message = await mesh.receive(timeout=120)
                    digests[message.peer_id] = hashlib.sha256(message.data).hexdigest()
                return digests

            results = await asyncio.gather(
                *(send_all(m) for m in meshes), *(receive_all(m) for m in meshes)
            )
            received = {
                name: digests
                for name, digests in zip(names, results[len(meshes) :], strict=True)
                if digests is not None
            }
            return connected, received
        finally:
            await asyncio.gather(*(m.close() for m in meshes))

    connected, received = asyncio.run(scenario())

    for name in names:
        assert connected[name] == frozenset(names) - {name}
        expected = {
            peer: hashlib.sha256(_payload(peer, name, FIVE_MB)).hexdigest()
            for peer in names
            if peer != name
        }
        assert received[name] == expected


def test_an_unauthorised_worker_cannot_join_a_mesh(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    url = start_replica().url
    forged = SessionIssuer("not-the-grid-secret-but-long-enough").issue(
        "mallory", room["job_id"]
    )

    async def attempt(token: str) -> SignalingRefused:
        with pytest.raises(SignalingRefused) as caught:
            await PeerMesh.join(url, token, **room, config=LOOPBACK)
        return caught.value

    forged_error = asyncio.run(attempt(forged))
    other_job_error = asyncio.run(attempt(issuer.issue("mallory", "another-job")))

    assert forged_error.code == "unauthenticated"
    assert other_job_error.code == "forbidden"


@pytest.mark.slow
def test_a_peer_that_vanishes_mid_transfer_leaves_the_others_working(
    start_replica: Callable[..., Replica],
    issuer: SessionIssuer,
    room: dict[str, str],
) -> None:
    url = start_replica().url

    async def scenario() -> tuple[
        str, bytes, list[str], type[BaseException] | None, str
    ]:
        alice, bob = await _join_all([url], issuer, room, ["alice", "bob"])
        doomed = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.signaling.mesh_worker", url),
                *(issuer.issue("vanishing", room["job_id"]), json.dumps(room)),
                *("alice", str(40 * 1024 * 1024)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            await alice.wait_for_peers(2, timeout=60)
            first = await alice.receive(timeout=60)  # "starting", then 40 MB
            # Alice also pushes a big message to the vanishing peer.
            pushing = asyncio.create_task(
                alice.send("vanishing", _payload("alice", "vanishing", 40 * 2**20))
            )
            signal_sent = asyncio.get_running_loop().time()
            doomed.send_signal(signal.SIGKILL)
            failure: type[BaseException] | None = None
            try:
                await asyncio.wait_for(pushing, timeout=30)
            except PeerGone as exc:
                failure = type(exc)
            gone_after = asyncio.get_running_loop().time() - signal_sent

            # The other two keep working, with big messages both ways.
            await alice.send("bob", _payload("alice", "bob", FIVE_MB))
            to_bob = await bob.receive(timeout=60)
            await bob.send("alice", b"still here")
            to_alice = await alice.receive(timeout=60)
            assert gone_after < 30
            return (
                first.peer_id,
                to_bob.data,
                sorted(alice.peers | {to_alice.data.decode()}),
                failure,
                to_alice.peer_id,
            )
        finally:
            stop_process(doomed)  # type: ignore[arg-type]
            if doomed.stdout is not None:
                doomed.stdout.close()
            await asyncio.gather(alice.close(), bob.close())

    first_from, to_bob, alice_sees, failure, reply_from = asyncio.run(scenario())

    assert first_from == "vanishing"
    assert to_bob == _payload("alice", "bob", FIVE_MB)
    assert alice_sees == ["bob", "still here"]
    assert failure is PeerGone
    assert reply_from == "bob"
