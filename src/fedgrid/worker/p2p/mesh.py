"""PeerMesh: join a signaling room and hold a data channel to every peer in it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

from aiortc.exceptions import InvalidAccessError, InvalidStateError

from fedgrid.worker.p2p.config import P2PConfig
from fedgrid.worker.p2p.errors import P2PError, PeerGone, PeerTimeout
from fedgrid.worker.p2p.link import PeerLink
from fedgrid.worker.p2p.signaling_client import SignalingClient
from fedgrid.worker.p2p.transport import Message

logger = logging.getLogger(__name__)


class PeerMesh:
    """A worker's data channels to the other workers of one protocol room.

    Of each pair of workers the one with the lower id offers, so exactly one
    connection forms between them. Implements the Transport protocol.
    """

    def __init__(self, signaling: SignalingClient, config: P2PConfig) -> None:
        self._signaling = signaling
        self._config = config
        self._links: dict[str, PeerLink] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._signaling_open = True
        self.departed: set[str] = set()
        self._reader = asyncio.create_task(self._read_signaling())
        for peer in signaling.joined.peers:
            self._meet(peer)

    @classmethod
    async def join(
        cls,
        url: str,
        token: str,
        *,
        job_id: str,
        cycle_id: str,
        protocol: str,
        config: P2PConfig | None = None,
    ) -> PeerMesh:
        """Join the room of job, cycle and protocol at the signaling url."""
        config = config or P2PConfig()
        signaling = await SignalingClient.join(
            url, token, job_id, cycle_id, protocol, config.connect_timeout
        )
        logger.info(
            "[P2P.Join] peer=%s peers=%s",
            signaling.joined.peer_id,
            len(signaling.joined.peers),
        )
        return cls(signaling, config)

    async def __aenter__(self) -> PeerMesh:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def peer_id(self) -> str:
        """This worker's id in the room (its session's worker id)."""
        return self._signaling.joined.peer_id

    @property
    def peers(self) -> frozenset[str]:
        """Peers with an open data channel."""
        return frozenset(p for p, link in self._links.items() if link.is_open)

    async def wait_for_peers(self, count: int, timeout: float | None = None) -> None:
        """Wait until data channels to count peers are open."""
        limit = self._config.connect_timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(limit):
                while len(self.peers) < count:
                    if not self._signaling_open:
                        raise P2PError("the signaling connection closed")
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError as exc:
            raise PeerTimeout(
                f"{len(self.peers)} of {count} peers connected after {limit:g} seconds"
            ) from exc

    async def send(self, peer_id: str, data: bytes) -> None:
        """Deliver data to one peer, whatever its size."""
        link = self._links.get(peer_id)
        if link is None:
            raise PeerGone(f"{peer_id} is not connected to this worker")
        if not link.is_open:
            await link.wait_open(self._config.connect_timeout)
        await link.send(data)

    async def receive(self, timeout: float | None = None) -> Message:
        """The next whole message from any peer."""
        async with asyncio.timeout(timeout):
            return await self._inbox.get()

    async def close(self) -> None:
        """Leave the room and close every connection."""
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for link in list(self._links.values()):
            await link.close()
        self._links.clear()
        await self._signaling.close()

    # Signaling

    async def _read_signaling(self) -> None:
        try:
            async for frame in self._signaling.frames():
                await self._on_frame(frame)
        finally:
            self._signaling_open = False
            self._changed.set()

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        kind, sender = frame.get("type"), str(frame.get("from", ""))
        link = self._links.get(sender)
        try:
            if kind == "peer_joined":
                self._meet(str(frame["peer"]))
            elif kind == "peer_left":
                await self._forget(str(frame["peer"]))
            elif kind == "offer":
                await self._answer(sender, str(frame["sdp"]))
            elif kind == "answer" and link is not None:
                await link.accept_answer(str(frame["sdp"]))
            elif kind == "candidate" and link is not None:
                await link.add_candidate(frame.get("candidate"))
            elif kind == "error":
                logger.warning(
                    "[P2P.Signaling] refused error=%s message=%s",
                    frame.get("error"),
                    frame.get("message"),
                )
        except (KeyError, ValueError, P2PError, InvalidAccessError) as exc:
            logger.warning("[P2P.Signaling] bad frame type=%s error=%s", kind, exc)
        except InvalidStateError as exc:
            logger.warning("[P2P.Signaling] out of turn type=%s error=%s", kind, exc)

    def _meet(self, peer: str) -> None:
        """Start connecting to a peer when this worker is the one to offer."""
        if peer in self._links or peer == self.peer_id:
            return
        self.departed.discard(peer)
        if self.peer_id < peer:
            link = self._new_link(peer)
            self._spawn(self._offer(link))

    async def _offer(self, link: PeerLink) -> None:
        sdp = await link.create_offer()
        try:
            await self._signaling.send(
                {"type": "offer", "to": link.peer_id, "sdp": sdp}
            )
        except P2PError as exc:
            logger.warning("[P2P.Offer] not sent peer=%s error=%s", link.peer_id, exc)

    async def _answer(self, peer: str, sdp: str) -> None:
        if peer == self.peer_id or not peer:
            return
        old = self._links.get(peer)
        if old is not None:
            if self.peer_id < peer:
                logger.warning("[P2P.Offer] ignored offer from answerer peer=%s", peer)
                return
            await old.close()  # the peer started over
        self.departed.discard(peer)
        link = self._new_link(peer)
        answer = await link.answer(sdp)
        await self._signaling.send({"type": "answer", "to": peer, "sdp": answer})

    async def _forget(self, peer: str) -> None:
        link = self._links.pop(peer, None)
        self.departed.add(peer)
        if link is not None:
            logger.info("[P2P.Leave] peer=%s", peer)
            await link.close()
        self._changed.set()

    # Links

    def _new_link(self, peer: str) -> PeerLink:
        link = PeerLink(peer, self._config, self._deliver, self._on_link_closed)
        self._links[peer] = link
        self._spawn(self._watch_open(link))
        return link

    async def _watch_open(self, link: PeerLink) -> None:
        try:
            await link.wait_open(self._config.connect_timeout)
        except PeerTimeout:
            logger.warning("[P2P.Connect] timed out peer=%s", link.peer_id)
            return
        logger.info("[P2P.Connect] open peer=%s", link.peer_id)
        self._changed.set()

    def _deliver(self, peer: str, data: bytes) -> None:
        self._inbox.put_nowait(Message(peer, data))

    def _on_link_closed(self, link: PeerLink) -> None:
        if self._links.get(link.peer_id) is link:
            del self._links[link.peer_id]
            self.departed.add(link.peer_id)
        self._changed.set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
