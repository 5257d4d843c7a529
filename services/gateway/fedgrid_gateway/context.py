"""The gateway's dependencies, built once per process and shared by the views."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any, cast

from flask import current_app, request

from fedgrid.config import Settings
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import InvalidArgument, NotFound
from fedgrid.gateway.auth import WorkerAuthenticator
from fedgrid.gateway.errors import PayloadTooLarge, PermissionDenied, Unauthenticated
from fedgrid.gateway.hosting import JobHost
from fedgrid.gateway.jobs import JobCache, ServedJob
from fedgrid.gateway.ratelimit import RateLimiter
from fedgrid.gateway.reports import ReportIntake
from fedgrid.gateway.sessions import SessionIssuer, WorkerSession, bearer_token
from fedgrid.modelstore.client import ModelStoreClient
from fedgrid.objectstore import ObjectStore
from fedgrid.v1 import cycle_manager_pb2 as cm
from fedgrid_gateway.bodies import JSON, BodyTimeouts, body_stream, require_type
from fedgrid_gateway.metrics import GatewayMetrics

EXTENSION = "fedgrid_gateway"
MAX_JSON_BYTES = 64 * 1024


@dataclass
class Gateway:
    """Everything a view needs; views stay thin around it."""

    settings: Settings
    model_store: ModelStoreClient
    cycle_manager: CycleManagerClient
    store: ObjectStore
    limiter: RateLimiter
    sessions: SessionIssuer
    authenticator: WorkerAuthenticator
    jobs: JobCache
    reports: ReportIntake
    host: JobHost
    metrics: GatewayMetrics
    admin_token: str
    body_timeouts: BodyTimeouts = field(default_factory=BodyTimeouts)

    def worker_session(self) -> WorkerSession:
        """The session of the calling worker, from its bearer token."""
        return self.sessions.verify(bearer_token(request.headers.get("Authorization")))

    def require_admin(self) -> None:
        """Refuse unless the caller presents the admin token (constant-time check)."""
        token = bearer_token(request.headers.get("Authorization"))
        if not hmac.compare_digest(token.encode(), self.admin_token.encode()):
            raise Unauthenticated("the admin token is wrong")

    def assignment_for(self, request_key: str, session: WorkerSession) -> cm.Assignment:
        """The assignment of a request key this worker holds for its job."""
        if not request_key or len(request_key) > 256:
            raise InvalidArgument("request_key is required (from the cycle request)")
        assignment = self.cycle_manager.get_assignment(request_key)
        if not assignment.request_key:
            raise NotFound("this request key was never issued")
        if assignment.worker_id != session.worker_id:
            raise PermissionDenied("this request key was given to another worker")
        session.require_job(assignment.job_id)
        return assignment

    def job_of(self, assignment: cm.Assignment) -> ServedJob:
        """The job a request key belongs to."""
        return self.jobs.get(assignment.job_id)


def gateway() -> Gateway:
    """The Gateway of the current Flask app."""
    return cast(Gateway, current_app.extensions[EXTENSION])


def client_address() -> str:
    """The caller's address as the server saw it (proxies are not trusted)."""
    return request.remote_addr or "unknown"


def json_body(required: bool = True) -> Any:
    """The request's small JSON body; refuse large, malformed or missing ones."""
    require_type(JSON)
    length = request.content_length
    if length is not None and length > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"JSON bodies are at most {MAX_JSON_BYTES} bytes")
    raw = body_stream(MAX_JSON_BYTES, "JSON body", gateway().body_timeouts).read()
    if not raw.strip():
        if required:
            raise InvalidArgument("send a JSON object as the body")
        return {}
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"the body is not valid JSON: {exc}") from exc


def text_field(body: Any, name: str, required: bool = False) -> str:
    """A string field of a JSON object body."""
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object")
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise InvalidArgument(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a string")
    return value


def drain_body() -> None:
    """Leave what is left of a refused body unread.

    The error answer closes the connection after it is sent (see
    fedgrid_gateway.bodies.close_after), so reading on would only hand a slow
    client a thread.
    """
