"""Admin routes: host jobs, read their status, pull checkpoints, set aliases."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from fedgrid.errors import FedgridError, InvalidArgument
from fedgrid.gateway.jobs import job_json
from fedgrid.gateway.streams import limited
from fedgrid.modelstore.names import check_alias
from fedgrid.v1 import cycle_manager_pb2 as cm
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid_gateway.content_views import checkpoint_response
from fedgrid_gateway.context import drain_body, gateway, json_body, text_field

logger = logging.getLogger(__name__)

admin_routes = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

# Plans and protocols ride along with the model, whose size is bounded like a diff.
EXTRA_UPLOAD_BYTES = 512 * 1024 * 1024


@admin_routes.before_request
def require_admin() -> None:
    """Every admin route needs the admin token."""
    gateway().require_admin()


def checkpoint_json(checkpoint: pb.Checkpoint) -> dict[str, Any]:
    """A checkpoint's metadata as JSON."""
    return {
        "number": checkpoint.number,
        "digest": checkpoint.digest,
        "size": checkpoint.size,
        "created_at": checkpoint.created_at_unix,
        "metrics": dict(checkpoint.metrics),
        "aliases": list(checkpoint.aliases),
        "cycle_id": checkpoint.cycle_id,
    }


def status_json(status: cm.JobStatus) -> dict[str, Any]:
    """A job's cycle status as JSON."""
    return {
        "state": status.state,
        "finish_reason": status.finish_reason,
        "completed_cycles": status.completed_cycles,
        "num_cycles": status.num_cycles,
        "cycles": [
            {
                "id": cycle.cycle_id,
                "number": cycle.number,
                "state": cycle.state,
                "admitted": cycle.admitted,
                "reports": cycle.reports,
                "opened_at": cycle.opened_at_unix,
                "deadline": cycle.deadline_unix,
                "closed_at": cycle.closed_at_unix,
                "checkpoint": cycle.checkpoint_number,
                "close_reason": cycle.close_reason,
            }
            for cycle in status.cycles
        ],
    }


@admin_routes.post("/jobs")
def host_job() -> Response:
    """Host a job from a framed HostJobPart stream."""
    gw = gateway()
    limit = gw.settings.max_report_bytes + EXTRA_UPLOAD_BYTES
    try:
        body = limited(request.stream, limit, "job upload")  # type: ignore[arg-type]
        job = gw.host.host(body)
    except FedgridError:
        drain_body()
        raise
    response = jsonify(job_json(job))
    response.status_code = 201
    return response


@admin_routes.get("/jobs")
def list_jobs() -> Response:
    """Every hosted job."""
    jobs = gateway().model_store.list_jobs()
    return jsonify({"jobs": [job_json(job) for job in jobs]})


@admin_routes.get("/jobs/<name>")
def job_status(name: str) -> Response:
    """One job with the cycle manager's view of its cycles."""
    gw = gateway()
    job = gw.model_store.get_job(name, request.args.get("version", ""))
    body = job_json(job)
    body["status"] = status_json(gw.cycle_manager.job_status(job.id))
    return jsonify(body)


@admin_routes.get("/jobs/<name>/checkpoints")
def list_checkpoints(name: str) -> Response:
    """A job's checkpoints in number order."""
    checkpoints = gateway().model_store.list_checkpoints(
        name, request.args.get("version", "")
    )
    return jsonify({"checkpoints": [checkpoint_json(c) for c in checkpoints]})


@admin_routes.get("/jobs/<name>/checkpoints/<which>")
def pull_checkpoint(name: str, which: str) -> Response:
    """A checkpoint by number or alias, streamed."""
    version = request.args.get("version", "")
    store = gateway().model_store
    if which.isdigit():
        number = int(which)
        if not 0 < number < 2**62:
            raise InvalidArgument("checkpoint numbers start at 1")
        checkpoint, data = store.open_checkpoint(name, version, number=number)
    else:
        checkpoint, data = store.open_checkpoint(
            name, version, alias=check_alias(which)
        )
    return checkpoint_response(checkpoint, data)


@admin_routes.put("/jobs/<name>/aliases/<alias>")
def set_alias(name: str, alias: str) -> Response:
    """Point an alias at a checkpoint number."""
    body = json_body()
    number = body.get("checkpoint") if isinstance(body, dict) else None
    if (
        isinstance(number, bool)
        or not isinstance(number, int)
        or not 0 < number < 2**62
    ):
        raise InvalidArgument("checkpoint must be a checkpoint number (>= 1)")
    version = text_field(body, "version")
    checkpoint = gateway().model_store.set_alias(
        name, version, number, check_alias(alias)
    )
    logger.info("[Gateway.SetAlias] job=%s alias=%s checkpoint=%s", name, alias, number)
    return jsonify(checkpoint_json(checkpoint))
