"""Worker routes: authentication, speed test and cycle requests."""

from __future__ import annotations

import logging
import math

from flask import Blueprint, Response, jsonify, request

from fedgrid.gateway import speedtest
from fedgrid.gateway.cycle_requests import answer, parse_measurements
from fedgrid.gateway.jobs import ServedJob
from fedgrid.gateway.logsafe import loggable
from fedgrid_gateway.bodies import body_stream, require_length
from fedgrid_gateway.context import client_address, gateway, json_body, text_field

logger = logging.getLogger(__name__)

worker_routes = Blueprint("worker", __name__, url_prefix="/api/v1")


@worker_routes.post("/auth")
def authenticate() -> Response:
    """Verify a worker (or name an anonymous one) and issue a session token."""
    gw = gateway()
    gw.limiter.check_auth(client_address())
    body = json_body()
    name = text_field(body, "job", required=True)
    version = text_field(body, "version")
    token = text_field(body, "auth_token")

    served = ServedJob.from_proto(gw.model_store.get_job(name, version))
    gw.jobs.put(served)
    authentication = served.server_config.authentication
    worker_id = gw.authenticator.identify(authentication, token)
    session_token = gw.sessions.issue(worker_id, served.id)
    logger.info(
        "[Gateway.Auth] session job=%s version=%s worker=%s",
        served.job.name,
        served.job.version,
        loggable(worker_id),
    )
    return jsonify(
        {
            "session_token": session_token,
            "worker_id": worker_id,
            "job_id": served.id,
            "job": served.job.name,
            "version": served.job.version,
            "requires_speed_test": served.server_config.requires_speed_test,
            "expires_in": gw.sessions.ttl_seconds,
            # False for a job without authentication: a token sent anyway is
            # not checked, and the worker id is a fresh random one.
            "authenticated": authentication is not None,
        }
    )


@worker_routes.get("/speed-test/ping")
def ping() -> Response:
    """A tiny answer for the worker to time."""
    return jsonify({"pong": True})


@worker_routes.get("/speed-test/download")
def speed_download() -> Response:
    """Incompressible bytes of the requested size."""
    size = speedtest.download_size(request.args.get("size"))
    response = Response(
        speedtest.random_chunks(size), mimetype="application/octet-stream"
    )
    response.headers["Content-Length"] = str(size)
    response.headers["Cache-Control"] = "no-store"
    return response


@worker_routes.post("/speed-test/upload")
def speed_upload() -> Response:
    """Count and drop an upload."""
    limit = speedtest.MAX_TRANSFER_BYTES
    require_length(limit, "speed-test upload")
    body = body_stream(limit, "speed-test upload", gateway().body_timeouts)
    received = speedtest.drain_upload(body)
    return jsonify({"received": received})


@worker_routes.post("/cycle-request")
def cycle_request() -> Response:
    """Ask the cycle manager to admit the calling worker to a cycle."""
    gw = gateway()
    session = gw.worker_session()
    body = json_body(required=False)
    asked_job = text_field(body, "job_id")
    if asked_job:
        session.require_job(asked_job)
    gw.limiter.check_cycle_request(client_address(), session.worker_id)

    served = gw.jobs.get(session.job_id)
    measured = parse_measurements(body, served.server_config.requires_speed_test)
    response = gw.cycle_manager.request_cycle(
        job_id=session.job_id,
        worker_id=session.worker_id,
        download_kbps=measured.download_kbps,
        upload_kbps=measured.upload_kbps,
        ping_ms=measured.ping_ms,
    )
    decision = answer(response, served)
    gw.metrics.cycle_requests.labels(decision.outcome, decision.reason).inc()
    reply = jsonify(decision.body)
    if decision.retry_after is not None:
        reply.headers["Retry-After"] = str(math.ceil(decision.retry_after))
    return reply
