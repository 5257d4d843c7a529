"""The signaling WebSocket server and its HTTP health and metrics routes."""

from __future__ import annotations

import asyncio
import http
import logging

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from fedgrid.config import Settings
from fedgrid.errors import ConfigError
from fedgrid.gateway.sessions import SessionIssuer
from fedgrid.signaling.hub import Hub
from fedgrid.signaling.limits import SignalingLimits

logger = logging.getLogger(__name__)


def _http_response(status: http.HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type)])
    return Response(status.value, status.phrase, headers, body)


def _process_request(_conn: ServerConnection, request: Request) -> Response | None:
    """Answer plain HTTP health and metrics requests before any WebSocket upgrade."""
    if request.path == "/healthz":
        return _http_response(
            http.HTTPStatus.OK, b'{"status": "ok"}', "application/json"
        )
    if request.path == "/metrics":
        return _http_response(
            http.HTTPStatus.OK, generate_latest(), CONTENT_TYPE_LATEST
        )
    return None


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve on settings.host:settings.signaling_port until stop is set."""
    limits = SignalingLimits.from_settings(settings)
    try:
        sessions = SessionIssuer.from_settings(settings)
    except ValueError as exc:
        raise ConfigError(f"FEDGRID_SESSION_SECRET: {exc}") from exc
    client = aioredis.Redis.from_url(settings.redis_url)
    hub = Hub(client, settings.redis_prefix, sessions, limits)
    try:
        await hub.start()
        async with ws_serve(
            hub.handle,
            settings.host,
            settings.signaling_port,
            process_request=_process_request,
            max_size=limits.hard_max_bytes,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            # A worker that misses a ping misses the close handshake as well.
            close_timeout=limits.ping_timeout,
        ) as server:
            sockets = list(server.sockets)
            address = sockets[0].getsockname() if sockets else ("", 0)
            logger.info(
                "[Signaling] started address=%s:%s replica=%s",
                address[0],
                address[1],
                hub.replica_id,
            )
            await stop.wait()
            logger.info("[Signaling] stopping")
    finally:
        await hub.stop()
        await client.aclose()
    logger.info("[Signaling] stopped")
