"""Exceptions the worker SDK raises, carrying the grid's error code and message."""

from __future__ import annotations

from fedgrid.errors import FedgridError


class WorkerError(FedgridError):
    """Base of every error the worker SDK raises on purpose."""

    def __init__(self, message: str, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def __str__(self) -> str:
        prefix = f"{self.code}: " if self.code else ""
        suffix = f" (HTTP {self.status})" if self.status is not None else ""
        return f"{prefix}{self.message}{suffix}"


class GridError(WorkerError):
    """The grid refused a request (a 4xx answer other than those below)."""


class AuthError(GridError):
    """The grid refused the token or session (HTTP 401 or 403)."""


class NotFoundError(GridError):
    """The job, version, plan or request key does not exist (HTTP 404)."""


class ReportRefused(GridError):
    """A report came too late, twice, or for a closed cycle (HTTP 409)."""


class RateLimited(GridError):
    """The grid asks the worker to slow down (HTTP 429)."""

    def __init__(
        self, message: str, code: str = "", status: int | None = None,
        retry_after: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__(message, code, status)
        self.retry_after = retry_after


class ServerUnavailable(WorkerError):
    """The grid kept failing (5xx or no connection) after bounded retries."""


class ProtocolError(WorkerError):
    """The grid answered with something the SDK cannot read."""


class Rejected(WorkerError):
    """The grid has no seat for this worker now; ask again after retry_after."""

    def __init__(self, reason: str, message: str, retry_after: float) -> None:
        super().__init__(message, code=reason)
        self.reason = reason
        self.retry_after = retry_after


class JobFinished(WorkerError):
    """The job reached its last cycle; there is nothing left to train."""


def error_for_status(status: int, code: str, message: str) -> GridError:
    """The exception class that matches an HTTP error status."""
    if status in (401, 403):
        return AuthError(message, code, status)
    if status == 404:
        return NotFoundError(message, code, status)
    if status == 409:
        return ReportRefused(message, code, status)
    return GridError(message, code, status)
