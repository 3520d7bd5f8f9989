"""Request limits enforced before any handler or parser sees the request.

More than :data:`MAX_HEADERS` headers or more than :data:`MAX_HEADER_BYTES` of
them answer 431. Bodies larger than ``HEADWATER_MAX_BODY_BYTES`` answer 413; JSON nested deeper
than :data:`MAX_JSON_DEPTH` answers 400 (a deep document would otherwise
exhaust the parser's recursion: a 500). Litestar enforces the size again when
it reads the body; this middleware has to buffer it to measure the depth.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from litestar.types.asgi_types import (
    HTTPRequestEvent,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
)

from api.errors import code_for
from api.requests import request_id
from api.schemas import ErrorBody, ErrorResponse

MAX_JSON_DEPTH = 32
MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body`` (brackets inside strings ignored)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


async def _refuse(
    scope: Scope, send: Send, status: int, message: str, *, bearer: bool = False
) -> None:
    body = msgspec.json.encode(
        ErrorResponse(
            error=ErrorBody(code=code_for(status), message=message, request_id=request_id(scope))
        )
    )
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *([(b"www-authenticate", b"Bearer")] if bearer else []),
        ],
    }
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(start)
    await send(end)


def request_limits(max_bytes: int) -> Any:
    """Middleware factory: header limits on every request, size and depth limits on bodies."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            count = size = 0
            for name, value in scope["headers"]:
                count += 1
                size += len(name) + len(value)
            if count > MAX_HEADERS or size > MAX_HEADER_BYTES:
                sizes = {name: len(name) + len(value) for name, value in scope["headers"]}
                if sizes.get(b"authorization", 0) > MAX_HEADER_BYTES // 2:
                    # An oversized token is a bad credential, like any other bad token.
                    await _refuse(scope, send, 401, "Invalid or expired token", bearer=True)
                else:
                    await _refuse(scope, send, 431, "Request headers too many or too large")
                return
            if b"%00" in scope.get("query_string", b"") or b"%00" in scope.get("raw_path", b""):
                await _refuse(scope, send, 400, "NUL characters are not allowed in the URL")
                return
            if scope["method"] not in ("POST", "PUT", "PATCH"):
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    await app(scope, receive, send)  # disconnected: let the app see it
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > max_bytes:
                    await _refuse(scope, send, 413, f"Request body larger than {max_bytes} bytes")
                    return
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            if json_depth(body) > MAX_JSON_DEPTH:
                await _refuse(scope, send, 400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
                return
            replayed = False

            async def replay() -> ReceiveMessage:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                request: HTTPRequestEvent = {
                    "type": "http.request",
                    "body": body,
                    "more_body": False,
                }
                return request

            await app(scope, replay, send)

        return limited

    return middleware
