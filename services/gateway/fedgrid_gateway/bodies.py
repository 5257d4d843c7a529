"""Request bodies: content types, sizes from the headers, read deadlines, and
closing the connection instead of draining a body the gateway refused."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import BinaryIO

from flask import Response, request

from fedgrid.errors import InvalidArgument
from fedgrid.gateway.errors import PayloadTooLarge, UnsupportedMediaType
from fedgrid.gateway.streams import ReadDeadline, limited, timed
from fedgrid_gateway.socket_guard import SocketGuard

JSON = "application/json"
PROTOBUF = "application/x-protobuf"
OCTETS = "application/octet-stream"
BINARY_TYPES = (PROTOBUF, OCTETS)

# After a refusal, read what the client is still sending for at most this long
# (and this much, stopping at the first pause) so that it sees the answer
# rather than a reset connection; a client that sends nothing costs a pause.
LINGER_SECONDS = 0.25
LINGER_PAUSE_SECONDS = 0.05
LINGER_BYTES = 256 * 1024
_SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


@dataclass(frozen=True)
class BodyTimeouts:
    """How slowly a body may arrive before the gateway answers 408."""

    idle_seconds: float = 20.0
    grace_seconds: float = 10.0
    min_bytes_per_second: float = 16 * 1024

    def deadline(self) -> ReadDeadline:
        """A deadline starting now."""
        return ReadDeadline(
            self.idle_seconds, self.grace_seconds, self.min_bytes_per_second
        )


def has_body() -> bool:
    """Whether the request announces a body (a length above 0, or chunks)."""
    if request.content_length:
        return True
    encoding = request.headers.get("Transfer-Encoding", "")
    return "chunked" in encoding.lower()


def require_type(*accepted: str) -> None:
    """Refuse (415) a body whose Content-Type is not one of accepted."""
    if not has_body() and not request.headers.get("Content-Type"):
        return
    if request.mimetype not in accepted:
        sent = request.mimetype or "no Content-Type"
        raise UnsupportedMediaType(
            f"this route takes {' or '.join(accepted)}; the request sent {sent}"
        )


def require_length(limit: int, what: str, setting: str = "") -> None:
    """Refuse from the headers alone a body announced larger than limit (413)."""
    length = request.content_length
    if length is not None and length > limit:
        named = f" ({setting})" if setting else ""
        raise PayloadTooLarge(
            f"{what} bodies are at most {limit} bytes{named}; this one announces "
            f"{length}"
        )
    if length is None and not has_body():
        raise InvalidArgument(f"send the {what} with Content-Length or chunked")


def body_stream(limit: int, what: str, timeouts: BodyTimeouts) -> BinaryIO:
    """The request body, refused past limit bytes or when it arrives too slowly."""
    sock = _server_socket()
    guard = None if sock is None else SocketGuard(sock)
    source = timed(request.stream, timeouts.deadline(), guard)  # type: ignore[arg-type]
    return limited(source, limit, what)


def close_after(response: Response) -> Response:
    """Close the connection once response is sent, without draining the body.

    Used for every answer given while a body may still be on its way: reading
    it would hand each slow or oversized upload a thread for as long as the
    client likes.
    """
    sock = _server_socket()
    if sock is None:
        return response
    response.call_on_close(lambda: _close_input(sock))
    return response


def _server_socket() -> socket.socket | None:
    for key in _SOCKET_KEYS:
        sock = request.environ.get(key)
        if isinstance(sock, socket.socket):
            return sock
    return None


def _close_input(sock: socket.socket) -> None:
    """Send FIN after the answer, linger briefly, then stop reading the socket."""
    try:
        sock.shutdown(socket.SHUT_WR)
        _linger(sock)
        sock.shutdown(socket.SHUT_RD)
    except OSError:  # the client is gone already; nothing left to close politely
        return


def _linger(sock: socket.socket) -> None:
    ends = time.monotonic() + LINGER_SECONDS
    read = 0
    while read < LINGER_BYTES:
        left = ends - time.monotonic()
        if left <= 0:
            return
        sock.settimeout(min(left, LINGER_PAUSE_SECONDS))
        try:
            chunk = sock.recv(64 * 1024)
        except TimeoutError:
            return
        if not chunk:
            return
        read += len(chunk)
