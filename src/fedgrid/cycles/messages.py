"""What a refused worker is told: one actionable sentence per reason."""

from __future__ import annotations

from fedgrid.v1 import cycle_manager_pb2 as pb

Reason = pb.Rejected.Reason
ReportStatus = pb.SubmitReportResponse.Status


def rejection(reason: str, retry: float, detail: str) -> pb.Rejected:
    """A Rejected message with its reason, retry delay and explanation."""
    wait = f"ask again in {retry:.0f} s"
    texts = {
        "JOB_FINISHED": "this job has finished and opens no more cycles; "
        "look for a newer version of the job",
        "NO_OPEN_CYCLE": "the last cycle is closed and being aggregated; "
        f"{wait} when the next cycle opens",
        "ALREADY_ASSIGNED": (
            "this worker already reported in the open cycle; "
            f"{wait} when the next cycle opens"
            if detail == "reported"
            else "this worker already holds a request key for the open cycle; "
            "train and report with that key before the cycle's deadline"
        ),
        "SPEED_TOO_LOW": "the reported download or upload speed (kbit/s) is "
        f"below the job's minimum; measure again on a faster network and {wait}",
        "WORKER_RECENTLY_USED": "this worker took part in a recent cycle and "
        f"may join again from cycle {detail}; {wait}",
        "CYCLE_FULL": "the open cycle has admitted max_workers workers; "
        f"{wait} when the next cycle opens",
        "NOT_SELECTED": f"not picked this time by random pool selection; {wait}",
        "ADMISSION_CLOSED": "the open cycle runs secure aggregation and its "
        f"admission has closed; {wait} when the next cycle opens",
    }
    return pb.Rejected(
        reason=reason,
        message=texts[reason],
        retry_after_seconds=float(retry),
    )


def report_message(status: str, cycle_number: int | None = None) -> str:
    """Why a report was accepted or refused, and what the worker can do."""
    cycle = f"cycle {cycle_number}" if cycle_number else "its cycle"
    texts = {
        "ACCEPTED": "report accepted",
        "UNKNOWN_KEY": "this request key was never issued (or has expired); "
        "ask for a new cycle to get a key",
        "ALREADY_REPORTED": "a report with this request key was already "
        "accepted; each key reports once",
        "CYCLE_CLOSED": f"{cycle} is closed; ask for a new cycle and train "
        "from its checkpoint",
        "DEADLINE_PASSED": f"the deadline of {cycle} has passed; ask for a new "
        "cycle and report before its deadline",
        "WRONG_WORKER": "this request key was issued to another worker; "
        "report with your own key",
        "SECURE_CYCLE": "this cycle runs secure aggregation: the diff goes in "
        "masked, through the /api/v1/secagg rounds, not as a plain report",
    }
    return texts[status]
