"""One process's hub of live events: from Redis and the metadata store to its clients.

Events arrive three ways: published by this process (:meth:`EventHub.announce`),
heard on the Redis channel (published by another process), and read from the
``events`` table, which every publisher writes first. The table is read every
quarter second without Redis, every few seconds with it (to catch what an announce
lost while Redis was down). Each event is delivered once per process whatever way
it came: the hub remembers the ids it delivered.

Each connected client is a :class:`Subscriber` that sees only what its user may see:
a job's events go to its owner, to everyone when the job is shared, and to admins;
a notification to its recipient.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from api.auth.schemas import CurrentUser
from api.db import Database
from headwater import events

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("headwater.api.events")

RECEIVED = Counter(
    "headwater_events_received_total",
    "Live events this API process received, by the way they came (local: published "
    "here; redis: from another process over Redis; store: read from the metadata store).",
    ["via"],
)
CLIENTS = Gauge("headwater_live_clients", "Clients connected for live events.", ["transport"])

POLL_SECONDS = 0.25
"""How often the store is read for new events when Redis is not carrying them."""
POLL_WITH_REDIS_SECONDS = 3.0
GAP_SECONDS = 30.0
"""How long an id skipped by the table's reads is looked for again: on PostgreSQL a
lower id can commit after a higher one (and an id can be skipped for good)."""
REMEMBERED = 20_000
"""Delivered ids remembered, to deliver each event once."""
REPLAY_LIMIT = 1000
"""Events read from the store at a time."""
REPLAY_MAX = 20_000
"""Events one resume reads at most; the client is told to resume again from there."""
QUEUE_SIZE = 2000
"""Events waiting for one slow client before it is disconnected (it resumes by id)."""
REDIS_RETRY_SECONDS = 2.0


def may_see(user: CurrentUser, message: dict[str, Any]) -> bool:
    """Whether ``user`` may receive ``message``."""
    if message["kind"] == "notification":
        return bool(message.get("userId") == user.id)
    if user.role == "admin":
        return True
    if message.get("jobId") is not None:
        return bool(message.get("ownerId") == user.id or message.get("shared"))
    target = message.get("userId")
    return target is None or target == user.id


def client_text(message: dict[str, Any]) -> str:
    """The message as a WebSocket client gets it (serialised once, shared by all)."""
    text = message.get("_text")
    if text is None:
        text = json.dumps(
            {"type": message["kind"], "id": message["id"], "data": message["data"]},
            separators=(",", ":"),
            default=str,
        )
        message["_text"] = text
    return str(text)


@dataclass(frozen=True)
class Replay:
    """What a client missed: ``messages`` (those it may see) up to id ``last``;
    ``complete`` unless there was more than one replay holds (resume again from ``last``)."""

    messages: list[dict[str, Any]]
    last: int
    complete: bool


def _read(
    session: Session, *, after: int, gaps: tuple[int, ...], before: int | None = None
) -> list[dict[str, Any]]:
    return events.since(session, after, REPLAY_LIMIT, also=gaps, before=before)


class Subscriber:
    """One client: its user, and the events waiting to be written to it."""

    def __init__(self, user: CurrentUser, header: str, close: Callable[[], Awaitable[None]]):
        self.user = user
        self.header = header
        """The ``Authorization`` value it connected with, checked again now and then."""
        self.close = close
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def offer(self, message: dict[str, Any]) -> None:
        if self.overflowed or not may_see(self.user, message):
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Too slow to keep up: drop what waits and have the writer hang up at once
            # (the client resumes from the last id it got).
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventHub:
    """Collects this process's live events and hands each to the clients that may see it."""

    def __init__(self, database: Database, redis_url: str | None) -> None:
        self.database = database
        self.redis_url = redis_url
        self.channel = events.channel(database.url)
        self.subscribers: set[Subscriber] = set()
        self.listeners: list[Callable[[dict[str, Any]], Awaitable[None]]] = []
        """Called with every event (the Socket.IO server routes them to its rooms)."""
        self.last_id = 0
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self._cursor = 0
        self._gaps: dict[int, float] = {}
        self._reading = asyncio.Lock()
        self._started = False
        self._store_down = False
        self._redis: Any = None
        self._redis_live = False
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        """Start listening (the API starts even while the store is down: the hub picks
        up where the store stands once it answers)."""
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._poll()))
        if self.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.Redis.from_url(
                self.redis_url, socket_connect_timeout=events.REDIS_TIMEOUT_SECONDS
            )
            self._tasks.append(loop.create_task(self._listen()))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.add(subscriber)
        CLIENTS.labels("websocket").inc()

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            CLIENTS.labels("websocket").dec()

    async def announce(self, messages: Sequence[dict[str, Any] | None]) -> None:
        """Events this process just recorded (and committed): to its clients at once, and
        to the other processes through Redis."""
        ready = [m for m in messages if m is not None]
        if not ready:
            return
        if self._redis is not None:  # the other processes first: this one is next door
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for message in ready:
                        pipe.publish(self.channel, json.dumps(message, default=str))
                    await asyncio.wait_for(pipe.execute(), events.REDIS_TIMEOUT_SECONDS * 4)
            except Exception as exc:
                log.warning("events not announced on Redis (%s)", type(exc).__name__)
        for message in ready:
            await self._in_order(message, "local")

    async def _in_order(self, message: dict[str, Any], via: str) -> None:
        """Deliver ``message``, after what the store holds before it when its id skips
        some: published by a process without Redis (a run's own steps) or lost on the way,
        they come first, so clients see a run's moves in order."""
        event_id = int(message.get("id", 0))
        if event_id > self.last_id + 1:
            await self._read_store(before=event_id)
        await self.deliver(message, via)

    async def deliver(self, message: dict[str, Any], via: str) -> None:
        """Hand ``message`` to every subscriber that may see it, once per process."""
        event_id = int(message["id"])
        if event_id in self._seen:
            return
        RECEIVED.labels(via).inc()
        self._seen.add(event_id)
        self._order.append(event_id)
        if len(self._order) > REMEMBERED:
            self._seen.discard(self._order.popleft())
        self.last_id = max(self.last_id, event_id)
        for subscriber in tuple(self.subscribers):
            subscriber.offer(message)
        for listener in self.listeners:
            try:
                await listener(message)
            except Exception:
                log.exception("an event listener failed")

    async def replay(self, user: CurrentUser, after: int) -> Replay:
        """The recorded events after id ``after`` that ``user`` may see, oldest first, read
        page by page up to :data:`REPLAY_MAX` events."""
        found: list[dict[str, Any]] = []
        scanned, last = 0, after
        while scanned < REPLAY_MAX:
            page = await self.database.run(partial(_read, after=last, gaps=()))
            found += [message for message in page if may_see(user, message)]
            scanned += len(page)
            if page:
                last = int(page[-1]["id"])
            if len(page) < REPLAY_LIMIT:
                return Replay(found, last, complete=True)
        return Replay(found, last, complete=False)

    async def _poll(self) -> None:
        while not self._stopping:
            if not self._started:
                await self._start_from_store()
            else:
                await self._read_store()
            await asyncio.sleep(POLL_WITH_REDIS_SECONDS if self._redis_live else POLL_SECONDS)

    async def _start_from_store(self) -> None:
        """Begin after the newest event stored now (older ones are for replays only)."""
        if not self.database.present():
            return
        try:
            newest = await self.database.run(events.latest_id)
        except Exception as exc:
            if not self._store_down:
                log.warning("events wait for the metadata store (%s)", type(exc).__name__)
            self._store_down = True
            return
        self._store_down = False
        self._cursor = max(self._cursor, newest)
        self.last_id = max(self.last_id, newest)
        self._started = True

    async def _read_store(self, before: int | None = None) -> None:
        """Deliver, in id order, what the store holds that this process has not seen
        (below id ``before`` when given)."""
        if not self._started:
            return
        async with self._reading:
            after, gaps = self._cursor, tuple(self._gaps)
            try:
                found = await self.database.run(
                    partial(_read, after=after, gaps=gaps, before=before)
                )
            except Exception as exc:
                if not self._store_down:
                    log.warning("events not read from the store (%s)", type(exc).__name__)
                self._store_down = True
                return
            if self._store_down:
                log.info("events: the metadata store answers again")
            self._store_down = False
            self._note_gaps(after, [int(m["id"]) for m in found])
            for message in found:
                await self.deliver(message, "store")

    def _note_gaps(self, after: int, ids: list[int]) -> None:
        now = asyncio.get_running_loop().time()
        for event_id in ids:
            self._gaps.pop(event_id, None)
        newest = max([after, *ids])
        present = set(ids)
        for missing in range(max(after + 1, newest - 1000), newest):
            if missing not in present:
                self._gaps.setdefault(missing, now)
        self._cursor = newest
        for event_id, since in list(self._gaps.items()):
            if now - since > GAP_SECONDS:
                del self._gaps[event_id]

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._redis_live = True
                    async for item in pubsub.listen():
                        if item.get("type") != "message":
                            continue
                        try:
                            message = json.loads(item["data"])
                        except (TypeError, ValueError):
                            continue
                        await self._in_order(message, "redis")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._redis_live:
                    log.warning("Redis events channel lost (%s): reading the store", exc)
                self._redis_live = False
                await asyncio.sleep(REDIS_RETRY_SECONDS)
