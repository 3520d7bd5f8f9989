"""What every response carries: a request id and security headers; and who is asking.

Applied with Litestar's ``before_send`` hook, which sees every response the app
sends, including the router's own 404 and 405 and the error handlers' answers.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from api.audit.services import Actor
from api.auth.schemas import CurrentUser
from api.auth.services import Client
from api.requests import request_id

REQUEST_ID_HEADER = "x-request-id"

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


async def add_response_headers(message: Message, scope: Scope) -> None:
    """``before_send`` hook: request id, security headers, no caching of API answers."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    headers[REQUEST_ID_HEADER] = request_id(scope)
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    path: str = scope.get("path", "")
    if path.startswith("/api/") and "cache-control" not in headers:
        # Answers carry tokens or private data: neither browsers nor proxies keep them.
        headers["cache-control"] = "no-store"


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
