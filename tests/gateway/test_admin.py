"""Admin routes: the admin token, job hosting checks, status, checkpoints, aliases."""

from __future__ import annotations

import hashlib
import io
import json
import uuid

import pytest
import torch

from fedgrid import tensors
from fedgrid.plans import load_torchscript
from tests.gateway.conftest import API, Stack, job_upload


def _upload(stack: Stack, **changes: object) -> bytes:
    values: dict[str, object] = {
        "name": f"job-{uuid.uuid4().hex[:8]}",
        "version": "1.0.0",
        "model": stack.artifacts.state,
        "server_config": {"pool_selection": "iterate"},
        "plans": {"training_plan": stack.artifacts.plan_bytes},
    }
    values.update(changes)
    return job_upload(**values)  # type: ignore[arg-type]


def _push(stack: Stack, body: bytes) -> tuple[int, dict[str, object]]:
    reply = stack.post(f"{API}/admin/jobs", data=body, headers=stack.admin_upload())
    return reply.status_code, reply.json()


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc", "Bearer"])
def test_admin_routes_need_the_admin_token(stack: Stack, header: str | None) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if header is not None:
        headers["Authorization"] = header

    name = f"job-{uuid.uuid4().hex[:8]}"

    listing = stack.get(f"{API}/admin/jobs", headers=headers)
    push = stack.post(
        f"{API}/admin/jobs", data=_upload(stack, name=name), headers=headers
    )

    assert listing.status_code == 401
    assert push.status_code == 401
    assert stack.model_store.list_jobs(name) == []


def test_torchscript_from_outside_is_refused(stack: Stack) -> None:
    name = f"job-{uuid.uuid4().hex[:8]}"
    body = _upload(stack, name=name, plan_format="torchscript")

    status, answer = _push(stack, body)

    assert status == 400
    assert "ops" in str(answer["message"])
    assert stack.model_store.list_jobs(name) == []


@pytest.mark.parametrize(
    ("server_config", "field"),
    [
        ({"max_workers": 0}, "max_workers"),
        ({"pool_selection": "lottery"}, "pool_selection"),
        ({"no_such_key": 1}, "no_such_key"),
        ({"authentication": {"secret": "s", "algorithms": ["HS256"], "x": 1}}, "x"),
        ("{not json", "server_config"),
    ],
)
def test_bad_server_config_names_the_field(
    stack: Stack, server_config: object, field: str
) -> None:
    status, answer = _push(stack, _upload(stack, server_config=server_config))

    assert status == 400
    assert answer["error"] == "invalid_config"
    assert field in str(answer["message"])


def test_bad_client_config_version_plan_and_model_are_400(stack: Stack) -> None:
    client = _push(stack, _upload(stack, client_config=[1, 2]))
    version = _push(stack, _upload(stack, version="x.y"))
    plan = _push(stack, _upload(stack, plans={"training_plan": b"\x80\x04garbage"}))
    model = _push(stack, _upload(stack, model={}))

    assert client[0] == 400 and "client_config" in str(client[1]["message"])
    assert version[0] == 400 and "version" in str(version[1]["message"])
    assert plan[0] == 400 and "training_plan" in str(plan[1]["message"])
    assert model[0] == 400


def test_hosting_twice_is_409(stack: Stack) -> None:
    body = _upload(stack)

    first, _ = _push(stack, body)
    second, answer = _push(stack, body)

    assert (first, second) == (201, 409)
    assert answer["error"] == "already_exists"


def test_torchscript_target_gets_a_grid_made_module(stack: Stack) -> None:
    job = stack.host({"targets": ["python", "torchscript"]})
    session = stack.auth(job["name"])["session_token"]
    key = stack.cycle(session).json()["request_key"]

    reply = stack.get(
        f"{API}/plans/training_plan",
        params={"request_key": key, "format": "torchscript"},
        headers={"Authorization": f"Bearer {session}"},
    )

    assert job["plans"] == {"training_plan": ["ops", "torchscript"]}
    assert reply.status_code == 200
    module = load_torchscript(reply.content)
    assert module is not None


def test_status_checkpoints_pull_and_alias(stack: Stack) -> None:
    name = f"mnist-{uuid.uuid4().hex[:8]}"
    job = stack.host(name=name)
    headers = stack.admin()

    listing = stack.get(f"{API}/admin/jobs", headers=headers).json()
    status = stack.get(f"{API}/admin/jobs/{name}", headers=headers).json()
    checkpoints = stack.get(f"{API}/admin/jobs/{name}/checkpoints", headers=headers)
    alias = stack.http.put(
        f"{stack.url}{API}/admin/jobs/{name}/aliases/best",
        json={"checkpoint": 1, "version": "1.0.0"},
        headers=headers,
        timeout=30,
    )
    pulled = stack.get(f"{API}/admin/jobs/{name}/checkpoints/best", headers=headers)
    missing = stack.get(f"{API}/admin/jobs/{name}/checkpoints/7", headers=headers)

    assert job["id"] in [item["id"] for item in listing["jobs"]]
    assert status["status"]["state"] == "running"
    assert status["status"]["cycles"][0]["state"] == "open"
    [first] = checkpoints.json()["checkpoints"]
    assert first["number"] == 1
    assert "best" in alias.json()["aliases"]
    assert pulled.headers["X-Fedgrid-Checkpoint"] == "1"
    assert hashlib.sha256(pulled.content).hexdigest() == first["digest"]
    state = tensors.load_state_stream(io.BytesIO(pulled.content))
    assert torch.equal(state["fc.bias"], stack.artifacts.state["fc.bias"])
    assert missing.status_code == 404


def test_secrets_are_redacted_in_job_json(stack: Stack) -> None:
    job = stack.host({"authentication": {"secret": "s" * 20, "algorithms": ["HS256"]}})

    shown = stack.get(f"{API}/admin/jobs/{job['name']}", headers=stack.admin())

    assert "s" * 20 not in shown.text
    assert (
        json.loads(shown.text)["server_config"]["authentication"]["secret"] != "s" * 20
    )
