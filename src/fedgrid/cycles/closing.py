"""Closing cycles: history sync, enqueueing aggregation, timers' scans."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from fedgrid.cycles import metrics
from fedgrid.cycles.history import History
from fedgrid.cycles.live_state import LiveState
from fedgrid.errors import FedgridError

logger = logging.getLogger(__name__)

# (job_id, cycle_id, checkpoint_number the cycle trained from)
Enqueue = Callable[[str, str, int], None]


def new_cycle_id() -> str:
    """A fresh id for a cycle that may open."""
    return uuid.uuid4().hex


class CycleCloser:
    """What follows a close: copy to PostgreSQL, enqueue, record the next cycle."""

    def __init__(self, live: LiveState, history: History, enqueue: Enqueue) -> None:
        self.live = live
        self.history = history
        self._enqueue = enqueue

    def close_due_cycles(self) -> int:
        """Close every cycle past its deadline; returns how many this call closed."""
        closed = 0
        for cycle_id in self.live.due("deadlines", 0.0):
            result = self.live.close_at_deadline(cycle_id, new_cycle_id())
            if result["outcome"] == "closing":
                closed += 1
                self.after_close(cycle_id, resend=False)
            elif result["outcome"] == "failed":
                closed += 1
                self.record_end(cycle_id, result["job_id"], str(result["opened"]))
        return closed

    def resend_quiet_aggregations(self, timeout: float) -> int:
        """Enqueue again closing cycles whose aggregation has not reported back."""
        sent = 0
        for cycle_id in self.live.due("closing", timeout):
            if self.live.claim_stale(cycle_id, timeout):
                self.after_close(cycle_id, resend=True)
                sent += 1
        return sent

    def after_close(self, cycle_id: str, resend: bool) -> None:
        """Copy a closing cycle to PostgreSQL, then enqueue its aggregation."""
        # History first: the aggregator reads the reports from PostgreSQL.
        try:
            cycle = self._sync_cycle(cycle_id)
            if cycle is None:
                return
            self._enqueue(cycle["job_id"], cycle_id, int(float(cycle["trained_from"])))
        except FedgridError as exc:
            logger.warning(
                "[CycleManager.Close] enqueue deferred cycle=%s error=%s", cycle_id, exc
            )
            return
        kind = "resend" if resend else "first"
        metrics.AGGREGATIONS_ENQUEUED.labels(kind).inc()
        logger.info(
            "[CycleManager.Close] cycle closed job=%s cycle=%s number=%s reports=%s "
            "reason=%s enqueued=%s",
            cycle["job_id"],
            cycle_id,
            cycle["number"],
            cycle["reports"],
            cycle["close_reason"],
            kind,
        )

    def record_end(self, cycle_id: str, job_id: str, opened: str) -> None:
        """Copy an ended cycle, its job and the cycle that opened next."""
        cycle = self._sync_cycle(cycle_id)
        if cycle is not None:
            metrics.CYCLES_CLOSED.labels(cycle["state"]).inc()
            duration = float(cycle["closed_at"] or 0) - float(cycle["opened_at"])
            metrics.CYCLE_SECONDS.observe(max(duration, 0.0))
            logger.info(
                "[CycleManager.Close] cycle ended job=%s cycle=%s number=%s "
                "state=%s reason=%s",
                job_id,
                cycle_id,
                cycle["number"],
                cycle["state"],
                cycle["close_reason"],
            )
        job = self.live.job(job_id)
        if job is not None:
            self.history.save_job_state(job_id, job)
            if job.get("state") == "finished":
                logger.info(
                    "[CycleManager.Close] job finished job=%s reason=%s",
                    job_id,
                    job.get("finish_reason"),
                )
        if opened:
            self.save_cycle(opened)

    def save_cycle(self, cycle_id: str) -> None:
        """Record a cycle that just opened."""
        cycle = self.live.cycle(cycle_id)
        if cycle is not None:
            self.history.save_cycle(cycle_id, cycle)
            logger.info(
                "[CycleManager.Open] cycle opened job=%s cycle=%s number=%s "
                "checkpoint=%s deadline=%s",
                cycle["job_id"],
                cycle_id,
                cycle["number"],
                cycle["trained_from"],
                cycle["deadline"],
            )

    def _sync_cycle(self, cycle_id: str) -> dict[str, str] | None:
        """Copy a cycle with its assignments and reports from Redis to PostgreSQL."""
        cycle = self.live.cycle(cycle_id)
        if cycle is None:
            return None
        self.history.save_assignments(
            cycle_id, cycle, self.live.cycle_workers(cycle_id)
        )
        reports = self.live.cycle_reports(cycle_id)
        if reports:
            self.history.save_reports(cycle_id, cycle, reports)
        return cycle
