"""Receiving a report: check it, stream its diff to the object store, submit it."""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from fedgrid import tensors
from fedgrid.cycles.client import CycleManagerClient
from fedgrid.errors import Conflict, FedgridError, InvalidArgument, NotFound
from fedgrid.gateway.diffcheck import DiffChecker, LayoutCache
from fedgrid.gateway.errors import PermissionDenied
from fedgrid.gateway.logsafe import loggable
from fedgrid.gateway.sessions import WorkerSession
from fedgrid.jobconfig import MAX_SAMPLE_COUNT
from fedgrid.objectstore import ObjectStore
from fedgrid.v1 import cycle_manager_pb2, report_pb2, tensor_pb2

logger = logging.getLogger(__name__)

MAX_REPORT_FRAME_BYTES = 1024 * 1024
MAX_REQUEST_KEY_CHARS = 256
MAX_METRICS = 64
MAX_METRIC_NAME_CHARS = 64

SubmitStatus = cycle_manager_pb2.SubmitReportResponse
_REFUSALS: dict[int, type[FedgridError]] = {
    SubmitStatus.UNKNOWN_KEY: NotFound,
    SubmitStatus.ALREADY_REPORTED: Conflict,
    SubmitStatus.CYCLE_CLOSED: Conflict,
    SubmitStatus.DEADLINE_PASSED: Conflict,
    SubmitStatus.WRONG_WORKER: PermissionDenied,
}


@dataclass(frozen=True)
class AcceptedReport:
    """A report the cycle manager accepted, and where its diff is stored."""

    cycle_id: str
    object_key: str
    size: int


def diff_object_key(job_id: str, cycle_id: str, request_key: str) -> str:
    """Where a report's blob goes: derived from ids, never from user names.

    A random suffix per upload keeps two racing uploads for one key apart, so
    deleting a refused one never removes the accepted one's blob.
    """
    digest = hashlib.sha256(request_key.encode()).hexdigest()
    return f"diffs/{job_id}/{cycle_id}/{digest}-{uuid.uuid4().hex[:12]}"


def parse_report(payload: bytes) -> report_pb2.Report:
    """Decode and check the Report message that opens a report body."""
    report = report_pb2.Report()
    try:
        report.ParseFromString(payload)
    except Exception as exc:  # protobuf raises DecodeError and others
        raise InvalidArgument("the first frame of the body is not a Report") from exc
    if not report.request_key or len(report.request_key) > MAX_REQUEST_KEY_CHARS:
        raise InvalidArgument(
            f"Report.request_key must have 1 to {MAX_REQUEST_KEY_CHARS} characters"
        )
    if not 1 <= report.sample_count <= MAX_SAMPLE_COUNT:
        raise InvalidArgument(
            f"Report.sample_count must be between 1 and {MAX_SAMPLE_COUNT} "
            f"(the number of examples trained on); got {report.sample_count}"
        )
    if len(report.metrics) > MAX_METRICS:
        raise InvalidArgument(f"Report.metrics has more than {MAX_METRICS} entries")
    for name, value in report.metrics.items():
        if not name or len(name) > MAX_METRIC_NAME_CHARS:
            raise InvalidArgument(
                f"metric names must have 1 to {MAX_METRIC_NAME_CHARS} characters"
            )
        if not math.isfinite(value):
            raise InvalidArgument(f"metric {name!r} is not a finite number")
    return report


def check_assignment(
    assignment: cycle_manager_pb2.Assignment, session: WorkerSession
) -> None:
    """Refuse early what the cycle manager would refuse anyway."""
    if assignment.worker_id != session.worker_id:
        raise PermissionDenied("this request key was given to another worker")
    session.require_job(assignment.job_id)
    if assignment.reported:
        raise Conflict("a report for this request key was already accepted")
    if not assignment.cycle_open:
        raise Conflict("the cycle of this request key is closed")
    if assignment.deadline_unix and time.time() > assignment.deadline_unix:
        raise Conflict("the cycle's deadline has passed")


class ReportIntake:
    """The gateway's report path, in the design's order of writes."""

    def __init__(
        self,
        store: ObjectStore,
        layouts: LayoutCache,
        cycle_manager: CycleManagerClient,
    ) -> None:
        self._store = store
        self._layouts = layouts
        self._cycle_manager = cycle_manager

    def receive(self, body: BinaryIO, session: WorkerSession) -> AcceptedReport:
        """Read a framed Report and diff from body; store, then submit it."""
        frames = tensors.read_frames(body)
        first = next(frames, None)
        if first is None:
            raise InvalidArgument("the body is empty; send a framed Report and diff")
        if len(first) > MAX_REPORT_FRAME_BYTES:
            raise InvalidArgument("the Report frame is too large")
        report = parse_report(first)
        assignment = self._cycle_manager.get_assignment(report.request_key)
        if not assignment.request_key:
            raise NotFound("this request key was never issued")
        check_assignment(assignment, session)

        # Stream the diff to the object store while checking it part by part;
        # a failed check aborts the write, so nothing is left behind.
        layout = self._layouts.get(assignment.job_id, assignment.checkpoint_number)
        checker = DiffChecker(layout)
        key = diff_object_key(
            assignment.job_id, assignment.cycle_id, report.request_key
        )
        stored = self._store.put(key, _checked_blob(first, frames, checker))

        try:
            reply = self._cycle_manager.submit_report(
                request_key=report.request_key,
                worker_id=session.worker_id,
                sample_count=report.sample_count,
                diff_object_key=key,
                diff_size=stored.size,
                diff_digest=stored.sha256,
                metrics=dict(report.metrics),
            )
        except BaseException:
            self._discard(key)
            raise
        if reply.status != SubmitStatus.ACCEPTED:
            self._discard(key)
            error = _REFUSALS.get(reply.status, Conflict)
            raise error(reply.message or "the cycle manager refused the report")
        logger.info(
            "[Gateway.Report] accepted cycle=%s worker=%s size=%s",
            reply.cycle_id or assignment.cycle_id,
            loggable(session.worker_id),
            stored.size,
        )
        return AcceptedReport(
            cycle_id=reply.cycle_id or assignment.cycle_id,
            object_key=key,
            size=stored.size,
        )

    def _discard(self, key: str) -> None:
        if self._store.delete_quietly([key]):
            logger.warning("[Gateway.Report] could not delete refused blob key=%s", key)


def _checked_blob(
    report_frame: bytes, frames: Iterator[bytes], checker: DiffChecker
) -> Iterator[bytes]:
    yield tensors.frame(report_frame)
    for index, payload in enumerate(frames, start=1):
        chunk = tensor_pb2.StateChunk()
        try:
            chunk.ParseFromString(payload)
        except Exception as exc:  # protobuf raises DecodeError and others
            raise InvalidArgument(
                f"frame {index} of the report is not a StateChunk"
            ) from exc
        checker.feed(chunk)
        yield tensors.frame(payload)
    checker.finish()
