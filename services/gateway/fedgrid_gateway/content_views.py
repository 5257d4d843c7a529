"""Worker routes around one request key: downloads and the report."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, jsonify, request

from fedgrid.errors import Conflict, FedgridError, NotFound
from fedgrid.modelstore.names import check_format, check_name
from fedgrid.v1 import cycle_manager_pb2 as cm
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid_gateway.bodies import (
    BINARY_TYPES,
    OCTETS,
    PROTOBUF,
    body_stream,
    require_length,
    require_type,
)
from fedgrid_gateway.context import Gateway, gateway
from fedgrid_gateway.errors import status_for

content_routes = Blueprint("content", __name__, url_prefix="/api/v1")


def _open_assignment(gw: Gateway) -> cm.Assignment:
    session = gw.worker_session()
    key = request.args.get("request_key", "")
    assignment = gw.assignment_for(key, session)
    if not assignment.cycle_open:
        raise Conflict("the cycle of this request key is closed; ask for a new cycle")
    return assignment


def checkpoint_response(checkpoint: pb.Checkpoint, data: Iterator[bytes]) -> Response:
    """Stream a checkpoint blob with its number and digest as headers."""
    response = Response(data, mimetype=PROTOBUF)
    response.headers["X-Fedgrid-Checkpoint"] = str(checkpoint.number)
    response.headers["X-Fedgrid-Digest"] = checkpoint.digest
    response.headers["Content-Length"] = str(checkpoint.size)
    return response


@content_routes.get("/model")
def model() -> Response:
    """The checkpoint the worker's cycle trains from, streamed."""
    gw = gateway()
    assignment = _open_assignment(gw)
    job = gw.job_of(assignment).job
    checkpoint, data = gw.model_store.open_checkpoint(
        job.name, job.version, number=assignment.checkpoint_number
    )
    return checkpoint_response(checkpoint, data)


@content_routes.get("/plans/<name>")
def plan(name: str) -> Response:
    """A plan of the worker's job in the format it runs."""
    gw = gateway()
    assignment = _open_assignment(gw)
    check_name(name, "plan name")
    plan_format = check_format(request.args.get("format", "ops"))
    served = gw.job_of(assignment)
    if plan_format not in served.plans().get(name, []):
        raise NotFound(f"this job has no plan {name!r} in format {plan_format!r}")
    job = served.job
    data = gw.model_store.get_plan(job.name, job.version, name, plan_format)
    return Response(data, mimetype=OCTETS)


@content_routes.get("/protocols/<name>")
def protocol(name: str) -> Response:
    """A protocol of the worker's job."""
    gw = gateway()
    assignment = _open_assignment(gw)
    check_name(name, "protocol name")
    served = gw.job_of(assignment)
    if name not in served.job.protocols:
        raise NotFound(f"this job has no protocol {name!r}")
    data = gw.model_store.get_protocol(served.job.name, served.job.version, name)
    return Response(data, mimetype=OCTETS)


@content_routes.post("/report")
def report() -> Response:
    """Store a worker's diff and submit the report to the cycle manager."""
    gw = gateway()
    limit = gw.settings.max_report_bytes
    try:
        # Everything the headers can refuse is refused before any body is read.
        session = gw.worker_session()
        require_type(*BINARY_TYPES)
        require_length(limit, "report", "max_report_bytes")
        body = body_stream(limit, "report", gw.body_timeouts)
        accepted = gw.reports.receive(body, session)
    except FedgridError as exc:
        gw.metrics.reports.labels(status_for(exc)[1]).inc()
        raise
    gw.metrics.reports.labels("accepted").inc()
    return jsonify({"status": "accepted", "cycle_id": accepted.cycle_id})
