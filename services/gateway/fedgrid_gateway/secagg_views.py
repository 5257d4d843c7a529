"""Secure aggregation routes: a worker's round messages in, the grid's out."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from fedgrid.errors import FedgridError, InvalidArgument
from fedgrid.gateway.errors import PayloadTooLarge
from fedgrid.gateway.streams import limited
from fedgrid.v1 import cycle_manager_pb2 as cm
from fedgrid_gateway.context import Gateway, drain_body, gateway

logger = logging.getLogger(__name__)

secagg_routes = Blueprint("secagg", __name__, url_prefix="/api/v1/secagg")

PROTOBUF = "application/x-protobuf"
ROUNDS = ("advertise", "share_keys", "masked_input", "unmask")
# What GET serves: the setup, then the grid's answer to each closed round
# (the unmask round's answer is the checkpoint itself).
ANSWERS = ("setup", "advertise", "share_keys", "masked_input")
PENDING_RETRY_SECONDS = 0.5


def _round(name: str, allowed: tuple[str, ...]) -> str:
    if name not in allowed:
        raise InvalidArgument(
            f"unknown secure aggregation round {name!r}; use one of {list(allowed)}"
        )
    return name


def _assignment(gw: Gateway) -> tuple[cm.Assignment, str]:
    session = gw.worker_session()
    assignment = gw.assignment_for(request.args.get("request_key", ""), session)
    return assignment, session.worker_id


@secagg_routes.post("/<round_name>")
def post_round(round_name: str) -> Response:
    """Store the worker's protobuf message for one round of its cycle's run."""
    gw = gateway()
    limit = gw.settings.max_report_bytes
    try:
        name = _round(round_name, ROUNDS)
        assignment, worker_id = _assignment(gw)
        length = request.content_length
        if length is not None and length > limit:
            raise PayloadTooLarge(
                f"round messages are at most {limit} bytes (max_report_bytes)"
            )
        body = limited(request.stream, limit, "round message")  # type: ignore[arg-type]
        payload = body.read()
        if not payload:
            raise InvalidArgument(f"send the {name} message as the body")
        reply = gw.cycle_manager.post_secagg(
            assignment.request_key, worker_id, name, payload
        )
    except FedgridError:
        drain_body()
        raise
    logger.debug(
        "[Gateway.SecAgg] stored round=%s cycle=%s worker=%s",
        name,
        assignment.cycle_id,
        worker_id,
    )
    return jsonify({"status": "stored", "complete": reply.complete})


@secagg_routes.get("/<round_name>")
def get_round(round_name: str) -> Response:
    """The run's setup, or the grid's answer to a closed round; 202 until ready."""
    gw = gateway()
    name = _round(round_name, ANSWERS)
    assignment, worker_id = _assignment(gw)
    found = gw.cycle_manager.fetch_secagg(assignment.request_key, worker_id, name)
    if not found.ready:
        reply = jsonify(
            {
                "status": "pending",
                "round": found.current_round,
                "deadline": found.round_deadline_unix,
                "retry_after": PENDING_RETRY_SECONDS,
            }
        )
        reply.status_code = 202
        return reply
    response = Response(found.payload, mimetype=PROTOBUF)
    response.headers["X-Fedgrid-Round"] = found.current_round
    response.headers["X-Fedgrid-Round-Deadline"] = repr(found.round_deadline_unix)
    return response
