"""The last word: run a validated query where the engine itself allows only reading.

- DuckDB: a read-only connection with external access (files, URLs, ATTACH, COPY,
  INSTALL) off, extension auto-install and auto-load off, memory and thread limits,
  then the configuration locked, so not even the query can change it. A watchdog
  interrupts the query at its timeout. While a load holds the file, the open waits
  briefly, then :class:`WarehouseBusy` (the API answers 503 with Retry-After).
- PostgreSQL: a login role that can SELECT nothing by itself (NOINHERIT; see
  :mod:`catalog.queries.roles`), in a READ ONLY transaction with a statement timeout
  and ``SET LOCAL ROLE`` to the role of the caller, which may only SELECT on its
  schemas. The transaction is rolled back before the connection goes back to the pool.

Nothing here trusts the validator: a write, a file read or an ATTACH sent straight to
:func:`run` is refused by the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.queries.errors import (
    QueryFailed,
    QueryTimeout,
    WarehouseBusy,
    WarehouseUnavailable,
)
from catalog.queries.roles import role_name
from headwater.warehouse import is_lock_conflict, wait_for_warehouse, writer_waiting

if TYPE_CHECKING:
    from headwater.settings import Settings

log = logging.getLogger("headwater.queries")
LOCK_WAIT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 5
POOL_SIZE = 8
FETCH_ROWS = 256


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_ms: float


def run(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    *,
    role: str,
    limit: int,
    timeout: float,
) -> QueryResult:
    """Run ``sql`` (already validated, fetching ``limit + 1`` rows at most) as ``role``.

    Rows come in small batches against a byte budget
    (``HEADWATER_QUERY_MAX_RESULT_BYTES``): a result too big to answer at once is
    refused before it fills the process; an export streams it instead.
    """
    started = time.perf_counter()
    budget = settings.query_max_result_bytes
    rows: list[tuple[Any, ...]] = []
    size = 0
    with cursor(settings, sql, params, role=role, timeout=timeout) as (columns, fetch):
        while len(rows) <= limit:
            batch = fetch(min(FETCH_ROWS, limit + 1 - len(rows)))
            if not batch:
                break
            size += _approximate_size(batch)
            if size > budget:
                raise QueryFailed(
                    f"The result is larger than {budget // 1_000_000} MB",
                    hint="select fewer or narrower columns, lower the limit, or stream it "
                    "with POST /api/queries/export",
                )
            rows.extend(batch)
    truncated = len(rows) > limit
    elapsed = (time.perf_counter() - started) * 1000
    return QueryResult(columns, rows[:limit], truncated, round(elapsed, 2))


def _approximate_size(rows: list[tuple[Any, ...]]) -> int:
    """Bytes the rows take once encoded, roughly: text and binary by length."""
    return sum(
        len(value) if isinstance(value, str | bytes) else 16 for row in rows for value in row
    )


Fetch = Any  # (n: int) -> list[tuple]
ErrorMapper = Callable[[Exception], Exception]


@contextmanager
def cursor(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    *,
    role: str,
    timeout: float,
) -> Iterator[tuple[tuple[Column, ...], Fetch]]:
    """The columns of ``sql`` and a ``fetch(n)`` for its rows, on a locked-down connection.

    The timeout covers the whole use, fetching included: a caller streaming a result
    cannot hold the warehouse longer than the query may run.
    """
    if settings.warehouse == "duckdb":
        with _duckdb_cursor(settings, sql, params, timeout) as opened:
            yield opened
    else:
        with _postgres_cursor(settings, sql, params, role, timeout) as opened:
            yield opened


# --- DuckDB ------------------------------------------------------------------------------


def duckdb_config(settings: Settings) -> dict[str, Any]:
    return {
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
        "memory_limit": settings.query_memory_limit,
        "threads": settings.query_threads,
    }


def _open_duckdb(settings: Settings) -> Any:
    import duckdb

    path = settings.duckdb_path
    if not path.exists():
        raise WarehouseUnavailable(
            "The warehouse has not been built yet", hint="run `headwater pipeline` first"
        )

    def open_file() -> Any:
        return duckdb.connect(str(path), read_only=True, config=duckdb_config(settings))

    if writer_waiting(settings):
        raise WarehouseBusy(
            "A load is waiting to write to the warehouse; the query cannot run now",
            retry_after=RETRY_AFTER_SECONDS,
            hint=f"retry in {RETRY_AFTER_SECONDS} seconds",
        )

    try:
        connection = wait_for_warehouse(settings, open_file, seconds=LOCK_WAIT_SECONDS)
    except duckdb.Error as exc:
        if is_lock_conflict(exc) or "different configuration" in str(exc):
            raise WarehouseBusy(
                "A load is writing to the warehouse; the query cannot run now",
                retry_after=RETRY_AFTER_SECONDS,
                hint=f"retry in {RETRY_AFTER_SECONDS} seconds",
            ) from None
        log.warning("query: the warehouse cannot be opened: %s", _first_line(exc))
        raise WarehouseUnavailable("The warehouse cannot be opened now") from None
    _lock_configuration(connection)
    return connection


def _lock_configuration(connection: Any) -> None:
    """Lock the configuration, unless another connection of this process to the same
    file (they share one database instance) has locked it already."""
    import duckdb

    def locked() -> bool:
        rows = connection.execute("SELECT current_setting('lock_configuration')").fetchall()
        return bool(rows and rows[0][0])

    if locked():
        return
    try:
        connection.execute("SET enable_progress_bar = false")
        connection.execute("SET lock_configuration = true")
    except duckdb.Error:
        if not locked():  # not a concurrent lock by another thread: a real failure
            connection.close()
            raise WarehouseUnavailable("The warehouse cannot be locked down for queries") from None


@dataclass
class DuckSession:
    """A locked-down DuckDB connection, its error mapping, and the lock held around each
    engine call (so the watchdog closes the connection only between calls)."""

    connection: Any
    error: ErrorMapper
    calling: threading.Lock


@contextmanager
def duckdb_session(settings: Settings, timeout: float) -> Iterator[DuckSession]:
    """A locked-down connection that lives ``timeout`` seconds at most: then a running
    call is interrupted and the connection closed, even if its user went quiet (an
    export whose client stopped reading must not hold the warehouse)."""
    connection = _open_duckdb(settings)
    timed_out = threading.Event()
    calling = threading.Lock()

    def expire() -> None:
        timed_out.set()
        connection.interrupt()
        if calling.acquire(timeout=5):  # between calls: nothing runs on it
            try:
                connection.close()
            finally:
                calling.release()

    def error(exc: Exception) -> Exception:
        return _duckdb_error(exc, timed_out, timeout)

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield DuckSession(connection, error, calling)
    finally:
        watchdog.cancel()
        with suppress(Exception):
            connection.close()


@contextmanager
def _duckdb_cursor(
    settings: Settings, sql: str, params: Mapping[str, Any] | None, timeout: float
) -> Iterator[tuple[tuple[Column, ...], Fetch]]:
    import duckdb

    with duckdb_session(settings, timeout) as session:
        try:
            with session.calling:
                result = session.connection.execute(sql, dict(params) if params else None)
            columns = tuple(Column(d[0], str(d[1])) for d in result.description or ())
        except duckdb.Error as exc:
            raise session.error(exc) from None

        def fetch(n: int) -> list[tuple[Any, ...]]:
            try:
                with session.calling:
                    return [tuple(row) for row in result.fetchmany(n)]
            except duckdb.Error as exc:
                raise session.error(exc) from None

        yield columns, fetch


def _duckdb_error(exc: Exception, timed_out: threading.Event, timeout: float) -> Exception:
    if timed_out.is_set():
        return QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped")
    return QueryFailed(f"The warehouse refused the query: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- PostgreSQL --------------------------------------------------------------------------

_pools: dict[tuple[str, int, str, str, float], Any] = {}
_pools_lock = threading.Lock()
_type_names: dict[tuple[str, int, str, int], str] = {}


def _pool(settings: Settings, role: str) -> Any:
    """The connections of ``role``'s own login role: no login can become another's."""
    from psycopg2.pool import ThreadedConnectionPool

    user = role_name(settings, role)
    ceiling = settings.query_timeout_seconds
    key = (
        settings.warehouse_host,
        settings.warehouse_port,
        settings.warehouse_dbname,
        user,
        ceiling,
    )
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            limit = int(ceiling * 1000)
            pool = ThreadedConnectionPool(
                0,
                POOL_SIZE,
                host=settings.warehouse_host,
                port=settings.warehouse_port,
                user=user,
                password=settings.query_password.get_secret_value() or None,
                dbname=settings.warehouse_dbname,
                connect_timeout=10,
                # The ceilings hold for the whole session, even after a COMMIT inside
                # the SQL: read-only, no statement and no idle transaction past them.
                # Only pg_catalog is searched: every table comes qualified, and a function
                # called by its plain name is the built-in, never one a schema adds.
                options=(
                    "-c search_path=pg_catalog "
                    "-c default_transaction_read_only=on "
                    f"-c statement_timeout={limit} "
                    f"-c idle_in_transaction_session_timeout={limit}"
                ),
                application_name="headwater-query",
            )
            _pools[key] = pool
        return pool


def close_pools() -> None:
    """Close every pooled query connection (tests, shutdown)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.closeall()
        _pools.clear()


@contextmanager
def postgres_session(settings: Settings, role: str, timeout: float) -> Iterator[Any]:
    """A pooled connection of ``role``'s login role in a READ ONLY transaction with a
    statement timeout; before it goes back to the pool it is rolled back and its session
    state discarded (settings, advisory locks, prepared statements)."""
    import psycopg2
    from psycopg2.pool import PoolError

    pool = _pool(settings, role)
    try:
        connection = pool.getconn()
    except PoolError:
        raise WarehouseBusy(
            "Every warehouse connection for queries is in use", retry_after=RETRY_AFTER_SECONDS
        ) from None
    except psycopg2.Error as exc:
        log.warning("query: role %s cannot connect: %s", role_name(settings, role), exc)
        raise WarehouseUnavailable(
            f"The query role {role_name(settings, role)!r} cannot connect to the warehouse",
            hint="`headwater init` creates it; set HEADWATER_QUERY_PASSWORD if it has one",
        ) from None
    broken = False
    try:
        connection.set_session(readonly=True, autocommit=False)
        with connection.cursor() as cur:
            milliseconds = int(timeout * 1000)
            # Session-wide (not LOCAL): a COMMIT inside the SQL cannot shed them; the
            # DISCARD ALL below puts the session back to its ceilings.
            cur.execute("SET statement_timeout = %s", (milliseconds,))
            cur.execute("SET idle_in_transaction_session_timeout = %s", (milliseconds,))
        yield connection
    except psycopg2.Error as exc:
        broken = True
        raise _postgres_error(exc, timeout) from None
    finally:
        try:
            connection.rollback()
            connection.autocommit = True
            with connection.cursor() as cur:
                cur.execute("DISCARD ALL")
            connection.autocommit = False
        except Exception:
            broken = True
        pool.putconn(connection, close=broken or bool(connection.closed))


@contextmanager
def _postgres_cursor(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    role: str,
    timeout: float,
) -> Iterator[tuple[tuple[Column, ...], Fetch]]:
    with postgres_session(settings, role, timeout) as connection, connection.cursor() as cur:
        cur.execute(sql, dict(params) if params else None)
        columns = tuple(
            Column(d.name, _type_name(connection, d.type_code)) for d in cur.description or ()
        )

        def fetch(n: int) -> list[tuple[Any, ...]]:
            return [tuple(row) for row in cur.fetchmany(n)]

        yield columns, fetch


def _postgres_error(exc: Exception, timeout: float) -> Exception:
    code = getattr(exc, "pgcode", None)
    if code == "57014":  # query_canceled: the statement timeout
        return QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped")
    return QueryFailed(f"The warehouse refused the query: {_first_line(exc)}")


def _type_name(connection: Any, oid: int) -> str:
    info = connection.info
    key = (info.host, info.port, info.dbname, oid)  # type OIDs are per database
    name = _type_names.get(key)
    if name is None:
        with connection.cursor() as cur:
            cur.execute("SELECT format_type(%s, NULL)", (oid,))
            row = cur.fetchone()
        name = str(row[0]) if row and row[0] else str(oid)
        _type_names[key] = name
    return name
