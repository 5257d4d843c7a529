"""Errors the gateway adds to fedgrid's tree: auth, permission, size, rate."""

from __future__ import annotations

from fedgrid.errors import FedgridError, InvalidArgument


class Unauthenticated(FedgridError):
    """A token is missing, malformed, expired or refused."""


class PermissionDenied(FedgridError):
    """The caller is known but may not touch this job, cycle or request key."""


class PayloadTooLarge(InvalidArgument):
    """A body is larger than the limit the gateway enforces."""


class RateLimited(FedgridError):
    """Too many calls from one worker or address; retry after some seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UnsupportedMediaType(InvalidArgument):
    """A body is sent with a Content-Type the route does not take."""


class RequestTimeout(FedgridError):
    """A body arrived too slowly; the gateway stopped waiting for it."""
