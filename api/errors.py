"""API-level errors and the one place that maps every Headwater error to an HTTP status.

Services raise :class:`headwater.errors.HeadwaterError` subclasses (from any package);
:func:`status_for` decides the status code and the exception handlers below turn
them into a uniform JSON body. Anything unexpected becomes a 500 with a generic
message: the real exception is logged, never sent.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.schemas import ErrorResponse
from headwater.errors import ConfigError, HeadwaterError

logger = logging.getLogger("headwater.api")

GENERIC_SERVER_ERROR = "Internal server error"


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


class ServiceUnavailable(HeadwaterError):
    """A backing service is busy or down; the client may retry later."""

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


# The single mapping from error class to HTTP status; the most specific class wins.
# Errors of other packages (ingest, catalog, orchestration) that are not listed are
# user-actionable problems with the request, hence the 400 default.
STATUS_BY_ERROR: dict[type[HeadwaterError], int] = {
    InvalidInput: 400,
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    NotFound: 404,
    Conflict: 409,
    ConfigError: 500,
    ServiceUnavailable: 503,
}
DEFAULT_ERROR_STATUS = 400


def status_for(error: HeadwaterError) -> int:
    """The HTTP status for ``error``: its nearest class in :data:`STATUS_BY_ERROR`."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return DEFAULT_ERROR_STATUS


def _error_response(
    status_code: int,
    detail: str,
    *,
    hint: str | None = None,
    extra: Any = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorResponse]:
    return Response(
        content=ErrorResponse(status_code=status_code, detail=detail, hint=hint, extra=extra),
        status_code=status_code,
        headers=headers,
    )


def _server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(HTTP_500_INTERNAL_SERVER_ERROR, GENERIC_SERVER_ERROR)


def handle_headwater_error(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorResponse]:
    """Turn a :class:`HeadwaterError` into its mapped status and a JSON body."""
    if not isinstance(exc, HeadwaterError):  # pragma: no cover - registered for HeadwaterError
        return _server_error(request, exc)
    status = status_for(exc)
    if status >= HTTP_500_INTERNAL_SERVER_ERROR and not isinstance(exc, ServiceUnavailable):
        return _server_error(request, exc)
    headers: dict[str, str] = {}
    if isinstance(exc, AuthenticationFailed):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, ServiceUnavailable) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return _error_response(status, exc.message, hint=exc.hint, headers=headers or None)


def handle_http_exception(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorResponse]:
    """Litestar's own HTTP errors (validation, 401 from the auth middleware, 404, 405…)."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for HTTPException
        return _server_error(request, exc)
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return _server_error(request, exc)
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return _error_response(exc.status_code, exc.detail, extra=exc.extra, headers=headers or None)


def handle_unexpected_error(
    request: Request[Any, Any, Any], exc: Exception
) -> Response[ErrorResponse]:
    """Anything else: log it, answer 500 with a message that reveals nothing."""
    return _server_error(request, exc)


EXCEPTION_HANDLERS = {
    HeadwaterError: handle_headwater_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected_error,
}
