"""Slow and oversized uploads are answered from the headers and never hold threads."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import requests

from fedgrid_gateway.bodies import BodyTimeouts
from tests.gateway.conftest import API, PROTOBUF, Stack

HEALTHY_WITHIN = 3.0


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].split(":")
    return host, int(port)


def _open(url: str, head: str, body: bytes = b"x") -> socket.socket:
    sock = socket.create_connection(_address(url), timeout=15)
    sock.sendall(head.encode() + b"\r\n\r\n" + body)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """What the server answers before it closes the connection; then close it."""
    received = b""
    with sock:
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return received


def _post_head(path: str, length: int, token: str | None = None) -> str:
    lines = [
        f"POST {API}{path} HTTP/1.1",
        "Host: gateway",
        f"Content-Type: {PROTOBUF}",
        f"Content-Length: {length}",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    return "\r\n".join(lines)


def _timed_health(url: str) -> float:
    started = time.monotonic()
    reply = requests.get(f"{url}/healthz", timeout=30)
    assert reply.status_code == 200
    return time.monotonic() - started


def test_unauthenticated_stalled_reports_do_not_stall_health(
    gunicorn_gateway: str,
) -> None:
    sockets = [_open(gunicorn_gateway, _post_head("/report", 1000)) for _ in range(20)]
    try:
        health = _timed_health(gunicorn_gateway)
        started = time.monotonic()
        answers = [_answer(sock) for sock in sockets]
        answered_in = time.monotonic() - started
    finally:
        for sock in sockets:
            sock.close()

    assert health < HEALTHY_WITHIN
    assert answered_in < 10
    assert all(answer.startswith(b"HTTP/1.1 401") for answer in answers), answers[0]
    assert all(b'"error":"unauthenticated"' in answer for answer in answers)


def test_oversized_bodies_are_refused_from_the_headers(
    stack: Stack, gunicorn_gateway: str
) -> None:
    job = stack.host()
    token = requests.post(
        f"{gunicorn_gateway}{API}/auth", json={"job": job["name"]}, timeout=30
    ).json()["session_token"]
    too_large = stack.settings.max_report_bytes + 1
    heads = {
        "valid token": _post_head("/report", too_large, token),
        "invalid token": _post_head("/report", too_large, "not-a-token"),
        "speed test": _post_head("/speed-test/upload", 64 * 1024 * 1024 + 1),
    }

    started = time.monotonic()
    answers = {
        name: _answer(_open(gunicorn_gateway, head)) for name, head in heads.items()
    }
    elapsed = time.monotonic() - started

    assert elapsed < 10
    assert answers["valid token"].startswith(b"HTTP/1.1 413")
    assert b"max_report_bytes" in answers["valid token"]
    assert answers["invalid token"].startswith(b"HTTP/1.1 401")
    assert answers["speed test"].startswith(b"HTTP/1.1 413")


def test_a_client_uploading_too_much_reads_the_413(
    stack: Stack, gunicorn_gateway: str
) -> None:
    job = stack.host()
    token = requests.post(
        f"{gunicorn_gateway}{API}/auth", json={"job": job["name"]}, timeout=30
    ).json()["session_token"]
    # Far more than the socket buffers and the gateway's linger take in.
    body = b"\0" * (16 * 1024 * 1024)

    reply = requests.post(
        f"{gunicorn_gateway}{API}/report",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": PROTOBUF},
        timeout=30,
    )

    assert reply.status_code == 413


def test_a_body_that_stops_arriving_is_408(
    start_gateway: Callable[..., Stack],
) -> None:
    timeouts = BodyTimeouts(
        idle_seconds=0.5, grace_seconds=0.5, min_bytes_per_second=1024
    )
    stack = start_gateway(body_timeouts=timeouts)
    job = stack.host()
    token = stack.auth(job["name"])["session_token"]

    sock = _open(stack.url, _post_head("/report", 1000, token), b"\0\0\0")
    started = time.monotonic()
    answer = _answer(sock)
    waited = time.monotonic() - started
    health = _timed_health(stack.url)

    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"error":"request_timeout"' in answer
    assert waited < 5
    assert health < HEALTHY_WITHIN


def test_a_body_slower_than_the_minimum_rate_is_408(
    start_gateway: Callable[..., Stack],
) -> None:
    timeouts = BodyTimeouts(
        idle_seconds=8.0, grace_seconds=0.5, min_bytes_per_second=8192
    )
    stack = start_gateway(body_timeouts=timeouts)
    job = stack.host()
    token = stack.auth(job["name"])["session_token"]
    sock = _open(stack.url, _post_head("/report", 1000, token), b"\0")

    started = time.monotonic()
    # A byte every 0.2 s is 5 bytes/s: never idle, but far below the minimum
    # rate, so the read is cut off long before the idle limit.
    sock.settimeout(0.2)
    answer = b""
    while not answer and time.monotonic() - started < 10:
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            sock.sendall(b"\0")
    waited = time.monotonic() - started
    sock.settimeout(5)
    answer += _answer(sock)

    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"bytes/s" in answer
    assert waited < 5
