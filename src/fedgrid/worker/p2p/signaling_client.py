"""The worker's side of the signaling WebSocket: join a room, send and read frames."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from fedgrid.worker.p2p.errors import P2PError, SignalingRefused

logger = logging.getLogger(__name__)

# Larger than any frame the service accepts, so its own error frames get through.
_MAX_FRAME_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Joined:
    """The room this worker joined, its id there and the peers already in it."""

    peer_id: str
    peers: tuple[str, ...]


class SignalingClient:
    """One joined signaling connection."""

    def __init__(self, connection: ClientConnection, joined: Joined) -> None:
        self._connection = connection
        self.joined = joined

    @classmethod
    async def join(
        cls,
        url: str,
        token: str,
        job_id: str,
        cycle_id: str,
        protocol: str,
        timeout: float,
    ) -> SignalingClient:
        """Connect to url and join the room, or raise SignalingRefused or P2PError."""
        try:
            connection = await connect(
                url, open_timeout=timeout, max_size=_MAX_FRAME_BYTES, proxy=None
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise P2PError(
                f"cannot reach the signaling service at {url}: {exc}"
            ) from exc
        try:
            await connection.send(
                json.dumps(
                    {
                        "type": "join",
                        "token": token,
                        "job_id": job_id,
                        "cycle_id": cycle_id,
                        "protocol": protocol,
                    }
                )
            )
            reply = json.loads(await connection.recv())
        except (ConnectionClosed, ValueError) as exc:
            await connection.close()
            raise P2PError(f"the signaling service closed the join: {exc}") from exc
        if reply.get("type") == "error":
            await connection.close()
            raise SignalingRefused(str(reply.get("message")), str(reply.get("error")))
        if reply.get("type") != "joined":
            await connection.close()
            raise P2PError(f"unexpected answer to join: {reply.get('type')!r}")
        joined = Joined(
            peer_id=str(reply["peer_id"]), peers=tuple(map(str, reply["peers"]))
        )
        return cls(connection, joined)

    async def send(self, frame: dict[str, Any]) -> None:
        """Send one frame; a closed connection raises P2PError."""
        try:
            await self._connection.send(json.dumps(frame))
        except ConnectionClosed as exc:
            raise P2PError("the signaling connection is closed") from exc

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """Frames from the service until the connection closes."""
        try:
            async for raw in self._connection:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    logger.warning("[P2P.Signaling] unreadable frame dropped")
                    continue
                if isinstance(frame, dict):
                    yield frame
        except ConnectionClosed:
            return

    async def close(self) -> None:
        """Leave the room and close the connection."""
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(json.dumps({"type": "leave"}))
        await self._connection.close()
