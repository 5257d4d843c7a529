"""Random bodies, headers and paths on every route never yield a 5xx."""

from __future__ import annotations

import json
from typing import Any

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedgrid import tensors
from tests.gateway.conftest import API, Stack, report_body

ROUTES = [
    ("POST", "/auth"),
    ("GET", "/speed-test/ping"),
    ("GET", "/speed-test/download"),
    ("POST", "/speed-test/upload"),
    ("POST", "/cycle-request"),
    ("GET", "/model"),
    ("GET", "/plans/{name}"),
    ("GET", "/protocols/{name}"),
    ("POST", "/report"),
    ("POST", "/admin/jobs"),
    ("GET", "/admin/jobs"),
    ("GET", "/admin/jobs/{name}"),
    ("GET", "/admin/jobs/{name}/checkpoints"),
    ("GET", "/admin/jobs/{name}/checkpoints/{name}"),
    ("PUT", "/admin/jobs/{name}/aliases/{name}"),
    ("DELETE", "/auth"),
    ("GET", "/no-such-route"),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
segments = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"),
    min_size=1,
    max_size=30,
)


def _json_object(fields: dict[str, Any]) -> st.SearchStrategy[bytes]:
    return st.fixed_dictionaries(
        {}, optional={key: value for key, value in fields.items()}
    ).map(lambda obj: json.dumps(obj).encode())


def _bodies(stack: Stack, key: str) -> st.SearchStrategy[bytes]:
    valid_report = report_body(
        key, {k: torch.zeros_like(v) for k, v in stack.artifacts.state.items()}
    )
    mutated = st.tuples(st.integers(0, len(valid_report) - 1), st.integers(0, 255)).map(
        lambda spot: (
            valid_report[: spot[0]] + bytes([spot[1]]) + valid_report[spot[0] + 1 :]
        )
    )
    framed = st.lists(st.binary(max_size=40), max_size=5).map(
        lambda parts: b"".join(tensors.frame(part) for part in parts)
    )
    return st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda value: json.dumps(value).encode()),
        _json_object(
            {
                "job": segments | json_values,
                "version": st.text(max_size=12) | json_values,
                "auth_token": st.text(max_size=60) | json_values,
                "ping_ms": json_values,
                "download_kbps": st.floats() | json_values,
                "upload_kbps": st.floats() | json_values,
                "job_id": st.text(max_size=40),
                "checkpoint": st.integers() | json_values,
            }
        ),
        mutated,
        framed,
        st.just(valid_report[: len(valid_report) // 2]),
    )


def test_no_route_answers_5xx(stack: Stack) -> None:
    job = stack.host()
    session = stack.auth(job["name"])["session_token"]
    key = stack.cycle(session).json()["request_key"]
    auth_headers = st.sampled_from(
        [
            None,
            f"Bearer {session}",
            f"Bearer {stack.settings.admin_token}",
            "Bearer",
            "Basic Zm9vOmJhcg==",
        ]
    ) | st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(
        lambda text: f"Bearer {text}"
    )
    queries = st.dictionaries(
        st.sampled_from(["request_key", "format", "size", "version", "x"]),
        st.sampled_from([key, "ops", "torchscript", "-1", "99999999999999"])
        | st.text(max_size=20),
        max_size=3,
    )

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
        ],
    )
    @given(
        route=st.sampled_from(ROUTES),
        names=st.lists(
            st.sampled_from([job["name"], "training_plan", "latest", "1"]) | segments,
            min_size=2,
            max_size=2,
        ),
        authorization=auth_headers,
        query=queries,
        body=_bodies(stack, key),
        content_type=st.sampled_from(
            ["application/json", "application/x-protobuf", "text/plain", ""]
        ),
    )
    def check(
        route: tuple[str, str],
        names: list[str],
        authorization: str | None,
        query: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> None:
        method, template = route
        path = template.replace("{name}", names[0], 1).replace("{name}", names[1], 1)
        headers = {"Content-Type": content_type} if content_type else {}
        if authorization is not None:
            headers["Authorization"] = authorization
        reply = stack.http.request(
            method,
            stack.url + API + path.replace("#", "%23").replace("?", "%3F"),
            params=query,
            data=body,
            headers={
                k: v.encode("latin-1", "replace").decode("latin-1")
                for k, v in headers.items()
            },
            timeout=30,
        )
        assert reply.status_code < 500, (method, path, reply.status_code, reply.text)
        if reply.status_code >= 400:
            answer = reply.json()
            assert set(answer) == {"error", "message"}

    check()
