"""Readiness probes: the metadata store, the warehouse and Redis.

Each probe is bounded in time and reports a status plus a detail safe to show
to an anonymous caller: no URLs, hosts, paths or credentials (the underlying
error is logged for the operator). The DuckDB warehouse file is never opened:
a read handle from a probe would make a concurrent ``dbt build`` fail, so its
state is reported from what is known (the file, the catalog, dbt's results).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

import anyio
import anyio.to_thread
import psycopg2
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from api.health.schemas import CheckResult, ReadinessChecks, ReadinessResponse, WarehouseCheck
from api.kv import KeyValueStore
from catalog.models import Dataset
from headwater.db import as_utc, get_engine, session_scope, sqlite_path
from headwater.migrate import current_revision
from headwater.settings import PROJECT_ROOT, Settings
from headwater.warehouse import connect_postgres

logger = logging.getLogger("headwater.api.health")

CONNECT_TIMEOUT_SECONDS = 3
PROBE_TIMEOUT_SECONDS = 5
FRESH_SECONDS = 2.0
C = TypeVar("C", bound=CheckResult)


def check_metadata_store(settings: Settings) -> CheckResult:
    """``SELECT 1`` on the metadata store, and whether it has been migrated."""
    path = sqlite_path(settings.metadata_url)
    if path is not None and not path.exists():
        # Connecting would create an empty file; a probe must not change anything.
        return CheckResult("missing", "sqlite metadata store is not initialised")
    try:
        engine = get_engine(settings.metadata_url)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = current_revision(settings.metadata_url)
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("metadata store check failed: %s", type(exc).__name__)
        return CheckResult("unreachable", "metadata store did not answer")
    backend = engine.dialect.name
    if revision is None:
        return CheckResult("missing", f"{backend} metadata store is not initialised")
    return CheckResult("ok", f"{backend} metadata store at revision {revision}")


def last_load_at(settings: Settings) -> datetime | None:
    """The newest change of a raw (loaded) dataset the catalog knows."""
    path = sqlite_path(settings.metadata_url)
    if path is not None and not path.exists():
        return None  # connecting would create the file
    try:
        with session_scope(settings.metadata_url) as session:
            value = session.scalar(
                select(func.max(Dataset.updated_at)).where(Dataset.kind == "raw")
            )
    except SQLAlchemyError:
        return None
    return as_utc(value)


def last_build_at(settings: Settings) -> datetime | None:
    """When the newest ``run_results.json`` (Headwater's target or ./target) was written."""
    newest: datetime | None = None
    for folder in (settings.dbt_target_dir, PROJECT_ROOT / "target"):
        try:
            generated = json.loads((folder / "run_results.json").read_text())["metadata"][
                "generated_at"
            ]
            moment = as_utc(datetime.fromisoformat(str(generated).replace("Z", "+00:00")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if moment is not None and (newest is None or moment > newest):
            newest = moment
    return newest


def check_duckdb(settings: Settings) -> WarehouseCheck:
    """What is known of the DuckDB file, without opening it."""
    path: Path = settings.duckdb_path
    if not path.exists():
        return WarehouseCheck("missing", "DuckDB warehouse file does not exist yet")
    return WarehouseCheck(
        "ok",
        "DuckDB warehouse file present",
        last_load_at=last_load_at(settings),
        last_build_at=last_build_at(settings),
    )


def check_postgres_warehouse(settings: Settings) -> WarehouseCheck:
    """Connect to the PostgreSQL warehouse with a short timeout and ``SELECT 1``."""
    try:
        connection = connect_postgres(settings, CONNECT_TIMEOUT_SECONDS)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            connection.close()
    except psycopg2.Error as exc:
        # libpq messages name host and user, never the password; still only logged.
        logger.warning("PostgreSQL warehouse check failed: %s", str(exc).strip())
        return WarehouseCheck("unreachable", "PostgreSQL warehouse did not answer")
    return WarehouseCheck(
        "ok",
        "PostgreSQL warehouse reachable",
        last_load_at=last_load_at(settings),
        last_build_at=last_build_at(settings),
    )


def check_warehouse(settings: Settings) -> WarehouseCheck:
    if settings.warehouse == "postgres":
        return check_postgres_warehouse(settings)
    return check_duckdb(settings)


class ReadinessProbe:
    """Runs the readiness checks for ``/health/ready``, one run at a time, shared briefly.

    Anonymous callers must not be able to tie up the API: the checks run in their
    own two threads (never the metadata store's worker pool), a run that does not
    finish within :data:`PROBE_TIMEOUT_SECONDS` reports the dependency as not
    answering, and callers arriving within :data:`FRESH_SECONDS` of a run share
    its answer.
    """

    def __init__(self, settings: Settings, kv: KeyValueStore) -> None:
        self.settings = settings
        self.kv = kv
        self._lock: anyio.Lock | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._last: tuple[float, ReadinessResponse] | None = None

    async def _check(self, check: Callable[[Settings], C], late: C) -> C:
        assert self._limiter is not None  # noqa: S101 - set by report()
        with anyio.move_on_after(PROBE_TIMEOUT_SECONDS):
            return await anyio.to_thread.run_sync(
                check, self.settings, abandon_on_cancel=True, limiter=self._limiter
            )
        return late

    async def report(self) -> ReadinessResponse:
        if self._lock is None:
            self._lock, self._limiter = anyio.Lock(), anyio.CapacityLimiter(2)
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < FRESH_SECONDS:
                return self._last[1]
            store = await self._check(
                check_metadata_store, CheckResult("unreachable", "metadata store did not answer")
            )
            warehouse = await self._check(
                check_warehouse, WarehouseCheck("unreachable", "warehouse did not answer in time")
            )
            if self.kv.redis_state == "not configured":
                redis = CheckResult("not configured", "Redis is not configured; caching in process")
            elif await self.kv.ping():
                redis = CheckResult("ok", "Redis answered PING")
            else:
                redis = CheckResult("down", "Redis did not answer; serving without it")
            checks = ReadinessChecks(metadata_store=store, warehouse=warehouse, redis=redis)
            optional_ok = warehouse.status == "ok" and redis.status in ("ok", "not configured")
            if store.status != "ok":
                status: Literal["ok", "degraded", "unavailable"] = "unavailable"
            else:
                status = "ok" if optional_ok else "degraded"
            report = ReadinessResponse(status=status, checks=checks)
            self._last = (time.monotonic(), report)
            return report
