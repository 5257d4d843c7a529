"""One WebRTC peer connection and its data channel, with framing and back-pressure."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from fedgrid.worker.p2p.config import P2PConfig
from fedgrid.worker.p2p.errors import FramingError, PeerGone, PeerTimeout
from fedgrid.worker.p2p.framing import Stitcher, split
from fedgrid.worker.p2p.host_candidates import restricted_host_candidates

logger = logging.getLogger(__name__)

CHANNEL_LABEL = "fedgrid"

MessageHandler = Callable[[str, bytes], None]
ClosedHandler = Callable[["PeerLink"], None]


class PeerLink:
    """A data channel to one peer; sends split messages, stitches received ones."""

    def __init__(
        self,
        peer_id: str,
        config: P2PConfig,
        on_message: MessageHandler,
        on_closed: ClosedHandler,
    ) -> None:
        self.peer_id = peer_id
        self._config = config
        self._on_message = on_message
        self._on_closed = on_closed
        self._stitcher = Stitcher(config.max_message_bytes, config.max_partial_messages)
        self._message_ids = itertools.count(1)
        self._channel: RTCDataChannel | None = None
        self._open = asyncio.Event()
        self._drained = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None
        self.closed = False
        servers = [
            RTCIceServer(list(s.urls), s.username, s.credential)
            for s in config.ice_servers
        ]
        # An explicit list, even empty: None would make aiortc use a public STUN.
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._pc.on("connectionstatechange", self._on_state)
        self._pc.on("datachannel", self._attach)

    @property
    def is_open(self) -> bool:
        """Whether messages can be sent now."""
        return self._open.is_set() and not self.closed

    async def create_offer(self) -> str:
        """Open the data channel and describe this side (the offerer's role)."""
        self._attach(self._pc.createDataChannel(CHANNEL_LABEL, ordered=True))
        offer = await self._pc.createOffer()
        with restricted_host_candidates(self._config.host_addresses()):
            await self._pc.setLocalDescription(offer)
        return self._pc.localDescription.sdp

    async def answer(self, offer_sdp: str) -> str:
        """Take the peer's offer and describe this side (the answerer's role)."""
        await self._pc.setRemoteDescription(
            RTCSessionDescription(self._filter_sdp(offer_sdp), "offer")
        )
        answer = await self._pc.createAnswer()
        with restricted_host_candidates(self._config.host_addresses()):
            await self._pc.setLocalDescription(answer)
        return self._pc.localDescription.sdp

    async def accept_answer(self, answer_sdp: str) -> None:
        """Take the peer's answer to this side's offer."""
        await self._pc.setRemoteDescription(
            RTCSessionDescription(self._filter_sdp(answer_sdp), "answer")
        )

    async def add_candidate(self, candidate: dict[str, Any] | None) -> None:
        """Add a trickled remote candidate (aiortc itself sends all in the SDP)."""
        if candidate is None or not candidate.get("candidate"):
            return
        text = str(candidate["candidate"]).removeprefix("candidate:")
        parsed = candidate_from_sdp(text)
        if not self._config.allows_remote(parsed.ip):
            logger.info("[P2P.Candidate] skipped peer=%s", self.peer_id)
            return
        parsed.sdpMid = candidate.get("sdpMid")
        parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
        await self._pc.addIceCandidate(parsed)

    def _filter_sdp(self, sdp: str) -> str:
        """Drop remote candidates outside the allowed networks before ICE sees them."""
        kept = []
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                address = line.split()[4] if len(line.split()) > 4 else ""
                if not self._config.allows_remote(address):
                    continue
            kept.append(line)
        return "\r\n".join(kept) + "\r\n"

    async def wait_open(self, timeout: float) -> None:
        """Wait for the data channel to open, or raise PeerTimeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._open.wait()
        except TimeoutError as exc:
            raise PeerTimeout(
                f"no data channel to {self.peer_id} after {timeout:g} seconds"
            ) from exc

    async def send(self, data: bytes) -> None:
        """Send one message in chunks, pausing while the channel's buffer is full."""
        channel = self._channel
        if channel is None or not self.is_open:
            raise PeerGone(f"no open channel to {self.peer_id}")
        message_id = next(self._message_ids)
        for chunk in split(message_id, data, self._config.chunk_bytes):
            while channel.bufferedAmount > self._config.buffer_high_bytes:
                self._drained.clear()
                try:
                    async with asyncio.timeout(self._config.send_timeout):
                        await self._drained.wait()
                except TimeoutError as exc:
                    raise PeerTimeout(
                        f"{self.peer_id} read nothing for "
                        f"{self._config.send_timeout:g} seconds"
                    ) from exc
                if self.closed:
                    raise PeerGone(f"{self.peer_id} left during a send")
            if self.closed or channel.readyState != "open":
                raise PeerGone(f"{self.peer_id} left during a send")
            channel.send(chunk)

    async def close(self) -> None:
        """Close the connection; sends waiting on it fail with PeerGone."""
        self._mark_closed()
        await self._pc.close()

    def _attach(self, channel: RTCDataChannel) -> None:
        if channel.label != CHANNEL_LABEL or self._channel is not None:
            return
        self._channel = channel
        channel.bufferedAmountLowThreshold = self._config.buffer_low_bytes
        channel.on("open", self._open.set)
        channel.on("bufferedamountlow", self._drained.set)
        channel.on("message", self._receive)
        channel.on("close", self._mark_closed)
        if channel.readyState == "open":
            self._open.set()

    def _receive(self, chunk: bytes | str) -> None:
        if self.closed:
            return
        if isinstance(chunk, str):
            chunk = chunk.encode()
        try:
            message = self._stitcher.add(chunk)
        except FramingError as exc:
            logger.warning(
                "[P2P.Receive] dropping peer peer=%s error=%s", self.peer_id, exc
            )
            self._closing = asyncio.ensure_future(self.close())
            return
        if message is not None:
            self._on_message(self.peer_id, message)

    def _on_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._mark_closed()

    def _mark_closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._drained.set()  # wake senders so they see the peer is gone
        self._on_closed(self)
