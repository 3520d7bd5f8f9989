"""Cached JSON answers of read endpoints, keyed by path and query.

They live for ``HEADWATER_CACHE_TTL_SECONDS``; in Redis, the process that changes the
data behind a namespace drops them at once (:func:`headwater.cache.invalidate`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import msgspec
from litestar import Request, Response

from api.kv import KeyValueStore
from api.metrics import CACHE_REQUESTS

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


_counters: dict[tuple[str, str], Any] = {}


def cache_counter(namespace: str, result: str) -> Any:
    """The hit or miss counter of ``namespace`` (the cache hit rate in ``/metrics``)."""
    key = (namespace, result)
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = CACHE_REQUESTS.labels(namespace, result)
    return counter


def cache_key(request: Request[Any, Any, Any]) -> str:
    """Path plus the raw query parameters in a canonical order (``?b=1&a=2`` = ``?a=2&b=1``)."""
    query: bytes = request.scope.get("query_string", b"")
    parts = sorted(part for part in query.split(b"&") if part)
    return f"{request.scope['path']}?{b'&'.join(parts).decode('latin-1')}"


async def cached_json(
    request: Request[Any, Any, Any],
    namespace: str,
    produce: Callable[[], Awaitable[T]],
    key: str | None = None,
) -> Response[T]:
    """The cached answer for this request (or for ``key``), or ``produce()``'s, encoded
    once and kept.

    The ``X-Cache`` header says which (``hit`` or ``miss``).
    """
    kv: KeyValueStore = request.app.state.kv
    ttl: int = request.app.state.settings.cache_ttl_seconds
    key = key if key is not None else cache_key(request)
    body = await kv.cache_get(namespace, key) if ttl else None
    if body is not None:
        cache_counter(namespace, "hit").inc()
        state = "hit"
    else:
        cache_counter(namespace, "miss").inc()
        body = _encoder.encode(await produce())
        state = "miss"
        if ttl:
            await kv.cache_set(namespace, key, body, ttl)
    response = Response(content=body, media_type="application/json", headers={"x-cache": state})
    return cast("Response[T]", response)
