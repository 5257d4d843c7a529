"""Room membership in Redis, shared by every signaling replica."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fedgrid.errors import Unavailable
from fedgrid.signaling.frames import RoomName

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Members live in a sorted set scored by the Redis-clock millisecond at which
# they expire, and in a hash naming the connection that owns each membership.
# Every script prunes expired members first and reports them, so that exactly
# one replica announces each departure.
_PRUNE = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
for _, peer in ipairs(expired) do
  redis.call('ZREM', KEYS[1], peer)
  redis.call('HDEL', KEYS[2], peer)
end
"""

_JOIN = (
    _PRUNE
    + """
local ttl = tonumber(ARGV[3])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {'in_room', expired, {}}
end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return {'full', expired, {}}
end
local peers = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {'ok', expired, peers}
"""
)

_HEARTBEAT = (
    _PRUNE
    + """
local ttl = tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {lost, expired}
"""
)

_LEAVE = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then
  return 0
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
return 1
"""

_OWNER = """
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) <= now then
  return false
end
return redis.call('HGET', KEYS[2], ARGV[1])
"""


@dataclass(frozen=True)
class JoinOutcome:
    """What a join found: ok, in_room or full; who was there; who had expired."""

    status: str
    peers: list[str]
    expired: list[str]


@dataclass(frozen=True)
class HeartbeatOutcome:
    """Local members whose membership is gone, and other members that expired."""

    lost: list[str]
    expired: list[str]


def _text(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class RoomRegistry:
    """Joins, refreshes and leaves rooms atomically with Lua scripts."""

    def __init__(
        self, client: aioredis.Redis, prefix: str, member_ttl: float, room_size: int
    ) -> None:
        self._client = client
        self._prefix = f"{prefix}signaling:"
        self._ttl_ms = max(1, int(member_ttl * 1000))
        self._room_size = room_size
        self._join = client.register_script(_JOIN)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._leave = client.register_script(_LEAVE)
        self._owner = client.register_script(_OWNER)

    def _keys(self, room: RoomName) -> list[str]:
        # The hash tag keeps both keys of a room in one Redis Cluster slot.
        base = f"{self._prefix}room:{{{room.key}}}"
        return [f"{base}:members", f"{base}:owners"]

    async def join(self, room: RoomName, peer: str, owner: str) -> JoinOutcome:
        """Add peer to room unless it is there already or the room is full."""
        args: list[str | int] = [peer, owner, self._ttl_ms, self._room_size]
        status, expired, peers = await _call(
            "join", self._join(keys=self._keys(room), args=args)
        )
        return JoinOutcome(
            status=_text([status])[0], peers=_text(peers), expired=_text(expired)
        )

    async def heartbeat(
        self, room: RoomName, members: dict[str, str]
    ) -> HeartbeatOutcome:
        """Refresh the memberships of peer -> owner; report lost and expired."""
        args: list[str | int] = [self._ttl_ms]
        for peer, owner in members.items():
            args += [peer, owner]
        lost, expired = await _call(
            "heartbeat", self._heartbeat(keys=self._keys(room), args=args)
        )
        return HeartbeatOutcome(lost=_text(lost), expired=_text(expired))

    async def leave(self, room: RoomName, peer: str, owner: str) -> bool:
        """Remove peer when owner still holds its membership."""
        removed = await _call(
            "leave", self._leave(keys=self._keys(room), args=[peer, owner])
        )
        return bool(removed)

    async def owner_of(self, room: RoomName, peer: str) -> str | None:
        """The connection that holds peer's live membership of room, if any."""
        owner = await _call("owner", self._owner(keys=self._keys(room), args=[peer]))
        return _text([owner])[0] if owner else None


async def _call(what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except RedisError as exc:
        logger.warning("[Signaling.Redis] failed call=%s error=%s", what, exc)
        raise Unavailable(f"room state is unreachable ({what}): {exc}") from exc
