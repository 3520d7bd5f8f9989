"""The metadata store as the API uses it: every unit of work in one worker thread.

A handler never holds a session across an ``await``. It hands a function to
:meth:`Database.run`, which opens a session in a worker thread, runs the
function, commits (or rolls back) and closes the session in that same thread,
then returns the result. At most :data:`headwater.db.POOL_SIZE` such threads run
at once, so they can always get a connection; requests beyond that wait in the
event loop (holding nothing), up to :data:`QUEUE_WAIT_SECONDS`, then answer 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from anyio import CapacityLimiter, to_thread
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from api.errors import ServiceUnavailable
from headwater.db import POOL_SIZE, get_engine, session_scope, sqlite_path

T = TypeVar("T")
QUEUE_WAIT_SECONDS = 20.0
BUSY_RETRY_AFTER_SECONDS = 2


class Database:
    """Runs work on the metadata store at ``url`` in bounded worker threads."""

    def __init__(self, url: str, concurrency: int = POOL_SIZE) -> None:
        self.url = url
        self._limiter: CapacityLimiter | None = None
        self._concurrency = concurrency

    @property
    def engine(self) -> Engine:
        return get_engine(self.url)

    def present(self) -> bool:
        """False while an embedded (SQLite) store has no file yet: background work waits
        for ``headwater init`` rather than creating an empty file."""
        path = sqlite_path(self.url)
        return path is None or path.exists()

    @property
    def limiter(self) -> CapacityLimiter:
        # Created lazily: a CapacityLimiter belongs to the event loop that first uses it.
        if self._limiter is None:
            self._limiter = CapacityLimiter(self._concurrency)
        return self._limiter

    def _in_session(self, work: Callable[[Session], T]) -> T:
        with session_scope(self.url) as session:
            return work(session)

    async def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a worker thread: committed if it returns, rolled back if it raises.

        Raises:
            ServiceUnavailable: the store stayed busy for :data:`QUEUE_WAIT_SECONDS`.
        """
        return await self.run_sync(self._in_session, work)

    async def run_sync(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in one of the bounded worker threads (for work without a session)."""
        limiter = self.limiter
        try:
            with anyio.fail_after(QUEUE_WAIT_SECONDS):
                await limiter.acquire()
        except TimeoutError:
            raise ServiceUnavailable(
                "The metadata store is busy", retry_after=BUSY_RETRY_AFTER_SECONDS
            ) from None
        try:
            return await to_thread.run_sync(func, *args, abandon_on_cancel=False)
        finally:
            limiter.release()
