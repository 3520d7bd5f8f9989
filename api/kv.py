"""Counters and cached bytes: in Redis when configured, in this process otherwise.

Redis is used when ``HEADWATER_REDIS_URL`` is set and answers within a fraction
of a second. When it stops answering, every operation falls back to the
in-process store at once and the API keeps serving (uncached across replicas,
limits per process); a background probe notices when Redis is back. Nothing a
user cannot lose lives here: the metadata store remains the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from headwater.cache import entry_key, index_key

logger = logging.getLogger("headwater.api.kv")

T = TypeVar("T")
RedisState = Literal["ok", "down", "not configured"]
REDIS_TIMEOUT_SECONDS = 0.25
RETRY_REDIS_AFTER_SECONDS = 5.0
PROBE_INTERVAL_SECONDS = 5.0
MEMORY_MAX_ENTRIES = 20_000
MEMORY_MAX_BYTES = 64 * 1024 * 1024


class MemoryStore:
    """A bounded, expiring store for one process (least recently used entries go first)."""

    def __init__(
        self, max_entries: int = MEMORY_MAX_ENTRIES, max_bytes: int = MEMORY_MAX_BYTES
    ) -> None:
        self._values: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._counters: dict[str, tuple[float, int]] = {}
        self._bytes = 0
        self._max_entries = max_entries
        self._max_bytes = max_bytes

    def get(self, key: str, now: float) -> bytes | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[0] <= now:
            self._drop(key)
            return None
        self._values.move_to_end(key)
        return item[1]

    def set(self, key: str, value: bytes, ttl: float, now: float) -> None:
        if len(value) > self._max_bytes // 16:
            return  # one huge answer must not evict everything else
        self._drop(key)
        self._values[key] = (now + ttl, value)
        self._bytes += len(value)
        while len(self._values) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._values)))

    def _drop(self, key: str) -> None:
        item = self._values.pop(key, None)
        if item is not None:
            self._bytes -= len(item[1])

    def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        """Count one event in the fixed window of ``key``: (count so far, seconds left)."""
        expires, count = self._counters.get(key, (0.0, 0))
        if expires <= now:
            expires, count = now + window, 0
            if len(self._counters) > MEMORY_MAX_ENTRIES:
                self._counters = {k: v for k, v in self._counters.items() if v[0] > now}
        count += 1
        self._counters[key] = (expires, count)
        return count, expires - now

    def reset(self, key: str) -> None:
        self._counters.pop(key, None)


class KeyValueStore:
    """Cache entries and rate-limit counters, in Redis with an in-process fallback."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self.memory = MemoryStore()
        self._redis: aioredis.Redis | None = None
        self._down_until = 0.0
        self._probe: asyncio.Task[None] | None = None

    @property
    def redis_state(self) -> RedisState:
        if not self.redis_url:
            return "not configured"
        return "down" if self._down_until > time.monotonic() else "ok"

    async def start(self) -> None:
        if self.redis_url:
            self._redis = aioredis.Redis.from_url(
                self.redis_url,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                health_check_interval=0,
            )
            await self._call(lambda r: r.ping(), lambda: True)
            self._probe = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.aclose()

    async def _watch(self) -> None:
        """Ping Redis now and then, so that health knows its state without a request."""
        while True:
            await asyncio.sleep(PROBE_INTERVAL_SECONDS)
            if self._redis is not None:
                try:
                    await self._redis.ping()
                    if self._down_until:
                        logger.warning("Redis answers again; using it")
                    self._down_until = 0.0
                except (RedisError, OSError):
                    self._mark_down()

    def _mark_down(self) -> None:
        if self._down_until <= time.monotonic():
            logger.warning("Redis does not answer; serving from this process for now")
        self._down_until = time.monotonic() + RETRY_REDIS_AFTER_SECONDS

    async def _call(
        self,
        remote: Callable[[aioredis.Redis], Awaitable[T]],
        local: Callable[[], T],
    ) -> T:
        if self._redis is None or self._down_until > time.monotonic():
            return local()
        try:
            return await remote(self._redis)
        except (TimeoutError, RedisError, OSError):
            self._mark_down()
            return local()

    async def ping(self) -> bool:
        """Whether Redis answers now (and remember the answer)."""
        if self._redis is None:
            return False
        try:
            await self._redis.ping()
        except (TimeoutError, RedisError, OSError):
            self._mark_down()
            return False
        self._down_until = 0.0
        return True

    # -- cached responses --------------------------------------------------------------

    async def cache_get(self, namespace: str, key: str) -> bytes | None:
        full = entry_key(namespace, key)

        async def remote(r: aioredis.Redis) -> bytes | None:
            value = await r.get(full)
            return value if isinstance(value, bytes) else None

        return await self._call(remote, lambda: self.memory.get(full, time.monotonic()))

    async def cache_set(self, namespace: str, key: str, value: bytes, ttl: int) -> None:
        full, index = entry_key(namespace, key), index_key(namespace)

        async def remote(r: aioredis.Redis) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.set(full, value, ex=ttl)
            pipe.sadd(index, full)
            pipe.expire(index, ttl * 4)
            await pipe.execute()

        def local() -> None:
            self.memory.set(full, value, ttl, time.monotonic())

        await self._call(remote, local)

    # -- rate-limit counters -----------------------------------------------------------

    async def hit(self, key: str, window: int) -> tuple[int, float]:
        """Count one event for ``key`` in its fixed window: (count, seconds left in window)."""
        full = f"headwater:rate:{key}"

        async def remote(r: aioredis.Redis) -> tuple[int, float]:
            pipe = r.pipeline(transaction=False)
            pipe.incr(full)
            pipe.expire(full, window, nx=True)
            pipe.ttl(full)
            count, _, ttl = await pipe.execute()
            return int(count), float(ttl if ttl and ttl > 0 else window)

        return await self._call(remote, lambda: self.memory.hit(full, window, time.monotonic()))

    async def reset(self, key: str) -> None:
        full = f"headwater:rate:{key}"

        async def remote(r: aioredis.Redis) -> None:
            await r.delete(full)

        self.memory.reset(full)
        await self._call(remote, lambda: None)
