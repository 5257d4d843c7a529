"""One worker's signaling connection: its socket, outbox and room membership."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

from websockets.exceptions import ConnectionClosed

from fedgrid.signaling.frames import RoomName, error_frame
from fedgrid.signaling.limits import OUTBOX_FRAMES, TokenBucket
from fedgrid.signaling.metrics import ERRORS

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013


class Socket(Protocol):
    """The part of a WebSocket connection the hub uses."""

    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None: ...

    def __aiter__(self) -> AsyncIterator[str | bytes]: ...


class Connection:
    """Frames for one socket go through a bounded outbox and one writer task.

    Nothing that relays to this connection ever waits on its socket: a worker
    that reads too slowly to keep up is closed instead.
    """

    def __init__(self, socket: Socket, owner: str, bucket: TokenBucket) -> None:
        self.socket = socket
        self.owner = owner
        self.bucket = bucket
        self.peer_id = ""
        self.room: RoomName | None = None
        self.registered = False  # holds a membership in Redis
        self.joined = False  # has been sent its joined frame
        self._pending: list[str] = []
        self._outbox: deque[str] = deque()
        self._wake = asyncio.Event()
        self._close: tuple[int, str] | None = None

    @property
    def closing(self) -> bool:
        """Whether a close was asked for; later frames are dropped."""
        return self._close is not None

    def post(self, frame: str) -> None:
        """Queue a frame for the worker, closing a connection that lags behind."""
        if self.closing:
            return
        if len(self._outbox) >= OUTBOX_FRAMES:
            logger.warning(
                "[Signaling.Send] closing a connection that reads too slowly peer=%s",
                self.peer_id,
            )
            self._outbox.clear()
            self.close(CLOSE_TRY_LATER, "too slow to read signaling frames")
            return
        self._outbox.append(frame)
        self._wake.set()

    def post_event(self, frame: str) -> None:
        """Queue a room event or relay, held back until the joined frame went out."""
        if self.joined:
            self.post(frame)
        else:
            self._pending.append(frame)

    def finish_join(self, joined: str, listed_events: set[str]) -> None:
        """Send the joined frame, then the events that came in meanwhile."""
        self.post(joined)
        self.joined = True
        for frame in self._pending:
            if frame not in listed_events:
                self.post(frame)
        self._pending.clear()

    def refuse(self, code: str, message: str) -> None:
        """Send an error frame; the connection stays open."""
        ERRORS.labels(code).inc()
        self.post(error_frame(code, message))

    def close(self, code: int, reason: str) -> None:
        """Ask the writer to send what is queued and then close the socket."""
        if self._close is None:
            self._close = (code, reason)
            self._wake.set()

    async def write_loop(self) -> None:
        """Send queued frames in order until closed."""
        try:
            while True:
                while self._outbox:
                    await self.socket.send(self._outbox.popleft())
                if self._close is not None:
                    break
                self._wake.clear()
                await self._wake.wait()
            code, reason = self._close
            await self.socket.close(code, reason)
        except ConnectionClosed:
            logger.debug("[Signaling.Send] socket closed peer=%s", self.peer_id)
