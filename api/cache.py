"""Cached JSON answers of read endpoints, keyed by path and query, dropped on writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response

from api.kv import KeyValueStore
from api.metrics import CACHE_REQUESTS

T = TypeVar("T")
_encoder = msgspec.json.Encoder()


def cache_key(request: Request[Any, Any, Any]) -> str:
    """Path plus the query parameters in a canonical order (``?b=1&a=2`` = ``?a=2&b=1``)."""
    return f"{request.url.path}?{urlencode(sorted(request.query_params.multi_items()))}"


async def cached_json(
    request: Request[Any, Any, Any],
    namespace: str,
    produce: Callable[[], Awaitable[T]],
) -> Response[T]:
    """The cached answer for this request, or ``produce()``'s, encoded once and kept.

    The ``X-Cache`` header says which (``hit`` or ``miss``).
    """
    kv: KeyValueStore = request.app.state.kv
    ttl: int = request.app.state.settings.cache_ttl_seconds
    key = cache_key(request)
    body = await kv.cache_get(namespace, key) if ttl else None
    if body is not None:
        CACHE_REQUESTS.labels(namespace, "hit").inc()
        state = "hit"
    else:
        CACHE_REQUESTS.labels(namespace, "miss").inc()
        body = _encoder.encode(await produce())
        state = "miss"
        if ttl:
            await kv.cache_set(namespace, key, body, ttl)
    response = Response(content=body, media_type="application/json", headers={"x-cache": state})
    return cast("Response[T]", response)


async def invalidate(request: Request[Any, Any, Any], *namespaces: str) -> None:
    """Drop the cached answers of ``namespaces`` after a write."""
    kv: KeyValueStore = request.app.state.kv
    for namespace in namespaces:
        await kv.cache_invalidate(namespace)
