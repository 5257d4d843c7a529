"""CycleManagerClient: typed calls to the cycle manager, gRPC errors translated."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import grpc

from fedgrid import grpcserver
from fedgrid.modelstore.rpc_errors import error_from_rpc
from fedgrid.v1 import cycle_manager_pb2 as pb
from fedgrid.v1 import cycle_manager_pb2_grpc as pb_grpc

T = TypeVar("T")


class CycleManagerClient:
    """One channel to a cycle manager; each method is one rpc."""

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._channel = grpcserver.channel(address)
        self._stub: Any = pb_grpc.CycleManagerStub(self._channel)

    def _call(self, method: Callable[..., Any], request: Any, reply: type[T]) -> T:
        try:
            return cast(T, method(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, f"cycle manager at {self.address}") from exc

    def register_job(
        self,
        job_id: str,
        name: str,
        version: str,
        server_config_json: str,
        checkpoint_number: int,
        model_size: int = 0,
    ) -> pb.JobStatus:
        """Register a job (idempotent) and open its first cycle.

        model_size (values in the model) is required for secure aggregation.
        """
        request = pb.RegisterJobRequest(
            job_id=job_id,
            name=name,
            version=version,
            server_config_json=server_config_json,
            checkpoint_number=checkpoint_number,
            model_size=model_size,
        )
        return self._call(self._stub.RegisterJob, request, pb.JobStatus)

    def request_cycle(
        self,
        job_id: str,
        worker_id: str,
        download_kbps: float = 0.0,
        upload_kbps: float = 0.0,
        ping_ms: float = 0.0,
    ) -> pb.CycleResponse:
        """Ask for a seat; check `response.WhichOneof("outcome")`."""
        request = pb.CycleRequest(
            job_id=job_id,
            worker_id=worker_id,
            ping_ms=ping_ms,
            download_kbps=download_kbps,
            upload_kbps=upload_kbps,
        )
        return self._call(self._stub.RequestCycle, request, pb.CycleResponse)

    def get_assignment(self, request_key: str) -> pb.Assignment:
        """What a request key was issued for; NotFound when it never was."""
        request = pb.AssignmentRequest(request_key=request_key)
        return self._call(self._stub.GetAssignment, request, pb.Assignment)

    def submit_report(
        self,
        request_key: str,
        worker_id: str,
        sample_count: int,
        diff_object_key: str,
        diff_size: int,
        diff_digest: str,
        metrics: Mapping[str, float] | None = None,
    ) -> pb.SubmitReportResponse:
        """Report a stored diff; the status says whether it was accepted."""
        request = pb.SubmitReportRequest(
            request_key=request_key,
            worker_id=worker_id,
            sample_count=sample_count,
            metrics=dict(metrics or {}),
            diff_object_key=diff_object_key,
            diff_size=diff_size,
            diff_digest=diff_digest,
        )
        return self._call(self._stub.SubmitReport, request, pb.SubmitReportResponse)

    def list_reports(self, cycle_id: str) -> pb.ListReportsResponse:
        """The accepted reports of a cycle, oldest first."""
        request = pb.CycleRef(cycle_id=cycle_id)
        return self._call(self._stub.ListReports, request, pb.ListReportsResponse)

    def checkpoint_stored(self, cycle_id: str, checkpoint_number: int) -> pb.JobStatus:
        """Tell that a cycle's checkpoint is stored; repeating it is harmless."""
        request = pb.CheckpointStoredRequest(
            cycle_id=cycle_id, checkpoint_number=checkpoint_number
        )
        return self._call(self._stub.CheckpointStored, request, pb.JobStatus)

    def aggregation_failed(self, cycle_id: str, reason: str) -> pb.JobStatus:
        """Tell that a cycle's aggregation failed for good."""
        request = pb.AggregationFailedRequest(cycle_id=cycle_id, reason=reason)
        return self._call(self._stub.AggregationFailed, request, pb.JobStatus)

    def post_secagg(
        self, request_key: str, worker_id: str, round_name: str, payload: bytes
    ) -> pb.SecAggPostResponse:
        """Send a worker's message for a secure aggregation round."""
        request = pb.SecAggPostRequest(
            request_key=request_key,
            worker_id=worker_id,
            round=round_name,
            payload=payload,
        )
        return self._call(self._stub.PostSecAgg, request, pb.SecAggPostResponse)

    def fetch_secagg(
        self, request_key: str, worker_id: str, round_name: str
    ) -> pb.SecAggFetchResponse:
        """The run's setup ("setup") or the grid's answer to a closed round."""
        request = pb.SecAggFetchRequest(
            request_key=request_key, worker_id=worker_id, round=round_name
        )
        return self._call(self._stub.FetchSecAgg, request, pb.SecAggFetchResponse)

    def job_status(self, job_id: str) -> pb.JobStatus:
        """A job's state and its cycles."""
        request = pb.JobStatusRequest(job_id=job_id)
        return self._call(self._stub.GetJobStatus, request, pb.JobStatus)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> CycleManagerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
