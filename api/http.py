"""What every response carries: a request id and security headers; and who is asking.

Applied with Litestar's ``before_send`` hook, which sees every response the app
sends, including the router's own 404 and 405 and the error handlers' answers.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.types import Message, Scope

from api.audit.services import Actor
from api.auth.schemas import CurrentUser
from api.auth.services import Client
from api.requests import request_id

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    # The Swagger page is the only HTML: its scripts and styles are served from here.
    "content-security-policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'none'"
    ),
}


_FIXED_HEADERS = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
_NO_STORE = (b"cache-control", b"no-store")


def allowed_methods(app: Any) -> dict[str, bytes]:
    """``Allow`` header value per route template, from the app's complete route table."""
    table: dict[str, bytes] = {}
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if methods:
            value = ", ".join(sorted(methods)).encode()
            table[route.path] = value
            table[getattr(route, "path_format", route.path)] = value
    return table


def _with_allowed_methods(
    headers: list[tuple[bytes, bytes]], scope: Scope
) -> list[tuple[bytes, bytes]]:
    """Litestar 2 answers OPTIONS with the methods of one handler only; list the route's."""
    table = scope["app"].state.get("allowed_methods") or {}
    allowed = table.get(scope.get("path_template", ""))
    if allowed is None:
        return headers
    return [(k, v) for k, v in headers if k != b"allow"] + [(b"allow", allowed)]


async def add_response_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: request id, security headers, no caching of API answers."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers") or ())
    headers.append((b"x-request-id", request_id(scope).encode()))
    headers.extend(_FIXED_HEADERS)
    if scope.get("method") == "OPTIONS":
        headers = _with_allowed_methods(headers, scope)
    path: str = scope.get("path", "")
    if path.startswith("/api/") and not any(name == b"cache-control" for name, _ in headers):
        # Answers carry tokens or private data: neither browsers nor proxies keep them.
        headers.append(_NO_STORE)
    message["headers"] = headers


def client_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Client:
    """The caller's address (as the server saw it; see README for proxies), agent and id."""
    address = connection.client.host if connection.client else None
    return Client(
        address=address,
        user_agent=connection.headers.get("user-agent"),
        request_id=request_id(connection.scope),
    )


def actor_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    """The signed-in user making a change, for the audit log."""
    user = connection.scope.get("user")
    client = client_of(connection)
    if isinstance(user, CurrentUser):
        return Actor(user.id, user.email, client.address, client.request_id)
    return Actor(None, None, client.address, client.request_id)
