"""Short-lived connections to the warehouse, shared by every package that reads it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

if TYPE_CHECKING:
    from headwater.settings import Settings

T = TypeVar("T")
LOCK_WAIT_SECONDS = 60
MARKER_FRESH_SECONDS = 10


def connect_postgres(settings: Settings, timeout: int = 10) -> Any:
    """A psycopg2 connection to the PostgreSQL warehouse (credentials from settings)."""
    import psycopg2

    return psycopg2.connect(
        host=settings.warehouse_host,
        port=settings.warehouse_port,
        user=settings.warehouse_user,
        password=settings.warehouse_password.get_secret_value(),
        dbname=settings.warehouse_dbname,
        connect_timeout=timeout,
    )


def connect_duckdb_read_only(settings: Settings) -> Any:
    """A read-only connection to the DuckDB warehouse file; raises duckdb.IOException if locked."""
    import duckdb

    return duckdb.connect(str(settings.duckdb_path), read_only=True)


def is_lock_conflict(exc: BaseException) -> bool:
    """DuckDB refused the file because another process holds it."""
    return "Could not set lock on file" in str(exc)


def writer_marker(settings: Settings) -> Path:
    """The file a writer keeps fresh while it waits for the DuckDB file."""
    path = settings.duckdb_path
    return path.with_name(path.name + ".writer-waiting")


def writer_waiting(settings: Settings) -> bool:
    """Whether a load is waiting for the DuckDB file now: readers that can step aside
    (ad hoc queries) then do, so a stream of them never starves it."""
    try:
        age = time.time() - writer_marker(settings).stat().st_mtime
    except OSError:
        return False
    return age < MARKER_FRESH_SECONDS


def wait_for_warehouse(
    settings: Settings,
    work: Callable[[], T],
    seconds: float = LOCK_WAIT_SECONDS,
    *,
    writer: bool = False,
) -> T:
    """Run ``work``; on a DuckDB lock conflict, retry for up to ``seconds`` after the first one.

    DuckDB admits one writing process per file, and a writer cannot open it while
    another process has it open, even read-only, for a moment. The wait counts from
    the first conflict, however long ``work`` itself took. A ``writer`` announces that
    it waits (:func:`writer_waiting`), so ad hoc queries stop opening the file until
    it has had its turn. PostgreSQL needs no waiting: ``work`` runs once.
    """
    if settings.warehouse != "duckdb":
        return work()
    try:
        return work()
    except Exception as exc:
        if not is_lock_conflict(exc):
            raise
    retrying = Retrying(
        retry=retry_if_exception(is_lock_conflict),
        stop=stop_after_delay(seconds),
        wait=wait_exponential(multiplier=0.1, max=2),
        reraise=True,
    )
    if not writer:
        return retrying(work)
    marker = writer_marker(settings)

    def announced() -> T:
        marker.touch()  # fresh on every attempt: see writer_waiting()
        return work()

    try:
        return retrying(announced)
    finally:
        marker.unlink(missing_ok=True)
