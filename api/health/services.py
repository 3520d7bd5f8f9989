"""Probe the metadata store, the warehouse and (when configured) Redis.

Each probe is short-lived and bounded in time, and reports a status plus a detail
safe to show to an anonymous caller: no URLs, hosts, paths or credentials. The
underlying error is logged for the operator.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb
import psycopg2
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from api.health.schemas import CheckResult, HealthChecks, HealthResponse
from headwater.db import get_engine
from headwater.migrate import current_revision
from headwater.settings import Settings
from headwater.warehouse import connect_duckdb_read_only, connect_postgres

logger = logging.getLogger("headwater.api.health")

CONNECT_TIMEOUT_SECONDS = 3


def check_metadata_store(settings: Settings) -> CheckResult:
    """``SELECT 1`` on the metadata store, and whether it has been migrated."""
    url = make_url(settings.metadata_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
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


def check_duckdb(settings: Settings) -> CheckResult:
    """Open the DuckDB file read-only for a moment."""
    path = settings.duckdb_path
    if not path.exists():
        return CheckResult("missing", "DuckDB warehouse file does not exist yet")
    try:
        connection = connect_duckdb_read_only(settings)
        try:
            connection.execute("SELECT 1").fetchone()
        finally:
            connection.close()
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            return CheckResult("busy", "DuckDB warehouse is locked by a writing process")
        logger.warning("DuckDB warehouse check failed: %s", exc)
        return CheckResult("error", "DuckDB warehouse could not be opened")
    except duckdb.Error as exc:
        logger.warning("DuckDB warehouse check failed: %s", exc)
        return CheckResult("error", "DuckDB warehouse could not be opened")
    return CheckResult("ok", "DuckDB warehouse readable")


def check_postgres_warehouse(settings: Settings) -> CheckResult:
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
        return CheckResult("unreachable", "PostgreSQL warehouse did not answer")
    return CheckResult("ok", "PostgreSQL warehouse reachable")


def check_warehouse(settings: Settings) -> CheckResult:
    if settings.warehouse == "postgres":
        return check_postgres_warehouse(settings)
    return check_duckdb(settings)


def check_redis(redis_url: str) -> CheckResult:
    """``PING`` with short connect and read timeouts."""
    client = redis.Redis.from_url(
        redis_url,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        logger.warning("Redis check failed: %s", type(exc).__name__)
        return CheckResult("unreachable", "Redis did not answer")
    finally:
        client.close()
    return CheckResult("ok", "Redis answered PING")


def health_report(settings: Settings) -> HealthResponse:
    """Every check; the overall status is ``ok`` only when each check is."""
    checks = HealthChecks(
        metadata_store=check_metadata_store(settings),
        warehouse=check_warehouse(settings),
        redis=check_redis(settings.redis_url) if settings.redis_url else None,
    )
    results = [checks.metadata_store, checks.warehouse, checks.redis]
    healthy = all(result.status == "ok" for result in results if result is not None)
    return HealthResponse(status="ok" if healthy else "degraded", checks=checks)
