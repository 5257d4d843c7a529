"""Mapping fedgrid errors and HTTP errors to JSON `{error, message}` answers."""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from fedgrid.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    DataLoss,
    FedgridError,
    InvalidArgument,
    NotFound,
    PlanError,
    SchemaError,
    StorageError,
    Unavailable,
)
from fedgrid.gateway.errors import (
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RequestTimeout,
    Unauthenticated,
    UnsupportedMediaType,
)
from fedgrid.gateway.logsafe import loggable
from fedgrid_gateway.bodies import close_after, has_body

logger = logging.getLogger(__name__)

# Most specific first: the first matching class decides the answer.
STATUS_BY_ERROR: list[tuple[type[FedgridError], int, str]] = [
    (RateLimited, 429, "rate_limited"),
    (Unauthenticated, 401, "unauthenticated"),
    (PermissionDenied, 403, "permission_denied"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (RequestTimeout, 408, "request_timeout"),
    (NotFound, 404, "not_found"),
    (AlreadyExists, 409, "already_exists"),
    (Conflict, 409, "conflict"),
    (InvalidArgument, 400, "invalid_argument"),
    (ConfigError, 400, "invalid_config"),
    (PlanError, 400, "invalid_plan"),
    (Unavailable, 503, "unavailable"),
    (StorageError, 503, "unavailable"),
    (SchemaError, 503, "unavailable"),
    (DataLoss, 502, "data_loss"),
]


def error_response(status: int, code: str, message: str) -> Response:
    """The JSON body every error answer has.

    A body still on its way is not read: the connection closes after the
    answer, so a refused upload never holds a thread for its whole length.
    """
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    if has_body():
        close_after(response)
    return response


def status_for(error: FedgridError) -> tuple[int, str]:
    """The HTTP status and error code of a domain error."""
    for kind, status, code in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status, code
    return 502, "backend_error"


def _domain_error(error: FedgridError) -> Response:
    status, code = status_for(error)
    if status >= 500:
        logger.warning(
            "[Gateway.Error] route=%s status=%s error=%s message=%s",
            loggable(request.path),
            status,
            type(error).__name__,
            loggable(error),
        )
    else:
        logger.info(
            "[Gateway.Refused] route=%s status=%s error=%s",
            loggable(request.path),
            status,
            code,
        )
    response = error_response(status, code, str(error))
    if isinstance(error, RateLimited):
        response.headers["Retry-After"] = str(math.ceil(error.retry_after))
    return response


def _http_error(error: HTTPException) -> Response:
    code = (error.name or "error").lower().replace(" ", "_")
    response = error_response(error.code or 500, code, error.description or code)
    if error.code == 405 and error.response is None:
        allowed = getattr(error, "valid_methods", None)
        if allowed:
            response.headers["Allow"] = ", ".join(allowed)
    return response


def _unexpected(error: Exception) -> Response:
    logger.exception(
        "[Gateway.Error] route=%s unexpected error", loggable(request.path)
    )
    return error_response(500, "internal", "the gateway failed; this is a bug")


def register_error_handlers(app: Flask) -> None:
    """Install the handlers on app."""
    app.register_error_handler(FedgridError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
