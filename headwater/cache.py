"""Names of the API's cached responses in Redis, and invalidation from any process.

The API caches read responses per namespace (``catalog``, ``users``…). A
process that changes the data behind a namespace without going through the API
(``headwater catalog refresh``, the Dagster sensor) calls :func:`invalidate`.
Without Redis the cache lives inside the API process and is bounded by its
time to live (``HEADWATER_CACHE_TTL_SECONDS``) instead.
"""

from __future__ import annotations

import logging

PREFIX = "headwater:cache:"
TIMEOUT_SECONDS = 0.5

logger = logging.getLogger("headwater.cache")


def entry_key(namespace: str, key: str) -> str:
    return f"{PREFIX}{namespace}:{key}"


def index_key(namespace: str) -> str:
    """The Redis set of every entry key cached in ``namespace``."""
    return f"{PREFIX}{namespace}#keys"


def invalidate(redis_url: str | None, namespace: str) -> None:
    """Drop every cached response of ``namespace``; best effort (the entries expire anyway)."""
    if not redis_url:
        return
    import redis

    client = redis.Redis.from_url(
        redis_url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
    )
    try:
        index = index_key(namespace)
        keys = client.smembers(index)
        pipe = client.pipeline(transaction=False)
        if keys:
            pipe.delete(*keys)
        pipe.delete(index)
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning("could not invalidate the %s cache: %s", namespace, type(exc).__name__)
    finally:
        client.close()
