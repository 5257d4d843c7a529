"""The worker's path through the gateway: auth, cycle, downloads, report."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import torch

from fedgrid import tensors
from fedgrid.plans import Plan
from tests.gateway.conftest import API, PROTOBUF, Stack, report_body


def _accepted(stack: Stack, job: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    session = stack.auth(job["name"])
    reply = stack.cycle(session["session_token"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "accepted", body
    return session["session_token"], body


def _bearer(token: str) -> dict[str, str]:
    """A worker's headers: its session token, and the type reports are sent as."""
    return {"Authorization": f"Bearer {token}", "Content-Type": PROTOBUF}


def test_full_worker_flow_reports_a_diff(stack: Stack) -> None:
    job = stack.host()

    session = stack.auth(job["name"])
    assert session["job_id"] == job["id"]
    assert session["worker_id"].startswith("anon-")
    assert session["requires_speed_test"] is False
    token = session["session_token"]
    cycle = stack.cycle(token).json()
    assert cycle["status"] == "accepted"
    assert cycle["plans"] == {"training_plan": ["ops"]}
    assert cycle["client_config"] == {"batch_size": 4, "lr": 0.1}
    key = cycle["request_key"]

    model = stack.get(
        f"{API}/model", params={"request_key": key}, headers=_bearer(token)
    )
    assert model.status_code == 200
    assert model.headers["X-Fedgrid-Checkpoint"] == "1"
    assert (
        hashlib.sha256(model.content).hexdigest() == model.headers["X-Fedgrid-Digest"]
    )
    state = tensors.load_state_stream(io.BytesIO(model.content))
    assert set(state) == set(stack.artifacts.state)
    assert torch.equal(state["fc.weight"], stack.artifacts.state["fc.weight"])

    plan = stack.get(
        f"{API}/plans/training_plan",
        params={"request_key": key, "format": "ops"},
        headers=_bearer(token),
    )
    assert plan.status_code == 200
    assert Plan.from_bytes(plan.content).name == "train"

    diff = {name: torch.full_like(value, 0.01) for name, value in state.items()}
    reply = stack.post(
        f"{API}/report",
        data=report_body(key, diff, metrics={"loss": 0.5}),
        headers={**_bearer(token), "Content-Type": "application/x-protobuf"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": "accepted", "cycle_id": cycle["cycle_id"]}

    # The cycle manager holds the report, and its blob is in the object store.
    reports = stack.cycle_manager.list_reports(cycle["cycle_id"]).reports
    assert [r.worker_id for r in reports] == [session["worker_id"]]
    blob = b"".join(stack.store.get(reports[0].diff_object_key))
    assert hashlib.sha256(blob).hexdigest() == reports[0].diff_digest
    assert reports[0].diff_object_key.startswith(f"diffs/{job['id']}/")


def test_replayed_report_is_a_conflict(stack: Stack) -> None:
    job = stack.host()
    token, cycle = _accepted(stack, job)
    body = report_body(
        cycle["request_key"],
        {k: torch.zeros_like(v) for k, v in stack.artifacts.state.items()},
    )
    headers = _bearer(token)

    first = stack.post(f"{API}/report", data=body, headers=headers)
    second = stack.post(f"{API}/report", data=body, headers=headers)

    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json()["error"] == "conflict"
    assert len(stack.cycle_manager.list_reports(cycle["cycle_id"]).reports) == 1


def test_wrong_shape_is_refused_and_leaves_no_blob(stack: Stack) -> None:
    job = stack.host()
    token, cycle = _accepted(stack, job)
    diff = {k: torch.zeros_like(v) for k, v in stack.artifacts.state.items()}
    diff["fc.weight"] = torch.zeros(3, 2)

    reply = stack.post(
        f"{API}/report",
        data=report_body(cycle["request_key"], diff),
        headers=_bearer(token),
    )

    assert reply.status_code == 400
    assert "fc.weight" in reply.json()["message"]
    assert list(stack.store_keys("diffs/")) == []


def test_nan_diff_is_refused(stack: Stack) -> None:
    job = stack.host()
    token, cycle = _accepted(stack, job)
    diff = {k: torch.zeros_like(v) for k, v in stack.artifacts.state.items()}
    diff["fc.bias"][1] = float("nan")

    reply = stack.post(
        f"{API}/report",
        data=report_body(cycle["request_key"], diff),
        headers=_bearer(token),
    )

    assert reply.status_code == 400
    assert "NaN" in reply.json()["message"]
    assert stack.cycle_manager.list_reports(cycle["cycle_id"]).reports == []


def test_oversize_report_is_413(start_gateway: Callable[..., Stack]) -> None:
    stack = start_gateway()
    small = start_gateway(max_report_bytes=100)
    job = stack.host()
    token, cycle = _accepted(stack, job)
    body = report_body(cycle["request_key"], dict(stack.artifacts.state))
    assert len(body) > 100

    declared = stack.post(
        f"{API}/report",
        data=body + b"\0" * stack.settings.max_report_bytes,
        headers=_bearer(token),
    )
    streamed = small.post(
        f"{API}/report", data=iter([body[:50], body[50:]]), headers=_bearer(token)
    )

    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"
    assert streamed.status_code == 413
    assert stack.cycle_manager.list_reports(cycle["cycle_id"]).reports == []
    assert stack.store_keys("diffs/") == []


def test_another_workers_key_is_forbidden(stack: Stack) -> None:
    job = stack.host()
    _, cycle = _accepted(stack, job)
    intruder = stack.auth(job["name"])["session_token"]
    diff = {k: torch.zeros_like(v) for k, v in stack.artifacts.state.items()}

    report = stack.post(
        f"{API}/report",
        data=report_body(cycle["request_key"], diff),
        headers=_bearer(intruder),
    )
    model = stack.get(
        f"{API}/model",
        params={"request_key": cycle["request_key"]},
        headers=_bearer(intruder),
    )

    assert report.status_code == 403
    assert model.status_code == 403


def test_unknown_request_key_is_404(stack: Stack) -> None:
    job = stack.host()
    token, _ = _accepted(stack, job)
    diff = {k: torch.zeros_like(v) for k, v in stack.artifacts.state.items()}

    reply = stack.post(
        f"{API}/report", data=report_body("no-such-key", diff), headers=_bearer(token)
    )

    assert reply.status_code == 404


def test_rejected_request_has_numeric_retry_after(stack: Stack) -> None:
    job = stack.host({"max_workers": 1, "max_diffs": 1})
    _accepted(stack, job)
    late = stack.auth(job["name"])["session_token"]

    reply = stack.cycle(late)

    body = reply.json()
    assert body["status"] == "rejected"
    assert body["reason"] == "cycle_full"
    assert isinstance(body["retry_after"], float) and body["retry_after"] >= 1
    assert int(reply.headers["Retry-After"]) >= 1


def test_speed_test_routes(stack: Stack) -> None:
    ping = stack.get(f"{API}/speed-test/ping")
    download = stack.get(f"{API}/speed-test/download", params={"size": 100_000})
    upload = stack.post(f"{API}/speed-test/upload", data=b"x" * 123_456)
    too_big = stack.get(f"{API}/speed-test/download", params={"size": 2**40})

    assert ping.json() == {"pong": True}
    assert len(download.content) == 100_000
    assert len(set(download.content)) > 200  # random bytes, not a fill pattern
    assert upload.json() == {"received": 123_456}
    assert too_big.status_code == 400


def test_speeds_required_when_the_job_has_minimums(stack: Stack) -> None:
    job = stack.host({"minimum_download_speed": 1000, "minimum_upload_speed": 500})
    session = stack.auth(job["name"])

    missing = stack.cycle(session["session_token"])
    slow = stack.cycle(session["session_token"], download_kbps=10, upload_kbps=10)

    assert session["requires_speed_test"] is True
    assert missing.status_code == 400
    assert "download_kbps" in missing.json()["message"]
    assert slow.json()["reason"] == "speed_too_low"


def test_a_down_cycle_manager_is_503(stack: Stack) -> None:
    import redis

    from fedgrid.cycles.client import CycleManagerClient
    from fedgrid_gateway.app import create_app
    from tests.conftest import REDIS_URL
    from tests.gateway.conftest import ServerThread
    from tests.support import free_port

    job = stack.host()
    token = stack.auth(job["name"])["session_token"]
    with (
        CycleManagerClient(f"127.0.0.1:{free_port()}", timeout=2) as dead,
        redis.Redis.from_url(REDIS_URL) as client,
    ):
        app = create_app(stack.settings, stack.model_store, dead, stack.store, client)
        server = ServerThread(app)
        try:
            reply = stack.http.post(
                f"http://127.0.0.1:{server.port}{API}/cycle-request",
                json={},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        finally:
            server.stop()

    assert reply.status_code == 503
    assert reply.json()["error"] == "unavailable"
