"""Cycle rules: admission, reports, closing and the next cycle, over live state."""

from __future__ import annotations

import logging
import random
import re
import secrets
import time
from typing import Any

from fedgrid.cycles import metrics
from fedgrid.cycles.closing import CycleCloser, Enqueue, new_cycle_id
from fedgrid.cycles.history import History
from fedgrid.cycles.live_state import LiveState
from fedgrid.cycles.messages import rejection, report_message
from fedgrid.cycles.secure import ADMISSION_SHARE, SecureCycles
from fedgrid.errors import (
    AlreadyExists,
    Conflict,
    FedgridError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from fedgrid.jobconfig import MAX_SAMPLE_COUNT, ServerConfig
from fedgrid.privacy.mechanism import stop_rule
from fedgrid.secagg.averaging import secure_config
from fedgrid.secagg.rounds import SecAggRounds
from fedgrid.v1 import cycle_manager_pb2 as pb

logger = logging.getLogger(__name__)

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_ID = 200


def _check_id(name: str, value: str) -> None:
    if not value or len(value) > _MAX_ID or not value.isprintable():
        raise InvalidArgument(
            f"{name} must be 1 to {_MAX_ID} printable characters, got {value!r}"
        )


class CycleManager:
    """Every cycle rule, with its live state, history and queue passed in."""

    def __init__(
        self,
        live: LiveState,
        history: History,
        enqueue: Enqueue,
        rng: random.Random | None = None,
        rounds: SecAggRounds | None = None,
    ) -> None:
        self.live = live
        self.history = history
        self.closer = CycleCloser(live, history, enqueue)
        self._rng = rng or random.SystemRandom()
        self.secure = (
            None if rounds is None else SecureCycles(live, rounds, self.closer)
        )

    def _secure(self) -> SecureCycles:
        if self.secure is None:
            raise Unavailable(
                "this cycle manager runs no secure aggregation rounds; give it a "
                "SecAggRounds store"
            )
        return self.secure

    def register_job(
        self,
        job_id: str,
        name: str,
        version: str,
        server_config_json: str,
        checkpoint_number: int,
        model_size: int = 0,
    ) -> pb.JobStatus:
        """Take a job's server config and open its first cycle; idempotent.

        model_size (values in the model) is required for secure aggregation.
        """
        _check_id("job_id", job_id)
        config = ServerConfig.from_json(server_config_json)
        if checkpoint_number < 1:
            raise InvalidArgument(
                "checkpoint_number must be the stored checkpoint the first cycle "
                f"trains from (1 for the initial model), got {checkpoint_number}"
            )
        self.history.save_job(job_id, name, version, config.to_dict())
        # The privacy budget is fixed by the config: max_epsilon allows a known
        # number of cycles, after which the job finishes instead of opening one.
        budget = stop_rule(config)
        extra: dict[str, object] = (
            {}
            if budget is None
            else {"privacy_cycles": budget[0], "privacy_stop_reason": budget[1]}
        )
        if secure_config(config):
            # Admission closes with the advertise round's share of the cycle.
            if model_size < 1:
                raise InvalidArgument(
                    "model_size (the number of values in the model) is required "
                    "for a job with secure_aggregation enabled"
                )
            self._secure()
            extra.update(secure_admission=ADMISSION_SHARE, model_size=model_size)
        result = self.live.register_job(
            job_id, config, checkpoint_number, new_cycle_id(), extra
        )
        if result["outcome"] == "conflict":
            raise AlreadyExists(
                f"job {job_id!r} is registered with a different server config; "
                "push the changed config as a new job version"
            )
        if result["outcome"] == "registered":
            self.closer.save_cycle(result["cycle_id"])
            logger.info(
                "[CycleManager.RegisterJob] job=%s cycle_length=%s num_cycles=%s",
                job_id,
                config.cycle_length,
                config.num_cycles,
            )
        return self.job_status(job_id)

    def request_cycle(
        self, job_id: str, worker_id: str, download_kbps: float, upload_kbps: float
    ) -> pb.CycleResponse:
        """Admit the worker to the open cycle with a fresh key, or say why not."""
        _check_id("job_id", job_id)
        _check_id("worker_id", worker_id)
        key = secrets.token_urlsafe(32)
        result = self.live.request_cycle(
            job_id, worker_id, download_kbps, upload_kbps, self._rng.random(), key
        )
        outcome = result["outcome"]
        if outcome == "unknown_job":
            raise NotFound(f"job {job_id!r} is not registered with the cycle manager")
        if outcome == "rejected":
            reason = str(result["reason"])
            metrics.ADMISSIONS.labels(reason).inc()
            logger.debug(
                "[CycleManager.RequestCycle] job=%s worker=%s outcome=%s",
                job_id,
                worker_id,
                reason,
            )
            answer = rejection(reason, float(result["retry"]), str(result["detail"]))
            return pb.CycleResponse(rejected=answer)

        metrics.ADMISSIONS.labels("ACCEPTED").inc()
        logger.debug(
            "[CycleManager.RequestCycle] job=%s worker=%s outcome=ACCEPTED cycle=%s",
            job_id,
            worker_id,
            result["number"],
        )
        live_cycle = {
            "job_id": job_id,
            "number": str(result["number"]),
            "state": "open",
            "trained_from": str(result["checkpoint"]),
            "admitted": str(result["admitted"]),
            "opened_at": str(result["opened_at"]),
            "deadline": str(result["deadline"]),
        }
        try:
            self.history.save_assignments(
                result["cycle_id"], live_cycle, {worker_id: key}
            )
        except FedgridError as exc:
            # Redis holds the assignment; the close copies it again.
            logger.warning(
                "[CycleManager.RequestCycle] history write failed job=%s error=%s",
                job_id,
                exc,
            )
        accepted = pb.Accepted(
            request_key=key,
            cycle_id=result["cycle_id"],
            cycle_number=int(result["number"]),
            checkpoint_number=int(result["checkpoint"]),
            deadline_unix=float(result["deadline"]),
        )
        if result.get("filled"):
            self._secure().start(result["cycle_id"])
        return pb.CycleResponse(accepted=accepted)

    def assignment(self, request_key: str) -> pb.Assignment:
        """What a request key is for and whether it can still report."""
        held = self.live.assignment(request_key) if request_key else None
        if held is None:
            raise NotFound("this request key was never issued or has expired")
        cycle = self.live.cycle(held["cycle_id"]) or {}
        deadline = float(cycle.get("deadline") or 0)
        return pb.Assignment(
            request_key=request_key,
            job_id=held["job_id"],
            cycle_id=held["cycle_id"],
            worker_id=held["worker_id"],
            checkpoint_number=int(float(cycle.get("trained_from") or 0)),
            deadline_unix=deadline,
            reported=held.get("reported") == "1",
            cycle_open=cycle.get("state") == "open" and time.time() < deadline,
        )

    def submit_report(self, request: pb.SubmitReportRequest) -> pb.SubmitReportResponse:
        """Accept a report atomically, or refuse it and change nothing."""
        if not 1 <= request.sample_count <= MAX_SAMPLE_COUNT:
            raise InvalidArgument(
                f"sample_count must be between 1 and {MAX_SAMPLE_COUNT}, "
                f"got {request.sample_count}"
            )
        if request.diff_size < 0:
            raise InvalidArgument("diff_size must not be negative")
        if not request.diff_object_key:
            raise InvalidArgument("diff_object_key must name the stored diff")
        if not _DIGEST.match(request.diff_digest):
            raise InvalidArgument("diff_digest must be 64 lowercase hex (sha256)")
        metadata: dict[str, Any] = {
            "sample_count": request.sample_count,
            "metrics": dict(request.metrics),
            "diff_object_key": request.diff_object_key,
            "diff_size": request.diff_size,
            "diff_digest": request.diff_digest,
        }
        result = self.live.submit_report(
            request.request_key, request.worker_id, metadata
        )
        status = str(result["status"])
        cycle_id = str(result.get("cycle_id", ""))
        metrics.REPORTS.labels(status).inc()
        logger.debug(
            "[CycleManager.SubmitReport] worker=%s cycle=%s outcome=%s",
            request.worker_id,
            cycle_id,
            status,
        )
        if status == "ACCEPTED":
            metadata["worker_id"] = request.worker_id
            metadata["accepted_at"] = result["accepted_at"]
            self._save_report(cycle_id, request.request_key, metadata)
            if result["closed"]:
                self.closer.after_close(cycle_id, resend=False)
        return pb.SubmitReportResponse(
            status=status,
            message=report_message(status),
            cycle_id=cycle_id,
        )

    def list_reports(self, cycle_id: str) -> pb.ListReportsResponse:
        """The accepted reports of one cycle, for its aggregation."""
        cycle = self.history.cycle(cycle_id)
        if cycle is None:
            raise NotFound(f"cycle {cycle_id!r} does not exist")
        reports = [
            pb.StoredReport(
                request_key=row["request_key"],
                worker_id=row["worker_id"],
                sample_count=row["sample_count"],
                metrics={k: float(v) for k, v in row["metrics"].items()},
                diff_object_key=row["diff_object_key"],
                diff_size=row["diff_size"],
                diff_digest=row["diff_digest"],
            )
            for row in self.history.reports(cycle_id)
        ]
        return pb.ListReportsResponse(
            job_id=cycle["job_id"],
            cycle_id=cycle_id,
            checkpoint_number=cycle["trained_from_checkpoint"],
            reports=reports,
        )

    def checkpoint_stored(self, cycle_id: str, checkpoint_number: int) -> pb.JobStatus:
        """Complete an aggregated cycle and open the next; a repeat changes nothing."""
        if checkpoint_number < 1:
            raise InvalidArgument(
                f"checkpoint_number must be 1 or more, got {checkpoint_number}"
            )
        return self._finish(cycle_id, "completed", checkpoint_number, "")

    def aggregation_failed(self, cycle_id: str, reason: str) -> pb.JobStatus:
        """Fail a closing cycle and open the next if attempts remain."""
        return self._finish(cycle_id, "failed", 0, reason or "no reason given")

    def _finish(
        self, cycle_id: str, outcome: str, checkpoint: int, reason: str
    ) -> pb.JobStatus:
        result = self.live.finish_aggregation(
            cycle_id, outcome, checkpoint, reason, new_cycle_id()
        )
        kind = result["outcome"]
        if kind == "unknown_cycle":
            known = self.history.cycle(cycle_id)
            if known is None:
                raise NotFound(f"cycle {cycle_id!r} does not exist")
            return self.job_status(known["job_id"])
        if kind == "not_closed":
            raise Conflict(
                f"cycle {cycle_id} is still open; it takes a result only after it "
                "closes for aggregation"
            )
        if kind == "duplicate":
            done = result["state"] == outcome and (
                outcome == "failed" or int(result["checkpoint"]) == checkpoint
            )
            if not done:
                raise Conflict(
                    f"cycle {cycle_id} already ended as {result['state']} "
                    f"(checkpoint {result['checkpoint']}); nothing was changed"
                )
            return self.job_status(result["job_id"])

        self.closer.record_end(cycle_id, result["job_id"], str(result["opened"]))
        if self.secure is not None:
            self.secure.forget(cycle_id)
        return self.job_status(result["job_id"])

    def post_secagg(
        self, request_key: str, worker_id: str, round_name: str, payload: bytes
    ) -> pb.SecAggPostResponse:
        """Store a worker's message for a secure aggregation round."""
        complete = self._secure().post(request_key, worker_id, round_name, payload)
        return pb.SecAggPostResponse(complete=complete)

    def fetch_secagg(
        self, request_key: str, worker_id: str, round_name: str
    ) -> pb.SecAggFetchResponse:
        """The run's setup, or the grid's answer to a closed round, if ready."""
        found = self._secure().fetch(request_key, worker_id, round_name)
        return pb.SecAggFetchResponse(
            ready=found.ready,
            payload=found.payload,
            current_round=found.current_round,
            round_deadline_unix=found.round_deadline,
        )

    def job_status(self, job_id: str) -> pb.JobStatus:
        """A job's state and every cycle it ran, live counts included."""
        job = self.history.job(job_id)
        if job is None:
            raise NotFound(f"job {job_id!r} is not registered with the cycle manager")
        live = self.live.job(job_id) or {}
        status = pb.JobStatus(
            job_id=job_id,
            state=live.get("state", job["state"]),
            finish_reason=live.get("finish_reason", job["finish_reason"]),
            completed_cycles=int(live.get("completed", job["completed_cycles"])),
            num_cycles=int(job["server_config"].get("num_cycles", 0)),
        )
        current = live.get("cycle_id", "")
        for row in self.history.cycles(job_id):
            cycle = pb.Cycle(
                cycle_id=row["cycle_id"],
                job_id=job_id,
                number=row["number"],
                state=row["state"],
                admitted=row["admitted"],
                reports=row["reports"],
                opened_at_unix=row["opened_at"],
                deadline_unix=row["deadline"],
                closed_at_unix=row["closed_at"] or 0.0,
                checkpoint_number=row["checkpoint_number"],
                close_reason=row["close_reason"],
            )
            if row["cycle_id"] == current:
                now = self.live.cycle(current) or {}
                cycle.admitted = int(now.get("admitted", cycle.admitted))
                cycle.reports = int(now.get("reports", cycle.reports))
            status.cycles.append(cycle)
        return status

    def _save_report(self, cycle_id: str, key: str, metadata: dict[str, Any]) -> None:
        try:
            cycle = self.live.cycle(cycle_id)
            if cycle is not None:
                self.history.save_reports(cycle_id, cycle, {key: metadata})
        except FedgridError as exc:
            # Redis holds the report; the close copies it again.
            logger.warning(
                "[CycleManager.SubmitReport] history write failed cycle=%s error=%s",
                cycle_id,
                exc,
            )
