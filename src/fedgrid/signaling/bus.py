"""Redis pub/sub between signaling replicas: room events and direct deliveries."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from fedgrid.errors import Unavailable

logger = logging.getLogger(__name__)

RoomEventHandler = Callable[[str, str, str], Awaitable[None]]
DeliveryHandler = Callable[[str, str], Awaitable[None]]

_RETRY_SECONDS = 0.5


def owner_token(replica_id: str, connection_number: int) -> str:
    """The name of one connection on one replica, as stored with memberships."""
    return f"{replica_id}/{connection_number}"


def replica_of(owner: str) -> str:
    """The replica part of an owner token."""
    return owner.partition("/")[0]


class EventBus:
    """Publishes to and listens on one shared events channel and one per replica.

    Room events (a peer joined or left) go to every replica; a frame for one
    connection goes only to the replica that holds it.
    """

    def __init__(self, client: aioredis.Redis, prefix: str, replica_id: str) -> None:
        self._client = client
        self._events = f"{prefix}signaling:events"
        self._prefix = prefix
        self.replica_id = replica_id
        self._own_channel = self._replica_channel(replica_id)

    def _replica_channel(self, replica_id: str) -> str:
        return f"{self._prefix}signaling:replica:{replica_id}"

    async def publish_room_event(self, room_key: str, kind: str, peer: str) -> None:
        """Tell every replica that peer joined or left a room."""
        message = json.dumps({"room": room_key, "kind": kind, "peer": peer})
        await self._publish(self._events, message)

    async def deliver(self, owner: str, frame: str) -> None:
        """Send a frame to the connection named by owner on its replica."""
        message = json.dumps({"owner": owner, "frame": frame})
        await self._publish(self._replica_channel(replica_of(owner)), message)

    async def _publish(self, channel: str, message: str) -> None:
        try:
            await self._client.publish(channel, message)
        except RedisError as exc:
            raise Unavailable(f"signaling replicas are unreachable: {exc}") from exc

    async def listen(
        self,
        on_room_event: RoomEventHandler,
        on_delivery: DeliveryHandler,
        ready: asyncio.Event,
    ) -> None:
        """Dispatch incoming messages until cancelled, resubscribing after errors."""
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._events, self._own_channel)
                ready.set()
                async for message in pubsub.listen():
                    await self._dispatch(message, on_room_event, on_delivery)
            except RedisError as exc:
                logger.warning("[Signaling.Bus] lost subscription error=%s", exc)
                await asyncio.sleep(_RETRY_SECONDS)
            finally:
                await pubsub.aclose()

    async def _dispatch(
        self,
        message: dict[str, Any],
        on_room_event: RoomEventHandler,
        on_delivery: DeliveryHandler,
    ) -> None:
        if message.get("type") != "message":
            return
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        try:
            body = json.loads(message["data"])
            if channel == self._events:
                await on_room_event(
                    str(body["room"]), str(body["kind"]), str(body["peer"])
                )
            else:
                await on_delivery(str(body["owner"]), str(body["frame"]))
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "[Signaling.Bus] dropped unreadable message channel=%s error=%s",
                channel,
                exc,
            )
