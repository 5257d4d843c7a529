"""Secure aggregation's sealed shares between ring neighbours over a PeerMesh.

With `transport: webrtc` a worker sends each sealed share straight to its
recipient over a WebRTC data channel and posts to the grid only the share
round's message with every ciphertext replaced by its SHA-256 digest. The
grid relays the digests as usual, so each worker learns which senders the
grid counted and checks the ciphertexts its peers sent against them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

from google.protobuf.message import DecodeError

from fedgrid.v1 import secagg_pb2
from fedgrid.worker.errors import WorkerError
from fedgrid.worker.p2p import P2PConfig, P2PError, PeerMesh

logger = logging.getLogger(__name__)

T = TypeVar("T")
PROTOCOL = "secagg+"
POLL_SECONDS = 0.05


def digest(ciphertext: bytes) -> bytes:
    """What the grid holds of a sealed share sent over the mesh."""
    return hashlib.sha256(ciphertext).digest()


def digested(message: secagg_pb2.ShareKeys) -> secagg_pb2.ShareKeys:
    """The share round's message with each ciphertext replaced by its digest."""
    copy = secagg_pb2.ShareKeys()
    copy.CopyFrom(message)
    for share in copy.shares:
        share.ciphertext = digest(share.ciphertext)
    return copy


class MeshShares:
    """One worker's room for one cycle, served by an event loop of its own.

    The SDK's threads call join, send and collect; each blocks until done.
    """

    def __init__(
        self,
        url: str,
        token: str,
        job_id: str,
        cycle_id: str,
        config: P2PConfig | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self.job_id = job_id
        self.cycle_id = cycle_id
        self.config = config or P2PConfig()
        self._mesh: PeerMesh | None = None
        self._received: dict[str, list[secagg_pb2.EncryptedShare]] = {}
        self._closing = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fedgrid-secagg-mesh", daemon=True
        )
        self._thread.start()

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(max(timeout, 0.0) + 5.0)
        except TimeoutError as exc:
            future.cancel()
            raise P2PError("the peer-to-peer channel did not answer in time") from exc

    def join(self, worker_id: str, timeout: float) -> None:
        """Join the cycle's secagg+ room; this worker's id there must match."""

        async def join() -> PeerMesh:
            return await PeerMesh.join(
                self.url,
                self._token,
                job_id=self.job_id,
                cycle_id=self.cycle_id,
                protocol=PROTOCOL,
                config=self.config,
            )

        mesh = self._run(join(), min(timeout, self.config.connect_timeout))
        self._mesh = mesh
        if mesh.peer_id != worker_id:
            raise WorkerError(
                f"the signaling service knows this worker as {mesh.peer_id!r}, "
                f"the grid as {worker_id!r}",
                code="secagg",
            )

    def _joined(self) -> PeerMesh:
        if self._mesh is None:
            raise WorkerError("the worker has not joined its peers", code="secagg")
        return self._mesh

    def send(self, message: secagg_pb2.ShareKeys, timeout: float) -> set[str]:
        """Send every sealed share to its recipient; returns those reached."""
        mesh = self._joined()

        async def one(share: secagg_pb2.EncryptedShare) -> str | None:
            try:
                async with asyncio.timeout(timeout):
                    while share.recipient not in mesh.peers:
                        await asyncio.sleep(POLL_SECONDS)
                    await mesh.send(share.recipient, share.SerializeToString())
            except (TimeoutError, P2PError) as exc:
                logger.warning(
                    "[MeshShares.send] cycle=%s recipient=%s not reached: %s",
                    self.cycle_id,
                    share.recipient,
                    exc or "timed out",
                )
                return None
            return share.recipient

        async def every() -> list[str | None]:
            return await asyncio.gather(*(one(share) for share in message.shares))

        reached = {peer for peer in self._run(every(), timeout) if peer is not None}
        logger.info(
            "[MeshShares.send] cycle=%s sent=%d of %d",
            self.cycle_id,
            len(reached),
            len(message.shares),
        )
        return reached

    def collect(
        self, worker_id: str, wanted: Mapping[str, bytes], timeout: float
    ) -> dict[str, secagg_pb2.EncryptedShare]:
        """The shares whose digests the grid relayed, as far as they arrived."""
        mesh = self._joined()
        found: dict[str, secagg_pb2.EncryptedShare] = {}

        def match() -> None:
            for sender, hashed in wanted.items():
                for share in self._received.get(sender, []):
                    if digest(share.ciphertext) == hashed:
                        found[sender] = share

        async def gather() -> None:
            match()
            try:
                async with asyncio.timeout(timeout):
                    while len(found) < len(wanted):
                        message = await mesh.receive()
                        self._keep(worker_id, message.peer_id, message.data)
                        match()
            except TimeoutError:
                return

        self._run(gather(), timeout)
        missing = sorted(set(wanted) - set(found))
        if missing:
            logger.warning(
                "[MeshShares.collect] cycle=%s missing=%d senders=%s",
                self.cycle_id,
                len(missing),
                ",".join(missing),
            )
        return found

    def _keep(self, worker_id: str, peer: str, data: bytes) -> None:
        share = secagg_pb2.EncryptedShare()
        try:
            share.ParseFromString(data)
        except DecodeError:
            logger.warning("[MeshShares.collect] peer=%s sent no share", peer)
            return
        if share.sender != peer or share.recipient != worker_id:
            logger.warning(
                "[MeshShares.collect] peer=%s sent a misaddressed share", peer
            )
            return
        self._received.setdefault(peer, []).append(share)

    def close(self) -> None:
        """Leave the room and stop the loop; later calls do nothing."""
        with self._closing:
            self._close()

    def _close(self) -> None:
        mesh, self._mesh = self._mesh, None
        if mesh is not None and self._loop.is_running():
            try:
                self._run(mesh.close(), 10.0)
            except P2PError as exc:
                logger.warning("[MeshShares.close] cycle=%s %s", self.cycle_id, exc)
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()
