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
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from api.health.schemas import CheckResult, WarehouseCheck
from catalog.models import Dataset
from headwater.db import get_engine, session_scope, sqlite_path
from headwater.migrate import current_revision
from headwater.settings import PROJECT_ROOT, Settings
from headwater.warehouse import connect_postgres

logger = logging.getLogger("headwater.api.health")

CONNECT_TIMEOUT_SECONDS = 3


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


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


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
    return _aware(value)


def last_build_at(settings: Settings) -> datetime | None:
    """When the newest ``run_results.json`` (Headwater's target or ./target) was written."""
    newest: datetime | None = None
    for folder in (settings.dbt_target_dir, PROJECT_ROOT / "target"):
        try:
            generated = json.loads((folder / "run_results.json").read_text())["metadata"][
                "generated_at"
            ]
            moment = _aware(datetime.fromisoformat(str(generated).replace("Z", "+00:00")))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if moment is not None and (newest is None or moment > newest):
            newest = moment
    return newest


def check_duckdb(settings: Settings) -> WarehouseCheck:
    """What is known of the DuckDB file, without opening it."""
    path: Path = settings.duckdb_path
    loaded, built = last_load_at(settings), last_build_at(settings)
    if not path.exists():
        return WarehouseCheck("missing", "DuckDB warehouse file does not exist yet")
    return WarehouseCheck(
        "ok", "DuckDB warehouse file present", last_load_at=loaded, last_build_at=built
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
