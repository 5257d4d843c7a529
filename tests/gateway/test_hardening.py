"""What a tester found: bad counts, types, subjects, names and log lines refused."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import jwt
import pytest
import torch

from tests.gateway.conftest import API, PROTOBUF, Stack, job_upload, report_body

SECRET = "a-shared-secret-of-enough-length"


def _zero_diff(stack: Stack) -> dict[str, torch.Tensor]:
    return {
        name: torch.zeros_like(value) for name, value in stack.artifacts.state.items()
    }


def _worker(stack: Stack) -> tuple[str, str]:
    job = stack.host()
    token = stack.auth(job["name"])["session_token"]
    key = stack.cycle(token).json()["request_key"]
    return token, key


def _report(stack: Stack, token: str, body: bytes, content_type: str = PROTOBUF) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    return stack.post(f"{API}/report", data=body, headers=headers)


@pytest.mark.parametrize("count", [0, 2**31, 2**62])
def test_sample_count_out_of_range_is_400_and_stores_nothing(
    stack: Stack, count: int
) -> None:
    token, key = _worker(stack)

    reply = _report(stack, token, report_body(key, _zero_diff(stack), count))

    assert reply.status_code == 400
    assert "sample_count" in reply.json()["message"]
    assert "between 1 and 2147483647" in reply.json()["message"]
    assert stack.store_keys("diffs") == []


def test_largest_sample_count_is_accepted(stack: Stack) -> None:
    token, key = _worker(stack)

    reply = _report(stack, token, report_body(key, _zero_diff(stack), 2**31 - 1))

    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("route", "content_type", "expected"),
    [
        ("/report", "text/plain", PROTOBUF),
        ("/report", "application/json", PROTOBUF),
        ("/auth", "text/plain", "application/json"),
        ("/cycle-request", "application/x-www-form-urlencoded", "application/json"),
    ],
)
def test_wrong_content_type_is_415_naming_the_expected_one(
    stack: Stack, route: str, content_type: str, expected: str
) -> None:
    token, _ = _worker(stack)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}

    reply = stack.post(f"{API}{route}", data=b'{"job": "x"}', headers=headers)

    assert reply.status_code == 415
    assert reply.json()["error"] == "unsupported_media_type"
    assert expected in reply.json()["message"]


def test_octet_stream_reports_are_accepted(stack: Stack) -> None:
    token, key = _worker(stack)

    body = report_body(key, _zero_diff(stack))
    reply = _report(stack, token, body, "application/octet-stream")

    assert reply.status_code == 200, reply.text


def test_job_upload_needs_the_protobuf_type(stack: Stack) -> None:
    body = job_upload(
        "typed-job", "1.0.0", stack.artifacts.state, {}, plans={"training_plan": b""}
    )
    headers = {**stack.admin(), "Content-Type": "text/plain"}

    reply = stack.post(f"{API}/admin/jobs", data=body, headers=headers)

    assert reply.status_code == 415
    assert PROTOBUF in reply.json()["message"]
    assert stack.model_store.list_jobs("typed-job") == []


@pytest.mark.parametrize(
    ("plans", "protocols", "named"),
    [
        ({"train": b""}, {}, "training_plan"),
        ({}, {}, "training_plan"),
        (None, {"my-protocol": b"{}"}, "my-protocol"),
    ],
)
def test_hosting_refuses_unknown_protocols_and_jobs_without_a_training_plan(
    stack: Stack,
    plans: dict[str, bytes] | None,
    protocols: dict[str, bytes],
    named: str,
) -> None:
    name = f"job-{time.monotonic_ns()}"
    body = job_upload(
        name,
        "1.0.0",
        stack.artifacts.state,
        {"pool_selection": "iterate"},
        plans={"training_plan": stack.artifacts.plan_bytes} if plans is None else plans,
        protocols=protocols,
    )

    reply = stack.post(f"{API}/admin/jobs", data=body, headers=stack.admin_upload())

    assert reply.status_code == 400
    assert named in reply.json()["message"]
    assert stack.model_store.list_jobs(name) == []


def _hs256_job(stack: Stack) -> dict[str, Any]:
    return stack.host({"authentication": {"secret": SECRET, "algorithms": ["HS256"]}})


@pytest.mark.parametrize(
    ("subject", "words"),
    [
        ("a" * 129, "1 to 128 characters"),
        ("alice\nforged", "control"),
        ("bob\x00", "control"),
        ("../../etc", "path separator"),
        ("a\\b", "path separator"),
        ("   ", "only spaces"),
    ],
)
def test_bad_subjects_are_401(stack: Stack, subject: str, words: str) -> None:
    job = _hs256_job(stack)
    token = jwt.encode({"sub": subject}, SECRET, algorithm="HS256")

    reply = stack.post(f"{API}/auth", json={"job": job["name"], "auth_token": token})

    assert reply.status_code == 401
    assert "sub" in reply.json()["message"]
    assert words in reply.json()["message"]


def test_the_answer_says_whether_the_worker_was_authenticated(stack: Stack) -> None:
    open_job = stack.host()
    closed_job = _hs256_job(stack)
    token = jwt.encode({"sub": "carol"}, SECRET, algorithm="HS256")

    unchecked = stack.auth(open_job["name"], auth_token=token)
    checked = stack.auth(closed_job["name"], auth_token=token)

    assert unchecked["authenticated"] is False
    assert unchecked["worker_id"].startswith("anon-")
    assert checked["authenticated"] is True
    assert checked["worker_id"] == "carol"


@pytest.mark.parametrize(
    ("which", "words"),
    [
        ("99999999999999999999", "larger than any checkpoint number"),
        ("0", "start at 1"),
        ("-5", "not a checkpoint number"),
        ("1.5", "not a checkpoint number"),
        ("..%2F..%2Fsecret", "path separator"),
        ("best!", "alias 'best!' is not valid"),
    ],
)
def test_checkpoint_errors_say_what_is_wrong(
    stack: Stack, which: str, words: str
) -> None:
    job = stack.host()

    reply = stack.get(
        f"{API}/admin/jobs/{job['name']}/checkpoints/{which}", headers=stack.admin()
    )

    assert reply.status_code == 400
    assert words in reply.json()["message"]


@pytest.mark.parametrize(
    ("alias", "checkpoint", "words"),
    [
        ("..%2Fx", 1, "path separator"),
        ("-5", 1, "not a checkpoint number"),
        ("best", 0, "start at 1"),
        ("best", 2**62, "larger than any checkpoint number"),
        ("best", 1.5, "whole number"),
    ],
)
def test_alias_errors_say_what_is_wrong(
    stack: Stack, alias: str, checkpoint: object, words: str
) -> None:
    job = stack.host()

    reply = stack.http.put(
        f"{stack.url}{API}/admin/jobs/{job['name']}/aliases/{alias}",
        json={"checkpoint": checkpoint},
        headers=stack.admin(),
        timeout=30,
    )

    assert reply.status_code == 400
    assert words in reply.json()["message"]


def _raw(url: str, request: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes; return everything answered until the server closes."""
    host, port = url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("length", ["-5", "abc"])
def test_malformed_content_length_is_json(stack: Stack, length: str) -> None:
    request = (
        f"POST {API}/auth HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
    ).encode()

    answer = _raw(stack.url, request)

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert b"application/json" in head
    assert b'"error"' in body and b'"message"' in body


def test_request_data_is_escaped_in_logs(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fedgrid_gateway")

    reply = stack.get(f"{API}/plans/x%0a[Gateway.Auth]%20forged%00line")

    records = [r.getMessage() for r in caplog.records if "Gateway" in r.getMessage()]
    assert reply.status_code == 401
    assert any("\\n[Gateway.Auth] forged\\x00line" in text for text in records)
    assert not any("\n" in text or "\x00" in text for text in records)
