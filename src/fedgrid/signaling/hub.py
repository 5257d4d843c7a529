"""The signaling hub: one replica's connections, room joins, relays and leaves."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from websockets.exceptions import ConnectionClosed

from fedgrid.errors import Unavailable
from fedgrid.gateway.errors import Unauthenticated
from fedgrid.gateway.sessions import SessionIssuer
from fedgrid.signaling.bus import EventBus, owner_token
from fedgrid.signaling.connection import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TRY_LATER,
    Connection,
    Socket,
)
from fedgrid.signaling.frames import (
    ClientFrame,
    FrameError,
    JoinFrame,
    LeaveFrame,
    RelayFrame,
    RoomName,
    encode,
    joined_frame,
    parse_client_frame,
    peer_event_frame,
)
from fedgrid.signaling.limits import SignalingLimits, TokenBucket
from fedgrid.signaling.metrics import CONNECTIONS, DEPARTURES, JOINS, RELAYED
from fedgrid.signaling.rooms import RoomRegistry

logger = logging.getLogger(__name__)

_START_TIMEOUT = 10.0
_FLUSH_TIMEOUT = 5.0


class Hub:
    """Serves worker connections on one replica; Redis makes replicas act as one."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        sessions: SessionIssuer,
        limits: SignalingLimits,
    ) -> None:
        self.replica_id = uuid.uuid4().hex[:16]
        self._client = client
        self._limits = limits
        self._sessions = sessions
        self._registry = RoomRegistry(
            client, prefix, limits.member_ttl, limits.room_size
        )
        self._bus = EventBus(client, prefix, self.replica_id)
        self._numbers = itertools.count(1)
        self._rooms: dict[str, dict[str, Connection]] = {}
        self._room_names: dict[str, RoomName] = {}
        self._by_owner: dict[str, Connection] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Subscribe to the other replicas and start refreshing memberships."""
        try:
            await self._client.ping()
        except RedisError as exc:
            raise Unavailable(f"Redis cannot be reached: {exc}") from exc
        ready = asyncio.Event()
        listener = self._bus.listen(self._on_room_event, self._on_delivery, ready)
        self._tasks = [
            asyncio.create_task(listener),
            asyncio.create_task(self._heartbeat_loop()),
        ]
        try:
            async with asyncio.timeout(_START_TIMEOUT):
                await ready.wait()
        except TimeoutError as exc:
            await self.stop()
            raise Unavailable("could not subscribe to Redis pub/sub") from exc

    async def stop(self) -> None:
        """Stop the background tasks; connections are closed by the server."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def handle(self, socket: Socket) -> None:
        """Serve one worker connection from its join frame to its departure."""
        owner = owner_token(self.replica_id, next(self._numbers))
        rate = self._limits.messages_per_second
        conn = Connection(socket, owner, TokenBucket(rate, 2 * rate))
        writer = asyncio.create_task(conn.write_loop())
        CONNECTIONS.inc()
        try:
            if await self._join(conn):
                await self._relay_loop(conn)
        except ConnectionClosed:
            pass
        except Unavailable:
            conn.refuse("unavailable", "signaling is unavailable; try again shortly")
            conn.close(CLOSE_TRY_LATER, "signaling unavailable")
        finally:
            await self._depart(conn)
            conn.close(CLOSE_NORMAL, "")
            try:
                async with asyncio.timeout(_FLUSH_TIMEOUT):
                    await writer
            except TimeoutError:
                writer.cancel()
            CONNECTIONS.dec()

    # Joining

    async def _join(self, conn: Connection) -> bool:
        frame = await self._first_join_frame(conn)
        if frame is None:
            return False
        try:
            session = self._sessions.verify(frame.token)
        except Unauthenticated as exc:
            return self._refuse_join(conn, "unauthenticated", str(exc))
        if session.job_id != frame.room.job_id:
            return self._refuse_join(
                conn,
                "forbidden",
                "this session token belongs to another job; join that job's rooms "
                "or authenticate for this one",
            )

        # Registered locally before Redis, so no room event can slip past.
        room = frame.room
        conn.peer_id, conn.room = session.worker_id, room
        self._rooms.setdefault(room.key, {})[conn.owner] = conn
        self._room_names[room.key] = room
        self._by_owner[conn.owner] = conn

        outcome = await self._registry.join(room, conn.peer_id, conn.owner)
        await self._announce_expired(room, outcome.expired)
        if outcome.status == "in_room":
            return self._refuse_join(
                conn,
                "already_in_room",
                "this worker is in the room on another connection; close it first "
                f"or retry after {self._limits.member_ttl:g} seconds",
            )
        if outcome.status == "full":
            return self._refuse_join(
                conn,
                "room_full",
                f"the room holds at most {self._limits.room_size} workers",
            )

        conn.registered = True
        listed = {peer_event_frame("peer_joined", peer) for peer in outcome.peers}
        conn.finish_join(joined_frame(room, conn.peer_id, outcome.peers), listed)
        await self._bus.publish_room_event(room.key, "peer_joined", conn.peer_id)
        JOINS.labels("ok").inc()
        logger.info(
            "[Signaling.Join] room=%s peer=%s peers=%s",
            room.key,
            conn.peer_id,
            len(outcome.peers),
        )
        return True

    async def _first_join_frame(self, conn: Connection) -> JoinFrame | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._limits.join_timeout
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    raw = await conn.socket.recv()
            except TimeoutError:
                self._refuse_join(
                    conn,
                    "join_timeout",
                    f"send a join frame within {self._limits.join_timeout:g} seconds "
                    "of connecting",
                )
                return None
            frame = self._read(conn, raw)
            if isinstance(frame, JoinFrame):
                return frame
            if isinstance(frame, LeaveFrame):
                conn.close(CLOSE_NORMAL, "left")
                return None
            if frame is not None:
                conn.refuse("not_joined", "send a join frame before anything else")

    def _refuse_join(self, conn: Connection, code: str, message: str) -> bool:
        JOINS.labels(code).inc()
        logger.info("[Signaling.Join] refused reason=%s peer=%s", code, conn.peer_id)
        conn.refuse(code, message)
        conn.close(CLOSE_POLICY, code)
        return False

    # Relaying

    async def _relay_loop(self, conn: Connection) -> None:
        async for raw in conn.socket:
            if conn.closing:
                continue  # drain until the writer has closed the socket
            frame = self._read(conn, raw)
            if isinstance(frame, LeaveFrame):
                conn.close(CLOSE_NORMAL, "left")
                return
            if isinstance(frame, JoinFrame):
                conn.refuse("already_joined", "this connection has joined its room")
            elif isinstance(frame, RelayFrame):
                await self._relay(conn, frame)

    def _read(self, conn: Connection, raw: str | bytes) -> ClientFrame | None:
        """The frame in raw, or None after telling the worker what was wrong."""
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > self._limits.max_message_bytes:
            conn.refuse(
                "too_large",
                f"frames may hold at most {self._limits.max_message_bytes} bytes",
            )
            return None
        if not conn.bucket.take():
            conn.refuse(
                "rate_limited",
                f"send at most {self._limits.messages_per_second:g} frames a second",
            )
            return None
        try:
            return parse_client_frame(raw)
        except FrameError as exc:
            conn.refuse(exc.code, exc.message)
            return None

    async def _relay(self, conn: Connection, frame: RelayFrame) -> None:
        if conn.room is None or not conn.registered:
            return
        owner = None
        if frame.to != conn.peer_id:
            owner = await self._registry.owner_of(conn.room, frame.to)
        if owner is None:
            conn.refuse("unknown_peer", f"no other peer {frame.to!r} in this room")
            return
        text = encode(frame.relayed(conn.peer_id))
        target = self._by_owner.get(owner)
        if target is not None:
            target.post_event(text)
        else:
            await self._bus.deliver(owner, text)
        RELAYED.labels(frame.type).inc()

    async def _on_delivery(self, owner: str, frame: str) -> None:
        target = self._by_owner.get(owner)
        if target is not None:
            target.post_event(frame)

    async def _on_room_event(self, room_key: str, kind: str, peer: str) -> None:
        frame = peer_event_frame(kind, peer)
        for conn in list(self._rooms.get(room_key, {}).values()):
            if conn.peer_id != peer:
                conn.post_event(frame)

    # Leaving

    async def _depart(self, conn: Connection) -> None:
        room = conn.room
        if room is None:
            return
        members = self._rooms.get(room.key, {})
        members.pop(conn.owner, None)
        if not members:
            self._rooms.pop(room.key, None)
            self._room_names.pop(room.key, None)
        self._by_owner.pop(conn.owner, None)
        if not conn.registered:
            return
        conn.registered = False
        try:
            if await self._registry.leave(room, conn.peer_id, conn.owner):
                await self._bus.publish_room_event(room.key, "peer_left", conn.peer_id)
                DEPARTURES.labels("closed").inc()
        except Unavailable:
            logger.warning(
                "[Signaling.Leave] left to expire room=%s peer=%s",
                room.key,
                conn.peer_id,
            )
            return
        logger.info("[Signaling.Leave] room=%s peer=%s", room.key, conn.peer_id)

    async def _announce_expired(self, room: RoomName, peers: list[str]) -> None:
        for peer in peers:
            DEPARTURES.labels("expired").inc()
            logger.info("[Signaling.Expire] room=%s peer=%s", room.key, peer)
            await self._bus.publish_room_event(room.key, "peer_left", peer)

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._limits.heartbeat_interval)
            for room_key, conns in list(self._rooms.items()):
                members = {c.peer_id: c.owner for c in conns.values() if c.registered}
                if members:
                    await self._heartbeat(self._room_names[room_key], members)

    async def _heartbeat(self, room: RoomName, members: dict[str, str]) -> None:
        try:
            outcome = await self._registry.heartbeat(room, members)
            await self._announce_expired(room, outcome.expired)
        except Unavailable:
            return  # logged by the registry; the next beat tries again
        for conn in list(self._rooms.get(room.key, {}).values()):
            if conn.peer_id in outcome.lost and conn.registered:
                conn.registered = False
                conn.refuse(
                    "membership_lost",
                    "this connection's room membership expired; join again",
                )
                conn.close(CLOSE_TRY_LATER, "membership lost")
