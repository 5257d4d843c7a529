"""The Python worker SDK: join a grid's jobs, train on local data, report diffs."""

from fedgrid.worker.client import RetryPolicy
from fedgrid.worker.errors import (
    AuthError,
    GridError,
    JobFinished,
    NotFoundError,
    ProtocolError,
    RateLimited,
    Rejected,
    ReportRefused,
    ServerUnavailable,
    WorkerError,
)
from fedgrid.worker.events import CycleAssignment, Event, Rejection
from fedgrid.worker.job_runner import WorkerJob
from fedgrid.worker.training import PlanRunner, TrainingResult, train
from fedgrid.worker.worker import Worker

__all__ = [
    "AuthError",
    "CycleAssignment",
    "Event",
    "GridError",
    "JobFinished",
    "NotFoundError",
    "PlanRunner",
    "ProtocolError",
    "RateLimited",
    "Rejected",
    "Rejection",
    "ReportRefused",
    "RetryPolicy",
    "ServerUnavailable",
    "TrainingResult",
    "Worker",
    "WorkerError",
    "WorkerJob",
    "train",
]
