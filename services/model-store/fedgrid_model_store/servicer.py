"""The ModelStore gRPC servicer: decode parts, call the service, map errors."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc
from prometheus_client import Counter

from fedgrid.errors import FedgridError, InvalidArgument
from fedgrid.modelstore.names import check_config_json
from fedgrid.modelstore.records import (
    BlobKind,
    BlobSpec,
    CheckpointHeader,
    CheckpointRecord,
    JobHeader,
    JobRecord,
)
from fedgrid.modelstore.rpc_errors import status_for
from fedgrid.modelstore.service import ModelStore
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid.v1 import model_store_pb2_grpc

logger = logging.getLogger(__name__)

T = TypeVar("T")

RPCS = Counter(
    "fedgrid_model_store_rpcs_total",
    "Model store calls by method and outcome (ok or a status code name)",
    ["method", "outcome"],
)
BYTES_IN = Counter(
    "fedgrid_model_store_bytes_in_total", "Blob bytes received by the model store"
)
BYTES_OUT = Counter(
    "fedgrid_model_store_bytes_out_total", "Blob bytes sent by the model store"
)

_KINDS = {
    pb.BlobRef.MODEL: BlobKind.MODEL,
    pb.BlobRef.PLAN: BlobKind.PLAN,
    pb.BlobRef.PROTOCOL: BlobKind.PROTOCOL,
    pb.BlobRef.SERVER_STATE: BlobKind.SERVER_STATE,
}


def _abort(method: str, context: grpc.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, FedgridError):
        code = status_for(exc)
        message = str(exc)
        logger.info("[ModelStore.%s] refused status=%s", method, code.name)
    elif isinstance(exc, grpc.RpcError):
        # The caller's request stream broke off (cancelled or disconnected).
        code = grpc.StatusCode.CANCELLED
        message = "the request stream ended abnormally; nothing was stored"
        logger.info("[ModelStore.%s] request stream cancelled", method)
    else:
        code = grpc.StatusCode.INTERNAL
        message = "internal error in the model store; its log has the details"
        logger.exception("[ModelStore.%s] failed", method)
    RPCS.labels(method, code.name.lower()).inc()
    context.abort(code, message)


def _unary(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> T:
        try:
            reply = method(self, request, context)
        except Exception as exc:
            _abort(method.__name__, context, exc)
            raise  # context.abort raised already; this line is not reached
        RPCS.labels(method.__name__, "ok").inc()
        return reply

    return call


def _streaming(
    method: Callable[..., Iterator[pb.BlobPart]],
) -> Callable[..., Iterator[pb.BlobPart]]:
    @functools.wraps(method)
    def call(
        self: Any, request: Any, context: grpc.ServicerContext
    ) -> Iterator[pb.BlobPart]:
        try:
            yield from method(self, request, context)
        except Exception as exc:
            _abort(method.__name__, context, exc)
            raise
        RPCS.labels(method.__name__, "ok").inc()

    return call


class _Parts:
    """Splits a client stream into its header and (blob ref, data) groups."""

    def __init__(self, parts: Iterator[Any], what: str) -> None:
        self._parts = parts
        self._what = what
        self._next_ref: pb.BlobRef | None = None

    def header(self) -> Any:
        first = next(self._parts, None)
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidArgument(f"{self._what} must start with its header part")
        return first.header

    def blobs(self) -> Iterator[tuple[BlobSpec, Iterator[bytes]]]:
        first = next(self._parts, None)
        if first is None:
            return
        if first.WhichOneof("part") != "blob":
            raise InvalidArgument(
                f"{self._what}: after the header, send a blob part before its data"
            )
        ref: pb.BlobRef | None = first.blob
        while ref is not None:
            kind = _KINDS.get(ref.kind)
            if kind is None:
                raise InvalidArgument(
                    f"{self._what}: blob kind {ref.kind} is unknown; use MODEL, "
                    "PLAN, PROTOCOL or SERVER_STATE"
                )
            data = self._data()
            yield BlobSpec(kind=kind, name=ref.name, format=ref.format), data
            for _ in data:  # whatever the consumer left unread
                pass
            ref, self._next_ref = self._next_ref, None

    def _data(self) -> Iterator[bytes]:
        for part in self._parts:
            kind = part.WhichOneof("part")
            if kind == "data":
                BYTES_IN.inc(len(part.data))
                yield part.data
            elif kind == "blob":
                self._next_ref = part.blob
                return
            else:
                raise InvalidArgument(f"{self._what}: only one header part is allowed")


def job_message(job: JobRecord) -> pb.Job:
    """A stored job as its protobuf message."""
    return pb.Job(
        id=job.id,
        name=job.name,
        version=job.version,
        client_config_json=json.dumps(job.client_config, sort_keys=True),
        server_config_json=json.dumps(job.server_config, sort_keys=True),
        plans=[
            pb.PlanInfo(name=name, formats=formats)
            for name, formats in sorted(job.plans.items())
        ],
        protocols=job.protocols,
        averaging_plan=job.averaging_plan,
        created_at_unix=int(job.created_at.timestamp()),
        latest_checkpoint=job.latest_checkpoint,
    )


def checkpoint_message(checkpoint: CheckpointRecord) -> pb.Checkpoint:
    """A stored checkpoint as its protobuf message."""
    return pb.Checkpoint(
        job_id=checkpoint.job_id,
        number=checkpoint.number,
        digest=checkpoint.blob.digest,
        size=checkpoint.blob.size,
        created_at_unix=int(checkpoint.created_at.timestamp()),
        metrics=checkpoint.metrics,
        aliases=list(checkpoint.aliases),
        cycle_id=checkpoint.cycle_id or "",
    )


def _checkpoint_which(ref: pb.CheckpointRef) -> tuple[int | None, str | None]:
    which = ref.WhichOneof("which")
    if which == "number":
        return ref.number, None
    if which == "alias":
        return None, ref.alias
    return None, None


def _data_parts(chunks: Iterator[bytes]) -> Iterator[pb.BlobPart]:
    for chunk in chunks:
        BYTES_OUT.inc(len(chunk))
        yield pb.BlobPart(data=chunk)


class ModelStoreServicer(model_store_pb2_grpc.ModelStoreServicer):
    """Thin gRPC layer over fedgrid.modelstore.service.ModelStore.

    Method names are the rpc names of the proto, hence the N802 exemptions.
    """

    def __init__(self, store: ModelStore) -> None:
        self._store = store

    @_unary
    def HostJob(self, request_iterator: Any, context: grpc.ServicerContext) -> pb.Job:
        parts = _Parts(request_iterator, "HostJob")
        header = parts.header()
        job_header = JobHeader(
            name=header.name,
            version=header.version,
            client_config=check_config_json(header.client_config_json, "client config"),
            server_config=check_config_json(header.server_config_json, "server config"),
            averaging_plan=header.averaging_plan,
        )
        return job_message(self._store.host_job(job_header, parts.blobs()))

    @_unary
    def GetJob(self, request: pb.JobRef, context: grpc.ServicerContext) -> pb.Job:
        return job_message(self._store.get_job(request.name, request.version))

    @_unary
    def GetJobById(
        self, request: pb.GetJobByIdRequest, context: grpc.ServicerContext
    ) -> pb.Job:
        return job_message(self._store.get_job_by_id(request.id))

    @_unary
    def ListJobs(
        self, request: pb.ListJobsRequest, context: grpc.ServicerContext
    ) -> pb.ListJobsResponse:
        jobs = self._store.list_jobs(request.name)
        return pb.ListJobsResponse(jobs=[job_message(job) for job in jobs])

    @_streaming
    def GetCheckpoint(
        self, request: pb.CheckpointRef, context: grpc.ServicerContext
    ) -> Iterator[pb.BlobPart]:
        number, alias = _checkpoint_which(request)
        checkpoint, chunks = self._store.open_checkpoint(
            request.job.name, request.job.version, number, alias
        )
        yield pb.BlobPart(checkpoint=checkpoint_message(checkpoint))
        yield from _data_parts(chunks)

    @_streaming
    def GetServerState(
        self, request: pb.CheckpointRef, context: grpc.ServicerContext
    ) -> Iterator[pb.BlobPart]:
        number, alias = _checkpoint_which(request)
        checkpoint, chunks = self._store.open_server_state(
            request.job.name, request.job.version, number, alias
        )
        yield pb.BlobPart(checkpoint=checkpoint_message(checkpoint))
        yield from _data_parts(chunks)

    @_streaming
    def GetPlan(
        self, request: pb.PlanRef, context: grpc.ServicerContext
    ) -> Iterator[pb.BlobPart]:
        chunks = self._store.open_plan(
            request.job.name, request.job.version, request.name, request.format
        )
        ref = pb.BlobRef(kind=pb.BlobRef.PLAN, name=request.name, format=request.format)
        yield pb.BlobPart(blob=ref)
        yield from _data_parts(chunks)

    @_streaming
    def GetProtocol(
        self, request: pb.ProtocolRef, context: grpc.ServicerContext
    ) -> Iterator[pb.BlobPart]:
        chunks = self._store.open_protocol(
            request.job.name, request.job.version, request.name
        )
        yield pb.BlobPart(blob=pb.BlobRef(kind=pb.BlobRef.PROTOCOL, name=request.name))
        yield from _data_parts(chunks)

    @_unary
    def CreateCheckpoint(
        self, request_iterator: Any, context: grpc.ServicerContext
    ) -> pb.Checkpoint:
        parts = _Parts(request_iterator, "CreateCheckpoint")
        header = parts.header()
        checkpoint_header = CheckpointHeader(
            job_id=header.job_id,
            cycle_id=header.cycle_id,
            metrics=dict(header.metrics),
            aliases=tuple(header.aliases),
        )
        checkpoint = self._store.create_checkpoint(checkpoint_header, parts.blobs())
        return checkpoint_message(checkpoint)

    @_unary
    def ListCheckpoints(
        self, request: pb.JobRef, context: grpc.ServicerContext
    ) -> pb.ListCheckpointsResponse:
        checkpoints = self._store.list_checkpoints(request.name, request.version)
        return pb.ListCheckpointsResponse(
            checkpoints=[checkpoint_message(c) for c in checkpoints]
        )

    @_unary
    def SetAlias(
        self, request: pb.SetAliasRequest, context: grpc.ServicerContext
    ) -> pb.Checkpoint:
        checkpoint = self._store.set_alias(
            request.job.name, request.job.version, request.number, request.alias
        )
        return checkpoint_message(checkpoint)
