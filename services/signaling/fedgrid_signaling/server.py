"""The signaling WebSocket server and its HTTP health and metrics routes."""

from __future__ import annotations

import asyncio
import http
import logging

from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from fedgrid.config import Settings

logger = logging.getLogger(__name__)

CONNECTIONS = Gauge("fedgrid_signaling_connections", "Open signaling connections")


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


async def _handle(conn: ServerConnection) -> None:
    CONNECTIONS.inc()
    try:
        await conn.send(
            '{"type": "error", "error": "unsupported", '
            '"message": "peer-to-peer protocols are not enabled on this grid"}'
        )
        await conn.close()
    finally:
        CONNECTIONS.dec()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Serve on settings.host:settings.signaling_port until stop is set."""
    async with ws_serve(
        _handle,
        settings.host,
        settings.signaling_port,
        process_request=_process_request,
        max_size=256 * 1024,
    ) as server:
        sockets = list(server.sockets)
        address = sockets[0].getsockname() if sockets else None
        logger.info(
            "[Signaling] started address=%s:%s",
            address[0] if address else "",
            address[1] if address else "",
        )
        await stop.wait()
        logger.info("[Signaling] stopping")
    logger.info("[Signaling] stopped")
