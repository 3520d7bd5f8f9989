"""Ad hoc queries for API callers: validate in the metadata store's threads, run in the
query threads (a bounded set of their own: a slow query never holds up the store),
record every attempt in the caller's history."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from typing import Any, TypeVar, cast

import anyio
import msgspec
from sqlalchemy import Table, func, insert, select
from sqlalchemy.orm import Session

from api.auth.schemas import CurrentUser
from api.cache import cache_counter
from api.db import Database
from api.errors import NotFound, ServiceUnavailable
from api.kv import KeyValueStore
from api.queries.models import QueryRun
from api.queries.schemas import (
    ColumnOut,
    HistoryOut,
    Problem,
    QueryIn,
    QueryResultOut,
    ValidationOut,
)
from api.schemas import Page
from api.times import as_utc
from catalog.queries import service
from catalog.queries.errors import (
    QueryError,
    QueryRejected,
    QueryTimeout,
    WarehouseBusy,
)
from catalog.queries.execute import QueryResult
from catalog.queries.export import Format
from catalog.queries.known import known_tables
from catalog.queries.validate import KnownTables, ValidatedQuery
from headwater.db import utcnow
from headwater.settings import Settings

T = TypeVar("T")
logger = logging.getLogger("headwater.api")
HISTORY_FLUSH_SECONDS = 0.5
HISTORY_QUEUE_LIMIT = 10_000
HISTORY_SQL_CHARS = 20_000
HISTORY_PARAMS_BYTES = 20_000
CATALOG_RECHECK_SECONDS = 1.0
CACHE_MAX_BYTES = 4_000_000
CACHE_NAMESPACE = "queries"
QUERY_SLOTS = 4
SLOT_WAIT_SECONDS = 10
ERROR_TEXT_LIMIT = 2000
_encoder = msgspec.json.Encoder()


class QueryRunner:
    """Runs validated queries in at most :data:`QUERY_SLOTS` threads at once."""

    def __init__(self, slots: int = QUERY_SLOTS) -> None:
        self._slots = slots
        self._limiter: anyio.CapacityLimiter | None = None
        self._known: dict[str, tuple[float, KnownTables]] = {}

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # bound to the event loop that first uses it
            self._limiter = anyio.CapacityLimiter(self._slots)
        return self._limiter

    async def run(
        self,
        settings: Settings,
        query: ValidatedQuery,
        params: Mapping[str, Any] | None,
        role: str,
        timeout: float | None,
    ) -> QueryResult:
        limiter = self.limiter
        try:
            with anyio.fail_after(SLOT_WAIT_SECONDS):
                await limiter.acquire()
        except TimeoutError:
            raise ServiceUnavailable(
                "Every query slot is busy", retry_after=SLOT_WAIT_SECONDS
            ) from None
        try:
            return await anyio.to_thread.run_sync(
                lambda: service.run(settings, query, params, role=role, timeout=timeout),
                abandon_on_cancel=False,
            )
        finally:
            limiter.release()

    async def in_thread(self, work: Callable[[], T]) -> T:
        """Short work (a data version, a first validation) off the event loop."""
        return await anyio.to_thread.run_sync(work)

    async def known(self, settings: Settings, database: Database, role: str) -> KnownTables:
        """What ``role`` may read, looked up in the catalog at most every
        :data:`CATALOG_RECHECK_SECONDS` (a refresh shows within that; the data itself is
        never stale: results are keyed by its version)."""
        now = time.monotonic()
        remembered = self._known.get(role)
        if remembered is not None and now - remembered[0] < CATALOG_RECHECK_SECONDS:
            return remembered[1]
        known = await database.run(lambda s: known_tables(s, settings, role))
        self._known[role] = (now, known)
        return known

    async def check(
        self,
        settings: Settings,
        database: Database,
        role: str,
        body: QueryIn,
        *,
        export: bool = False,
    ) -> ValidatedQuery:
        """``body`` validated for ``role``: at once when this SQL was checked before
        against the same catalog, else in a worker thread (parsing costs CPU)."""
        known = await self.known(settings, database, role)

        def check() -> ValidatedQuery:
            return service.check(
                known,
                settings,
                body.sql,
                dialect=body.dialect,
                limit=body.limit,
                params=body.params,
                export=export,
            )

        if service.remembered(
            known, settings, body.sql, body.dialect, body.limit, body.params, export
        ):
            return check()
        return await self.in_thread(check)

    async def version(self, settings: Settings, database: Database, query: ValidatedQuery) -> str:
        """The data version of what ``query`` reads (a file ``stat`` on DuckDB, inline)."""
        if settings.warehouse == "duckdb":
            return service.version(settings, ())
        relations = await database.run(lambda s: service.depends_on(s, settings, query))
        return await self.in_thread(lambda: service.version(settings, relations))


def outcome_of(error: BaseException) -> str:
    if isinstance(error, QueryRejected):
        return "rejected"
    if isinstance(error, QueryTimeout):
        return "timeout"
    if isinstance(error, WarehouseBusy | ServiceUnavailable):
        return "busy"
    return "failed"


def entry(
    user: CurrentUser,
    body: QueryIn,
    outcome: str,
    *,
    row_count: int | None = None,
    elapsed_ms: float | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One history row."""
    params = dict(body.params) if body.params else None
    if params and len(msgspec.json.encode(params)) > HISTORY_PARAMS_BYTES:
        params = {"(too large to keep)": None}
    return {
        "user_id": user.id,
        "created_at": utcnow(),
        "sql": body.sql[:HISTORY_SQL_CHARS],
        "dialect": body.dialect,
        "params": params,
        "role": user.role,
        "outcome": outcome,
        "row_count": row_count,
        "elapsed_ms": elapsed_ms,
        "error": error[:ERROR_TEXT_LIMIT] if error else None,
    }


def failure(user: CurrentUser, body: QueryIn, started: float, exc: BaseException) -> dict[str, Any]:
    """The history row of a query that was refused or failed ``started`` (perf_counter)."""
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    return entry(user, body, outcome_of(exc), elapsed_ms=elapsed, error=str(exc))


_HISTORY = cast(Table, QueryRun.__table__)


class History:
    """The query history, written behind: entries are queued in memory and inserted by
    one background task, many per transaction, so recording a query costs a request
    nothing and a burst of cached answers never queues on the store's write lock.

    Reads flush first (:meth:`flush`), so this process's own entries are always there.
    """

    def __init__(self, database: Database, interval: float = HISTORY_FLUSH_SECONDS) -> None:
        self._database = database
        self._interval = interval
        self._pending: list[dict[str, Any]] = []
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None

    def add(self, row: dict[str, Any]) -> None:
        if len(self._pending) >= HISTORY_QUEUE_LIMIT:  # the store is far behind
            self._dropped += 1
            if self._dropped in (1, 1000) or self._dropped % 100_000 == 0:
                logger.warning("query history: %d entries dropped (store too slow)", self._dropped)
            return
        self._pending.append(row)

    async def flush(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                # A Core insert of the rows as they are: the ORM's bulk path adds a
                # sixth to the CPU of a flush, which competes with requests for the GIL.
                await self._database.run(lambda s: s.execute(insert(_HISTORY), batch))
            except Exception:
                logger.warning("query history: %d entries not recorded", len(batch), exc_info=True)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()


class CachedResult(msgspec.Struct):
    """What a cache entry holds."""

    columns: list[ColumnOut]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float
    sql: str


_decoder = msgspec.json.Decoder(CachedResult)


async def run_query(
    settings: Settings,
    database: Database,
    runner: QueryRunner,
    kv: KeyValueStore,
    history: History,
    user: CurrentUser,
    body: QueryIn,
) -> QueryResultOut:
    """Validate, run (or serve from the cache) and record ``body`` for ``user``; a failure
    is recorded, then raised."""
    started = time.perf_counter()
    ttl = settings.query_cache_ttl_seconds
    try:
        query = await runner.check(settings, database, user.role, body)
        key = None
        if ttl:
            version = await runner.version(settings, database, query)
            key = service.cache_key(user.role, query, body.params, version)
            hit = await kv.cache_get(CACHE_NAMESPACE, key)
            if hit is not None:
                cache_counter(CACHE_NAMESPACE, "hit").inc()
                cached = _decoder.decode(hit)
                elapsed = round((time.perf_counter() - started) * 1000, 2)
                history.add(
                    entry(user, body, "success", row_count=len(cached.rows), elapsed_ms=elapsed)
                )
                return QueryResultOut(
                    columns=cached.columns,
                    rows=cached.rows,
                    row_count=len(cached.rows),
                    truncated=cached.truncated,
                    elapsed_ms=elapsed,
                    cached=True,
                    sql=cached.sql,
                )
            cache_counter(CACHE_NAMESPACE, "miss").inc()
        result = await runner.run(settings, query, body.params, user.role, body.timeout_seconds)
    except (QueryError, ServiceUnavailable) as exc:
        history.add(failure(user, body, started, exc))
        raise
    columns = [ColumnOut(c.name, c.type) for c in result.columns]
    rows = [list(row) for row in result.rows]
    if key is not None:
        kept = _encoder.encode(
            CachedResult(columns, rows, result.truncated, result.elapsed_ms, query.sql)
        )
        if len(kept) <= CACHE_MAX_BYTES:  # one huge answer must not crowd out the rest
            await kv.cache_set(CACHE_NAMESPACE, key, kept, ttl)
    history.add(
        entry(user, body, "success", row_count=len(result.rows), elapsed_ms=result.elapsed_ms)
    )
    return QueryResultOut(
        columns=columns,
        rows=rows,
        row_count=len(rows),
        truncated=result.truncated,
        elapsed_ms=result.elapsed_ms,
        cached=False,
        sql=query.sql,
    )


async def validate_query(
    settings: Settings,
    database: Database,
    runner: QueryRunner,
    user: CurrentUser,
    body: QueryIn,
) -> ValidationOut:
    """What running ``body`` would do, checked exactly as :func:`run_query` checks it."""
    try:
        query = await runner.check(settings, database, user.role, body)
    except QueryRejected as exc:
        problem = Problem(exc.message, line=exc.line, column=exc.column, hint=exc.hint)
        return ValidationOut(False, [problem], None, [], [], [])
    return ValidationOut(
        True, [], query.sql, list(query.tables), list(query.columns), list(query.parameters)
    )


def _history_row(entry: QueryRun) -> HistoryOut:
    return HistoryOut(
        id=entry.id,
        user_id=entry.user_id,
        sql=entry.sql,
        dialect=entry.dialect,
        params=entry.params,
        outcome=entry.outcome,  # type: ignore[arg-type]
        row_count=entry.row_count,
        elapsed_ms=entry.elapsed_ms,
        error=entry.error,
        created_at=as_utc(entry.created_at),
    )


def list_history(
    session: Session,
    user: CurrentUser,
    *,
    limit: int,
    offset: int,
    user_id: int | None = None,
) -> Page[HistoryOut]:
    """The caller's queries, newest first (an admin sees everyone's, or one user's)."""
    query = select(QueryRun)
    if user.role != "admin":
        query = query.where(QueryRun.user_id == user.id)
    elif user_id is not None:
        query = query.where(QueryRun.user_id == user_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(QueryRun.id.desc()).limit(limit).offset(offset)).all()
    return Page(items=[_history_row(r) for r in rows], total=total, limit=limit, offset=offset)


def history_entry(session: Session, user: CurrentUser, history_id: int) -> QueryIn:
    """The query of one history entry the caller may see, ready to run again."""
    entry = session.get(QueryRun, history_id)
    if entry is None or (user.role != "admin" and entry.user_id != user.id):
        raise NotFound("No query with this id in your history")
    return QueryIn(
        sql=entry.sql,
        dialect=entry.dialect,  # type: ignore[arg-type]
        params=entry.params,
    )


async def export_query(
    settings: Settings,
    database: Database,
    runner: QueryRunner,
    history: History,
    user: CurrentUser,
    body: QueryIn,
    fmt: Format,
) -> Iterator[bytes]:
    """The whole result of ``body`` as CSV or JSON lines, streamed; recorded in the
    history when it starts. Errors before the first byte (a refused query, a busy
    warehouse) are raised here, so they are still proper error responses."""
    started = time.perf_counter()
    try:
        query = await runner.check(settings, database, user.role, body, export=True)
        chunks = service.export(
            settings, query, body.params, role=user.role, fmt=fmt, timeout=body.timeout_seconds
        )
        first = await runner.in_thread(lambda: next(chunks, b""))
    except (QueryError, ServiceUnavailable) as exc:
        history.add(failure(user, body, started, exc))
        raise
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    history.add(entry(user, body, "success", elapsed_ms=elapsed))
    return itertools.chain([first], chunks)
