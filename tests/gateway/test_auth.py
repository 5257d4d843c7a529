"""Worker authentication: only the configured key and algorithms, claims, endpoint."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import torch

from tests.gateway.conftest import (
    API,
    PROTOBUF,
    RsaKeys,
    Stack,
    VerifyEndpoint,
    report_body,
)

SECRET = "a-shared-secret-of-enough-length"


def _rsa_job(stack: Stack, keys: RsaKeys, **auth: Any) -> dict[str, Any]:
    config = {"public_key": keys.public_pem, "algorithms": ["RS256"], **auth}
    return stack.host({"authentication": config})


def _rs256(keys: RsaKeys, **claims: Any) -> str:
    body = {"sub": "alice", "exp": int(time.time()) + 300, **claims}
    return jwt.encode(body, keys.private_pem, algorithm="RS256")


def _auth(stack: Stack, job: str, token: str | None) -> Any:
    body: dict[str, Any] = {"job": job}
    if token is not None:
        body["auth_token"] = token
    return stack.post(f"{API}/auth", json=body)


def test_valid_rs256_token_names_the_worker(stack: Stack, rsa_keys: RsaKeys) -> None:
    job = _rsa_job(stack, rsa_keys, audience="fedgrid")

    reply = _auth(stack, job["name"], _rs256(rsa_keys, aud="fedgrid"))

    assert reply.status_code == 200, reply.text
    assert reply.json()["worker_id"] == "alice"
    claims = jwt.decode(
        reply.json()["session_token"], stack.settings.session_secret, ["HS256"]
    )
    assert (claims["sub"], claims["job"]) == ("alice", job["id"])


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "wrong_key",
        "alg_none",
        "hs256_with_public_key",
        "expired",
        "audience",
    ],
)
def test_bad_tokens_are_401(stack: Stack, rsa_keys: RsaKeys, case: str) -> None:
    job = _rsa_job(stack, rsa_keys, audience="fedgrid")
    other = RsaKeys.fresh()
    tokens: dict[str, str | None] = {
        "missing": None,
        "wrong_key": _rs256(other, aud="fedgrid"),
        "alg_none": jwt.encode(
            {"sub": "alice", "aud": "fedgrid"}, None, algorithm="none"
        ),
        "hs256_with_public_key": _forge_hs256(rsa_keys.public_pem),
        "expired": _rs256(rsa_keys, aud="fedgrid", exp=int(time.time()) - 600),
        "audience": _rs256(rsa_keys, aud="someone-else"),
    }

    reply = _auth(stack, job["name"], tokens[case])

    assert reply.status_code == 401, reply.text
    assert reply.json()["error"] == "unauthenticated"
    assert "session_token" not in reply.json()


def _forge_hs256(public_pem: str) -> str:
    """Sign HS256 with the RSA public key as the secret (algorithm confusion)."""
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "mallory", "aud": "fedgrid"}).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(public_pem.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def test_encoded_secret_and_endpoint(
    stack: Stack, verify_endpoint: VerifyEndpoint
) -> None:
    encoded = base64.b64encode(SECRET.encode()).decode()
    job = stack.host(
        {
            "authentication": {
                "secret": encoded,
                "is_secret_encoded": True,
                "algorithms": ["HS256"],
                "endpoint": verify_endpoint.url,
                "method": "GET",
            }
        }
    )
    token = jwt.encode({"sub": "bob"}, SECRET, algorithm="HS256")

    accepted = _auth(stack, job["name"], token)
    verify_endpoint.status = 403
    refused = _auth(stack, job["name"], token)

    assert accepted.status_code == 200
    assert accepted.json()["worker_id"] == "bob"
    assert verify_endpoint.seen[0] == ("GET", f"Bearer {token}")
    assert refused.status_code == 401
    assert "403" in refused.json()["message"]


def test_unreachable_endpoint_is_503(stack: Stack) -> None:
    from tests.support import free_port

    job = stack.host(
        {
            "authentication": {
                "secret": SECRET,
                "algorithms": ["HS256"],
                "endpoint": f"http://127.0.0.1:{free_port()}/verify",
            }
        }
    )
    token = jwt.encode({"sub": "bob"}, SECRET, algorithm="HS256")

    reply = _auth(stack, job["name"], token)

    assert reply.status_code == 503
    assert "verification endpoint" in reply.json()["message"]


def test_open_job_session_cannot_join_a_protected_job(stack: Stack) -> None:
    open_job = stack.host()
    protected = stack.host(
        {"authentication": {"secret": SECRET, "algorithms": ["HS256"]}}
    )
    session = stack.auth(open_job["name"])["session_token"]

    as_token = _auth(stack, protected["name"], session)
    asked = stack.post(
        f"{API}/cycle-request",
        json={"job_id": protected["id"]},
        headers={"Authorization": f"Bearer {session}"},
    )

    assert as_token.status_code == 401
    assert asked.status_code == 403


def test_session_of_one_job_cannot_use_anothers_key(stack: Stack) -> None:
    config = {"authentication": {"secret": SECRET, "algorithms": ["HS256"]}}
    first, second = stack.host(config), stack.host(config)
    token = jwt.encode({"sub": "carol"}, SECRET, algorithm="HS256")
    session_first = stack.auth(first["name"], token)["session_token"]
    session_second = stack.auth(second["name"], token)["session_token"]
    key = stack.cycle(session_first).json()["request_key"]
    headers = {"Authorization": f"Bearer {session_second}", "Content-Type": PROTOBUF}
    diff = {k: torch.zeros_like(v) for k, v in stack.artifacts.state.items()}

    model = stack.get(f"{API}/model", params={"request_key": key}, headers=headers)
    report = stack.post(f"{API}/report", data=report_body(key, diff), headers=headers)

    assert model.status_code == 403
    assert report.status_code == 403


def test_garbage_and_missing_session_tokens_are_401(stack: Stack) -> None:
    no_header = stack.post(f"{API}/cycle-request", json={})
    garbage = stack.post(
        f"{API}/cycle-request", json={}, headers={"Authorization": "Bearer abc.def"}
    )
    forged = jwt.encode(
        {"sub": "x", "job": "y", "exp": int(time.time()) + 60}, "x" * 32, "HS256"
    )
    wrong_secret = stack.post(
        f"{API}/cycle-request", json={}, headers={"Authorization": f"Bearer {forged}"}
    )

    assert [r.status_code for r in (no_header, garbage, wrong_secret)] == [401] * 3


def test_auth_is_rate_limited_per_address(start_gateway: Callable[..., Stack]) -> None:
    stack = start_gateway(gateway_auth_per_ip=3)
    job = stack.host()

    codes = [_auth(stack, job["name"], None) for _ in range(4)]

    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert int(codes[-1].headers["Retry-After"]) >= 1
    assert codes[-1].json()["error"] == "rate_limited"


def test_cycle_requests_are_rate_limited_per_worker(
    start_gateway: Callable[..., Stack],
) -> None:
    stack = start_gateway(gateway_cycle_requests_per_worker=2)
    job = stack.host({"max_workers": 1, "max_diffs": 1})
    token = stack.auth(job["name"])["session_token"]

    codes = [stack.cycle(token).status_code for _ in range(3)]

    assert codes == [200, 200, 429]
