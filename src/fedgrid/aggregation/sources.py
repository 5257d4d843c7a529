"""Reports of a cycle as averaging inputs, their diffs read from the object store."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from google.protobuf.message import DecodeError

from fedgrid.averaging import DiffBuffer, DiffRejected, ReportInput
from fedgrid.errors import InvalidArgument, NotFound
from fedgrid.objectstore import ObjectStore
from fedgrid.v1 import cycle_manager_pb2, report_pb2

_FRAME = struct.Struct(">I")
MAX_REPORT_FRAME_BYTES = 64 * 1024


def strip_report_frame(blob: memoryview, request_key: str) -> memoryview:
    """The diff after a stored blob's leading Report, which must be this report's."""
    if len(blob) < _FRAME.size:
        raise DiffRejected("diff blob is too short to hold a Report")
    (length,) = _FRAME.unpack_from(blob, 0)
    end = _FRAME.size + length
    if length > MAX_REPORT_FRAME_BYTES or end > len(blob):
        raise DiffRejected("diff blob does not start with a framed Report")
    report = report_pb2.Report()
    try:
        report.ParseFromString(bytes(blob[_FRAME.size : end]))
    except DecodeError as exc:
        raise DiffRejected("diff blob does not start with a Report") from exc
    if report.request_key != request_key:
        raise DiffRejected("diff blob belongs to another request key")
    return blob[end:]


def stored_report_input(
    report: cycle_manager_pb2.StoredReport, store: ObjectStore, max_bytes: int
) -> ReportInput:
    """An averaging input whose diff is read (and digest-checked) on demand."""
    key = report.diff_object_key
    size = report.diff_size
    digest = report.diff_digest
    request_key = report.request_key

    def load(buffer: DiffBuffer) -> memoryview:
        if not 0 < size <= max_bytes:
            raise DiffRejected(f"diff size {size} is outside 1..{max_bytes} bytes")
        if not digest:
            raise DiffRejected("the report carries no diff digest")
        try:
            stream = store.open(key)
        except NotFound as exc:
            raise DiffRejected(f"diff blob {key!r} is missing") from exc
        except InvalidArgument as exc:
            raise DiffRejected(f"diff key is unusable: {exc}") from exc
        with stream:
            blob = buffer.fill(stream, size, digest)
        return strip_report_frame(blob, request_key)

    return ReportInput(
        key=request_key,
        sample_count=report.sample_count,
        metrics=dict(report.metrics),
        load=load,
    )


def report_inputs(
    reports: Iterable[cycle_manager_pb2.StoredReport],
    store: ObjectStore,
    max_bytes: int,
) -> list[ReportInput]:
    """Averaging inputs for a cycle's accepted reports, in their order."""
    return [stored_report_input(report, store, max_bytes) for report in reports]
