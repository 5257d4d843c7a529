"""Typed Python client of the model store's gRPC service."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, cast

import grpc

from fedgrid.errors import DataLoss, FedgridError
from fedgrid.grpcserver import channel
from fedgrid.modelstore.rpc_errors import error_from_rpc
from fedgrid.objectstore import verified
from fedgrid.tensors import DEFAULT_CHUNK_BYTES
from fedgrid.v1 import model_store_pb2 as pb
from fedgrid.v1 import model_store_pb2_grpc

T = TypeVar("T")
Blob = tuple[pb.BlobRef, Iterable[bytes]]


def rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Yield the bytes of chunks again in non-empty pieces of at most size."""
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), size):
            yield bytes(view[start : start + size])


class _Requests:
    """A request iterator that remembers an error raised by the caller's data."""

    def __init__(self, parts: Iterator[Any]) -> None:
        self._parts = parts
        self.failure: BaseException | None = None

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._parts)
        except StopIteration:
            raise
        except BaseException as exc:
            self.failure = exc
            raise


class ModelStoreClient:
    """Calls the model store at address; raises fedgrid.errors on failure."""

    def __init__(
        self,
        address: str,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        timeout: float = 30.0,
    ) -> None:
        self.address = address
        self._chunk_bytes = chunk_bytes
        self._timeout = timeout
        self._channel = channel(address)
        self._stub: Any = model_store_pb2_grpc.ModelStoreStub(self._channel)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> ModelStoreClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- jobs ----------------------------------------------------------

    def host_job(self, header: pb.HostJobHeader, blobs: Iterable[Blob]) -> pb.Job:
        """Store a job: one MODEL blob, plans by format, protocols."""

        def parts() -> Iterator[pb.HostJobPart]:
            yield pb.HostJobPart(header=header)
            for ref, data in blobs:
                yield pb.HostJobPart(blob=ref)
                for piece in rechunk(data, self._chunk_bytes):
                    yield pb.HostJobPart(data=piece)

        return self._stream_in(self._stub.HostJob, parts(), pb.Job, "HostJob")

    def get_job(self, name: str, version: str = "") -> pb.Job:
        """A job by name and version; an empty version means the newest."""
        ref = pb.JobRef(name=name, version=version)
        return self._unary(self._stub.GetJob, ref, pb.Job, "GetJob")

    def get_job_by_id(self, job_id: str) -> pb.Job:
        """A job by its id."""
        request = pb.GetJobByIdRequest(id=job_id)
        return self._unary(self._stub.GetJobById, request, pb.Job, "GetJobById")

    def list_jobs(self, name: str = "") -> list[pb.Job]:
        """Every job, or every version of one job name."""
        request = pb.ListJobsRequest(name=name)
        reply = self._unary(
            self._stub.ListJobs, request, pb.ListJobsResponse, "ListJobs"
        )
        return list(reply.jobs)

    # --- blobs ---------------------------------------------------------

    def open_checkpoint(
        self,
        name: str,
        version: str = "",
        number: int | None = None,
        alias: str | None = None,
    ) -> tuple[pb.Checkpoint, Iterator[bytes]]:
        """A checkpoint (latest when neither number nor alias is given).

        The bytes are checked against the checkpoint's digest as they arrive;
        a mismatch raises DataLoss at the end of the stream.
        """
        ref = _checkpoint_ref(name, version, number, alias)
        return self._open_checkpoint_blob(
            self._stub.GetCheckpoint, ref, "GetCheckpoint"
        )

    def get_server_state(
        self,
        name: str,
        version: str = "",
        number: int | None = None,
        alias: str | None = None,
    ) -> tuple[pb.Checkpoint, Iterator[bytes]]:
        """The aggregator state stored with a checkpoint; NotFound when none."""
        ref = _checkpoint_ref(name, version, number, alias)
        first, data = self._open_blob(self._stub.GetServerState, ref, "GetServerState")
        return first.checkpoint, data

    def get_plan(
        self, name: str, version: str, plan: str, plan_format: str
    ) -> Iterator[bytes]:
        """A plan's bytes in the requested format ("ops" or "torchscript")."""
        ref = pb.PlanRef(
            job=pb.JobRef(name=name, version=version), name=plan, format=plan_format
        )
        _, data = self._open_blob(self._stub.GetPlan, ref, "GetPlan")
        return data

    def get_protocol(self, name: str, version: str, protocol: str) -> Iterator[bytes]:
        """A protocol's stored bytes."""
        ref = pb.ProtocolRef(job=pb.JobRef(name=name, version=version), name=protocol)
        _, data = self._open_blob(self._stub.GetProtocol, ref, "GetProtocol")
        return data

    # --- checkpoints ---------------------------------------------------

    def create_checkpoint(
        self,
        job_id: str,
        cycle_id: str,
        model_chunks: Iterable[bytes],
        server_state_chunks: Iterable[bytes] | None = None,
        metrics: Mapping[str, float] | None = None,
        aliases: Iterable[str] = (),
    ) -> pb.Checkpoint:
        """Store the next checkpoint once per cycle; a retry returns the first."""
        header = pb.CreateCheckpointHeader(
            job_id=job_id,
            cycle_id=cycle_id,
            metrics=dict(metrics or {}),
            aliases=list(aliases),
        )

        def parts() -> Iterator[pb.CreateCheckpointPart]:
            yield pb.CreateCheckpointPart(header=header)
            yield pb.CreateCheckpointPart(blob=pb.BlobRef(kind=pb.BlobRef.MODEL))
            for piece in rechunk(model_chunks, self._chunk_bytes):
                yield pb.CreateCheckpointPart(data=piece)
            if server_state_chunks is not None:
                state_ref = pb.BlobRef(kind=pb.BlobRef.SERVER_STATE)
                yield pb.CreateCheckpointPart(blob=state_ref)
                for piece in rechunk(server_state_chunks, self._chunk_bytes):
                    yield pb.CreateCheckpointPart(data=piece)

        return self._stream_in(
            self._stub.CreateCheckpoint, parts(), pb.Checkpoint, "CreateCheckpoint"
        )

    def list_checkpoints(self, name: str, version: str = "") -> list[pb.Checkpoint]:
        """A job's checkpoints in number order, each with its aliases."""
        ref = pb.JobRef(name=name, version=version)
        reply = self._unary(
            self._stub.ListCheckpoints,
            ref,
            pb.ListCheckpointsResponse,
            "ListCheckpoints",
        )
        return list(reply.checkpoints)

    def set_alias(
        self, name: str, version: str, number: int, alias: str
    ) -> pb.Checkpoint:
        """Point alias at checkpoint number (moving it if it exists)."""
        request = pb.SetAliasRequest(
            job=pb.JobRef(name=name, version=version), number=number, alias=alias
        )
        return self._unary(self._stub.SetAlias, request, pb.Checkpoint, "SetAlias")

    # --- plumbing ------------------------------------------------------

    def _unary(
        self, method: Callable[..., Any], request: Any, reply: type[T], what: str
    ) -> T:
        try:
            return cast(T, method(request, timeout=self._timeout))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, what) from exc

    def _stream_in(
        self,
        method: Callable[..., Any],
        parts: Iterator[Any],
        reply: type[T],
        what: str,
    ) -> T:
        requests = _Requests(parts)
        try:
            return cast(T, method(requests))
        except grpc.RpcError as exc:
            if requests.failure is not None:
                raise requests.failure from None
            raise error_from_rpc(exc, what) from exc

    def _open_blob(
        self, method: Callable[..., Any], request: Any, what: str
    ) -> tuple[pb.BlobPart, Iterator[bytes]]:
        call = method(request)
        try:
            first = next(call)
        except StopIteration:
            raise FedgridError(f"{what}: the server sent an empty stream") from None
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, what) from exc
        if first.WhichOneof("part") == "data":
            call.cancel()
            raise FedgridError(f"{what}: the stream starts with data, not its info")
        return first, _data_parts(call, what)

    def _open_checkpoint_blob(
        self, method: Callable[..., Any], request: Any, what: str
    ) -> tuple[pb.Checkpoint, Iterator[bytes]]:
        first, data = self._open_blob(method, request, what)
        return first.checkpoint, _verified(data, first.checkpoint, what)


def _checkpoint_ref(
    name: str, version: str, number: int | None, alias: str | None
) -> pb.CheckpointRef:
    job = pb.JobRef(name=name, version=version)
    if number is not None and alias is not None:
        raise ValueError("give a checkpoint number or an alias, not both")
    if number is not None:
        return pb.CheckpointRef(job=job, number=number)
    if alias is not None:
        return pb.CheckpointRef(job=job, alias=alias)
    return pb.CheckpointRef(job=job)


def _data_parts(call: Any, what: str) -> Iterator[bytes]:
    try:
        for part in call:
            yield part.data
    except grpc.RpcError as exc:
        raise error_from_rpc(exc, what) from exc
    finally:
        call.cancel()  # a no-op when the stream already ended


def _verified(
    data: Iterator[bytes], checkpoint: pb.Checkpoint, what: str
) -> Iterator[bytes]:
    def mismatch(size: int) -> None:
        raise DataLoss(
            f"{what}: received {size} bytes that do not match the stored digest "
            f"of checkpoint {checkpoint.number}; download it again"
        )

    return verified(data, checkpoint.size, checkpoint.digest, mismatch)
