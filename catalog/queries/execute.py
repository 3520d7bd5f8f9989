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

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.queries.errors import QueryFailed, QueryTimeout, WarehouseBusy
from catalog.queries.roles import role_name
from headwater.warehouse import is_lock_conflict, wait_for_warehouse

if TYPE_CHECKING:
    from headwater.settings import Settings

LOCK_WAIT_SECONDS = 2.0
RETRY_AFTER_SECONDS = 5
POOL_SIZE = 8


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
    """Run ``sql`` (already validated, fetching ``limit + 1`` rows at most) as ``role``."""
    started = time.perf_counter()
    with cursor(settings, sql, params, role=role, timeout=timeout) as (columns, fetch):
        rows = fetch(limit + 1)
    truncated = len(rows) > limit
    elapsed = (time.perf_counter() - started) * 1000
    return QueryResult(columns, rows[:limit], truncated, round(elapsed, 2))


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
        raise QueryFailed(
            "The warehouse has not been built yet", hint="run `headwater pipeline` first"
        )

    def open_file() -> Any:
        return duckdb.connect(str(path), read_only=True, config=duckdb_config(settings))

    try:
        connection = wait_for_warehouse(settings, open_file, seconds=LOCK_WAIT_SECONDS)
    except duckdb.Error as exc:
        if is_lock_conflict(exc) or "different configuration" in str(exc):
            raise WarehouseBusy(
                "A load is writing to the warehouse; the query cannot run now",
                retry_after=RETRY_AFTER_SECONDS,
                hint=f"retry in {RETRY_AFTER_SECONDS} seconds",
            ) from None
        raise QueryFailed(f"The warehouse cannot be opened: {_first_line(exc)}") from None
    connection.execute("SET enable_progress_bar = false")
    connection.execute("SET lock_configuration = true")
    return connection


@contextmanager
def duckdb_session(settings: Settings, timeout: float) -> Iterator[tuple[Any, ErrorMapper]]:
    """A locked-down connection, interrupted after ``timeout`` seconds, and the function
    that turns its errors into Headwater's (a timeout, or the engine's refusal)."""
    connection = _open_duckdb(settings)
    timed_out = threading.Event()

    def interrupt() -> None:
        timed_out.set()
        connection.interrupt()

    def error(exc: Exception) -> Exception:
        return _duckdb_error(exc, timed_out, timeout)

    watchdog = threading.Timer(timeout, interrupt)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield connection, error
    finally:
        watchdog.cancel()
        with suppress(Exception):
            connection.close()


@contextmanager
def _duckdb_cursor(
    settings: Settings, sql: str, params: Mapping[str, Any] | None, timeout: float
) -> Iterator[tuple[tuple[Column, ...], Fetch]]:
    import duckdb

    with duckdb_session(settings, timeout) as (connection, error):
        try:
            result = connection.execute(sql, dict(params) if params else None)
            columns = tuple(Column(d[0], str(d[1])) for d in result.description or ())
        except duckdb.Error as exc:
            raise error(exc) from None

        def fetch(n: int) -> list[tuple[Any, ...]]:
            try:
                return [tuple(row) for row in result.fetchmany(n)]
            except duckdb.Error as exc:
                raise error(exc) from None

        yield columns, fetch


def _duckdb_error(exc: Exception, timed_out: threading.Event, timeout: float) -> Exception:
    if timed_out.is_set():
        return QueryTimeout(f"The query ran longer than {timeout:g} s and was stopped")
    return QueryFailed(f"The warehouse refused the query: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- PostgreSQL --------------------------------------------------------------------------

_pools: dict[tuple[str, int, str, str], Any] = {}
_pools_lock = threading.Lock()
_type_names: dict[int, str] = {}


def _pool(settings: Settings) -> Any:
    from psycopg2.pool import ThreadedConnectionPool

    key = (
        settings.warehouse_host,
        settings.warehouse_port,
        settings.warehouse_dbname,
        settings.query_user,
    )
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            pool = ThreadedConnectionPool(
                0,
                POOL_SIZE,
                host=settings.warehouse_host,
                port=settings.warehouse_port,
                user=settings.query_user,
                password=settings.query_password.get_secret_value() or None,
                dbname=settings.warehouse_dbname,
                connect_timeout=10,
                options="-c default_transaction_read_only=on",
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
    """A pooled connection in a READ ONLY transaction with a statement timeout, running as
    the query role of ``role``; rolled back before it goes back to the pool."""
    import psycopg2
    from psycopg2 import sql as pgsql

    pool = _pool(settings)
    try:
        connection = pool.getconn()
    except psycopg2.Error as exc:
        raise QueryFailed(
            f"The query role {settings.query_user!r} cannot connect: {_first_line(exc)}",
            hint="`headwater init` creates it; set HEADWATER_QUERY_PASSWORD if it has one",
        ) from None
    broken = False
    try:
        connection.set_session(readonly=True, autocommit=False)
        with connection.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = %s", (int(timeout * 1000),))
            cur.execute(
                pgsql.SQL("SET LOCAL ROLE {}").format(pgsql.Identifier(role_name(settings, role)))
            )
        yield connection
    except psycopg2.Error as exc:
        broken = True
        raise _postgres_error(exc, timeout) from None
    finally:
        try:
            connection.rollback()
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
    name = _type_names.get(oid)
    if name is None:
        with connection.cursor() as cur:
            cur.execute("SELECT format_type(%s, NULL)", (oid,))
            row = cur.fetchone()
        name = str(row[0]) if row and row[0] else str(oid)
        _type_names[oid] = name
    return name
