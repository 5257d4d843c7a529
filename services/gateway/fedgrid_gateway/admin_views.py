"""Admin routes: host jobs, read their status, pull checkpoints, set aliases."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Blueprint, Response, jsonify, request

from fedgrid.errors import InvalidArgument
from fedgrid.gateway.jobs import job_json
from fedgrid.gateway.logsafe import loggable
from fedgrid.modelstore.names import check_alias
from fedgrid.v1 import cycle_manager_pb2 as cm
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid_gateway.bodies import (
    BINARY_TYPES,
    body_stream,
    require_length,
    require_type,
)
from fedgrid_gateway.content_views import checkpoint_response
from fedgrid_gateway.context import gateway, json_body, text_field

logger = logging.getLogger(__name__)

admin_routes = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

# Plans and protocols ride along with the model, whose size is bounded like a diff.
EXTRA_UPLOAD_BYTES = 512 * 1024 * 1024
MAX_CHECKPOINT = 2**62 - 1
NUMBER_LIKE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


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
    require_type(*BINARY_TYPES)
    require_length(limit, "job upload", "max_report_bytes + 512 MiB")
    job = gw.host.host(body_stream(limit, "job upload", gw.body_timeouts))
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


@admin_routes.get("/jobs/<name>/checkpoints/<path:which>")
def pull_checkpoint(name: str, which: str) -> Response:
    """A checkpoint by number or alias, streamed."""
    version = request.args.get("version", "")
    store = gateway().model_store
    if which.isdigit():
        number = checkpoint_number(which)
        checkpoint, data = store.open_checkpoint(name, version, number=number)
    else:
        checkpoint, data = store.open_checkpoint(
            name, version, alias=alias_of(which, "checkpoint")
        )
    return checkpoint_response(checkpoint, data)


def checkpoint_number(text: str) -> int:
    """A checkpoint number given as decimal digits, within what the store keeps."""
    number = int(text)
    if number == 0:
        raise InvalidArgument("checkpoint numbers start at 1; 0 is never a checkpoint")
    if number > MAX_CHECKPOINT:
        raise InvalidArgument(
            f"checkpoint {text[:24]} is larger than any checkpoint number "
            f"(at most {MAX_CHECKPOINT})"
        )
    return number


def alias_of(text: str, what: str) -> str:
    """An alias from the path; a number-like or path-like value says what it is."""
    if "/" in text or "\\" in text:
        raise InvalidArgument(
            f"{what} {text[:40]!r} contains a path separator; name a checkpoint "
            "by its number or an alias (letters, digits, '.', '_', '-')"
        )
    if NUMBER_LIKE.match(text):
        raise InvalidArgument(
            f"{what} {text[:40]!r} is not a checkpoint number: numbers are whole "
            "and start at 1"
        )
    return check_alias(text)


@admin_routes.put("/jobs/<name>/aliases/<path:alias>")
def set_alias(name: str, alias: str) -> Response:
    """Point an alias at a checkpoint number."""
    checked_alias = alias_of(alias, "alias")
    body = json_body()
    number = body.get("checkpoint") if isinstance(body, dict) else None
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidArgument(
            "checkpoint must be a checkpoint number: a whole number from 1"
        )
    if number < 1:
        raise InvalidArgument(f"checkpoint numbers start at 1; got {number}")
    if number > MAX_CHECKPOINT:
        raise InvalidArgument(
            f"checkpoint {number} is larger than any checkpoint number "
            f"(at most {MAX_CHECKPOINT})"
        )
    version = text_field(body, "version")
    checkpoint = gateway().model_store.set_alias(name, version, number, checked_alias)
    logger.info(
        "[Gateway.SetAlias] job=%s alias=%s checkpoint=%s",
        loggable(name),
        loggable(checked_alias),
        number,
    )
    return jsonify(checkpoint_json(checkpoint))
