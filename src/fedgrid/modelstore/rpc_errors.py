"""Mapping between fedgrid's exception tree and gRPC status codes."""

from __future__ import annotations

import grpc

from fedgrid.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    DataLoss,
    FedgridError,
    InvalidArgument,
    NotFound,
    SchemaError,
    StorageError,
    Unavailable,
)

# Most specific first: the first matching class decides the status.
_STATUS_BY_ERROR: list[tuple[type[FedgridError], grpc.StatusCode]] = [
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (DataLoss, grpc.StatusCode.DATA_LOSS),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (SchemaError, grpc.StatusCode.FAILED_PRECONDITION),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
]

_ERROR_BY_STATUS: dict[grpc.StatusCode, type[FedgridError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.FAILED_PRECONDITION: Conflict,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unavailable,
}


def status_for(error: FedgridError) -> grpc.StatusCode:
    """The status code a servicer answers with for a domain error."""
    for kind, code in _STATUS_BY_ERROR:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def error_from_rpc(error: grpc.RpcError, what: str) -> FedgridError:
    """The domain error for a failed call, keeping the server's message."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else None
    message = details or f"{what} failed"
    kind = _ERROR_BY_STATUS.get(code) if code is not None else None
    if kind is None:
        name = code.name if code is not None else "UNKNOWN"
        return FedgridError(f"{what}: {name}: {message}")
    return kind(message)
