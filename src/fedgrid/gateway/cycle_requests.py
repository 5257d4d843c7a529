"""Cycle requests: checking a worker's measurements and shaping the answer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fedgrid.errors import InvalidArgument
from fedgrid.gateway.jobs import ServedJob
from fedgrid.jobconfig import ServerConfig
from fedgrid.v1 import cycle_manager_pb2 as cm

MAX_MEASUREMENT = 1e12
_FIELDS = ("ping_ms", "download_kbps", "upload_kbps")


@dataclass(frozen=True)
class Measurements:
    """What a worker measured in its speed test (speeds in kbit/s)."""

    ping_ms: float = 0.0
    download_kbps: float = 0.0
    upload_kbps: float = 0.0


@dataclass(frozen=True)
class CycleAnswer:
    """The JSON a worker gets, and the Retry-After seconds when rejected."""

    body: dict[str, Any]
    outcome: str  # accepted, rejected or finished
    reason: str = ""
    retry_after: float | None = None


def parse_measurements(body: Any, requires_speed_test: bool) -> Measurements:
    """Read ping and speeds from a request body; refuse bad or missing values."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise InvalidArgument("the cycle request body must be a JSON object")
    values: dict[str, float] = {}
    for name in _FIELDS:
        value = body.get(name)
        if value is None:
            if requires_speed_test and name != "ping_ms":
                raise InvalidArgument(
                    f"{name} is required: this job has minimum speeds; run the "
                    "speed test (kbit/s) and send its results"
                )
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidArgument(
                f"{name} must be a number, got {type(value).__name__}"
            )
        if not math.isfinite(value) or not 0 <= value <= MAX_MEASUREMENT:
            raise InvalidArgument(f"{name} must be a finite number >= 0")
        values[name] = float(value)
    return Measurements(**values)


def secure_terms(config: ServerConfig) -> dict[str, Any]:
    """What a worker of a secure job must know: the protocol and DP parameters.

    Empty for plain jobs, so their answer is unchanged. The run's setup (who
    takes part) follows at GET /api/v1/secagg/setup once admission closes.
    """
    secure = config.secure_aggregation
    if secure is None or not secure.enabled:
        return {}
    private = config.differential_privacy
    # Under DP, and for the unweighted mean, every worker's input has weight 1.
    unit = private is not None or config.averaging.method == "mean"
    terms: dict[str, Any] = {
        "secure_aggregation": {
            "protocol": "secagg+",
            "threshold": secure.threshold,
            "neighbours": secure.neighbours,
            "clipping_range": secure.clipping_range,
            "bits": secure.bits,
            "max_weight": secure.max_weight,
            "transport": secure.transport,
            "weighting": "unit" if unit else "sample_count",
        }
    }
    if private is not None:
        terms["differential_privacy"] = {
            "clipping_norm": private.clipping_norm,
            "noise_multiplier": private.noise_multiplier,
            "target_delta": private.target_delta,
        }
    return terms


def answer(response: cm.CycleResponse, served: ServedJob) -> CycleAnswer:
    """Turn the cycle manager's decision into the worker's JSON."""
    if response.WhichOneof("outcome") == "accepted":
        accepted = response.accepted
        return CycleAnswer(
            body={
                "status": "accepted",
                "request_key": accepted.request_key,
                "cycle_id": accepted.cycle_id,
                "cycle_number": accepted.cycle_number,
                "checkpoint": accepted.checkpoint_number,
                "deadline": accepted.deadline_unix,
                "plans": served.plans(),
                "protocols": list(served.job.protocols),
                "client_config": served.client_config,
                **secure_terms(served.server_config),
            },
            outcome="accepted",
        )
    rejected = response.rejected
    reason = cm.Rejected.Reason.Name(rejected.reason).lower()
    if rejected.reason == cm.Rejected.JOB_FINISHED:
        return CycleAnswer(
            body={
                "status": "finished",
                "reason": "job_finished",
                "message": rejected.message or "this job has finished",
            },
            outcome="finished",
            reason="job_finished",
        )
    retry_after = max(1.0, float(math.ceil(rejected.retry_after_seconds)))
    return CycleAnswer(
        body={
            "status": "rejected",
            "reason": reason,
            "message": rejected.message,
            "retry_after": retry_after,
        },
        outcome="rejected",
        reason=reason,
        retry_after=retry_after,
    )
