"""The CycleManager gRPC servicer: decode, call the manager, map errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NoReturn, TypeVar

import grpc

from fedgrid.cycles.manager import CycleManager
from fedgrid.errors import FedgridError
from fedgrid.modelstore.rpc_errors import status_for
from fedgrid.v1 import cycle_manager_pb2 as pb
from fedgrid.v1 import cycle_manager_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _abort(context: grpc.ServicerContext, method: str, exc: FedgridError) -> NoReturn:
    code = status_for(exc)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
        logger.warning("[CycleManager.%s] failed code=%s error=%s", method, code, exc)
    context.abort(code, str(exc))


class CycleManagerServicer(pb_grpc.CycleManagerServicer):
    """Each rpc is one call into CycleManager."""

    def __init__(self, manager: CycleManager) -> None:
        self.manager = manager

    def _run(
        self, context: grpc.ServicerContext, method: str, call: Callable[[], T]
    ) -> T:
        try:
            return call()
        except FedgridError as exc:
            _abort(context, method, exc)

    def RegisterJob(
        self, request: pb.RegisterJobRequest, context: grpc.ServicerContext
    ) -> pb.JobStatus:
        return self._run(
            context,
            "RegisterJob",
            lambda: self.manager.register_job(
                request.job_id,
                request.name,
                request.version,
                request.server_config_json,
                request.checkpoint_number,
                request.model_size,
            ),
        )

    def RequestCycle(
        self, request: pb.CycleRequest, context: grpc.ServicerContext
    ) -> pb.CycleResponse:
        return self._run(
            context,
            "RequestCycle",
            lambda: self.manager.request_cycle(
                request.job_id,
                request.worker_id,
                request.download_kbps,
                request.upload_kbps,
            ),
        )

    def GetAssignment(
        self, request: pb.AssignmentRequest, context: grpc.ServicerContext
    ) -> pb.Assignment:
        return self._run(
            context,
            "GetAssignment",
            lambda: self.manager.assignment(request.request_key),
        )

    def SubmitReport(
        self, request: pb.SubmitReportRequest, context: grpc.ServicerContext
    ) -> pb.SubmitReportResponse:
        return self._run(
            context, "SubmitReport", lambda: self.manager.submit_report(request)
        )

    def ListReports(
        self, request: pb.CycleRef, context: grpc.ServicerContext
    ) -> pb.ListReportsResponse:
        return self._run(
            context, "ListReports", lambda: self.manager.list_reports(request.cycle_id)
        )

    def CheckpointStored(
        self, request: pb.CheckpointStoredRequest, context: grpc.ServicerContext
    ) -> pb.JobStatus:
        return self._run(
            context,
            "CheckpointStored",
            lambda: self.manager.checkpoint_stored(
                request.cycle_id, request.checkpoint_number
            ),
        )

    def AggregationFailed(
        self, request: pb.AggregationFailedRequest, context: grpc.ServicerContext
    ) -> pb.JobStatus:
        return self._run(
            context,
            "AggregationFailed",
            lambda: self.manager.aggregation_failed(request.cycle_id, request.reason),
        )

    def PostSecAgg(
        self, request: pb.SecAggPostRequest, context: grpc.ServicerContext
    ) -> pb.SecAggPostResponse:
        return self._run(
            context,
            "PostSecAgg",
            lambda: self.manager.post_secagg(
                request.request_key, request.worker_id, request.round, request.payload
            ),
        )

    def FetchSecAgg(
        self, request: pb.SecAggFetchRequest, context: grpc.ServicerContext
    ) -> pb.SecAggFetchResponse:
        return self._run(
            context,
            "FetchSecAgg",
            lambda: self.manager.fetch_secagg(
                request.request_key, request.worker_id, request.round
            ),
        )

    def GetJobStatus(
        self, request: pb.JobStatusRequest, context: grpc.ServicerContext
    ) -> pb.JobStatus:
        return self._run(
            context, "GetJobStatus", lambda: self.manager.job_status(request.job_id)
        )
