"""API-level errors and the one place that maps every error to an HTTP status and body.

Services raise :class:`headwater.errors.HeadwaterError` subclasses (from any package);
:data:`STATUS_BY_ERROR` decides the status code and the handlers below turn them
into one JSON shape::

    {"error": {"code": "not_found", "message": "...", "details": ..., "requestId": "..."}}

Anything unexpected, including a Headwater error no one mapped, becomes a 500
with a generic message and the request id: the real exception is logged with
that id, never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from api.requests import request_id
from api.schemas import ErrorBody, ErrorResponse
from catalog.errors import CatalogError
from catalog.graph import ColumnNotFound, DatasetNotFound
from catalog.queries.errors import WarehouseBusy, WarehouseUnavailable
from headwater.errors import HeadwaterError
from headwater.notify.channels import ChannelInvalid
from headwater.notify.dispatch import ChannelNotFound
from ingest.errors import SourceNotFound, SpecError
from ingest.store import DestinationInUse, ReadOnlySource, SourceExists, UnreadableSource
from ingest.targets import UnsafeTarget
from orchestration.client import DagsterUnavailable, RunNotFound
from orchestration.errors import JobNotFound
from orchestration.jobs import JobInvalid

logger = logging.getLogger("headwater.api")

GENERIC_SERVER_ERROR = "Internal server error"
STORE_RETRY_AFTER_SECONDS = 5


class InvalidInput(HeadwaterError):
    """The request is well-formed but breaks a business rule (bad email, short password…)."""


class AuthenticationFailed(HeadwaterError):
    """Missing, wrong or expired credentials."""


class PermissionDenied(HeadwaterError):
    """The caller is authenticated but may not do this."""


class NotFound(HeadwaterError):
    """The object does not exist, or the caller may not know that it does."""


class Conflict(HeadwaterError):
    """The change clashes with existing state (e.g. a duplicate email)."""


class TooManyRequests(HeadwaterError):
    """The caller went over a rate limit; ``retry_after`` seconds until it may try again."""

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = max(1, retry_after)


class ServiceUnavailable(HeadwaterError):
    """A backing service is busy or down; the client may retry later."""

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


# The single mapping from error class to HTTP status; the most specific class wins.
# A Headwater error of a class not listed here is a bug: it answers 500.
STATUS_BY_ERROR: dict[type[HeadwaterError], int] = {
    InvalidInput: 400,
    SpecError: 400,
    CatalogError: 400,
    DatasetNotFound: 404,
    ColumnNotFound: 404,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    NotFound: 404,
    SourceNotFound: 404,
    UnsafeTarget: 400,
    JobInvalid: 400,
    ChannelInvalid: 400,
    ChannelNotFound: 404,
    JobNotFound: 404,
    RunNotFound: 404,
    DagsterUnavailable: 503,
    Conflict: 409,
    SourceExists: 409,
    ReadOnlySource: 409,
    DestinationInUse: 409,
    TooManyRequests: 429,
    ServiceUnavailable: 503,
    UnreadableSource: 503,
    WarehouseBusy: 503,
    WarehouseUnavailable: 503,
}
UNMAPPED_STATUS = 500

CODE_BY_STATUS = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "headers_too_large",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def status_for(error: HeadwaterError) -> int:
    """The HTTP status for ``error``: its nearest class in :data:`STATUS_BY_ERROR`."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return UNMAPPED_STATUS


def code_for(status: int) -> str:
    return CODE_BY_STATUS.get(status, "invalid_request" if status < 500 else "internal_error")


def request_id_of(request: Request[Any, Any, Any]) -> str:
    return request_id(request.scope)


def error_response(
    request: Request[Any, Any, Any],
    status_code: int,
    message: str,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorResponse]:
    body = ErrorBody(
        code=code_for(status_code),
        message=message,
        details=details,
        request_id=request_id_of(request),
    )
    return Response(content=ErrorResponse(error=body), status_code=status_code, headers=headers)


def _server_error(request: Request[Any, Any, Any], exc: BaseException) -> Response[ErrorResponse]:
    logger.error(
        "unhandled error on %s %s (request %s)",
        request.method,
        request.scope.get("path", "?"),
        request_id_of(request),
        exc_info=exc,
    )
    return error_response(request, 500, GENERIC_SERVER_ERROR)


def handle_headwater_error(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorResponse]:
    """Turn a :class:`HeadwaterError` into its mapped status and the JSON error body."""
    if not isinstance(exc, HeadwaterError):  # pragma: no cover - registered for HeadwaterError
        return _server_error(request, exc)
    status = status_for(exc)
    if status >= 500 and status != 503:  # a mapped 503: a backing service is down or busy
        return _server_error(request, exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    where = {"line": getattr(exc, "line", None), "column": getattr(exc, "column", None)}
    found = {"hint": exc.hint, **where}
    details = {key: value for key, value in found.items() if value is not None} or None
    return error_response(request, status, exc.message, details=details, headers=headers or None)


def _wire_name(request: Request[Any, Any, Any], name: str) -> str:
    """The name a client used for a handler argument (``actorId`` for ``actor_id``)."""
    handler = request.scope.get("route_handler")
    parameters = getattr(getattr(handler, "parsed_fn_signature", None), "parameters", {})
    definition = getattr(parameters.get(name), "kwarg_definition", None)
    for attribute in ("query", "header", "cookie"):
        alias = getattr(definition, attribute, None)
        if isinstance(alias, str):
            return alias
    return name


def _field_errors(request: Request[Any, Any, Any], extra: Any) -> Any:
    if not isinstance(extra, list):
        return extra or None
    errors = []
    for item in extra:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            item = {**item, "key": _wire_name(request, item["key"])}
        errors.append(item)
    return errors


def handle_http_exception(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorResponse]:
    """Litestar's own HTTP errors (validation, 404, 405, 413…)."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException
        return _server_error(request, exc)
    if exc.status_code >= 500:
        return _server_error(request, exc)
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "content-type"}
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    message = exc.detail
    if exc.status_code == 400 and message.startswith("Validation failed for"):
        message = "Request validation failed"
    return error_response(
        request,
        exc.status_code,
        message,
        details=_field_errors(request, exc.extra),
        headers=headers or None,
    )


def handle_store_unavailable(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorResponse]:
    """The metadata store refused the connection or is not migrated: a 503, details logged."""
    logger.error(
        "metadata store unavailable on %s %s (request %s): %s",
        request.method,
        request.scope.get("path", "?"),
        request_id_of(request),
        str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__,
    )
    return error_response(
        request,
        503,
        "The metadata store is unavailable; try again shortly",
        details={"hint": "an operator can check it with GET /health/ready"},
        headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
    )


def handle_unexpected_error(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorResponse]:
    """Anything else: log it, answer 500 with a message that reveals nothing."""
    return _server_error(request, exc)


EXCEPTION_HANDLERS = {
    HeadwaterError: handle_headwater_error,
    HTTPException: handle_http_exception,
    OperationalError: handle_store_unavailable,
    SQLAlchemyTimeoutError: handle_store_unavailable,
    Exception: handle_unexpected_error,
}
