"""Both destinations for ingest tests: the embedded DuckDB file and the local PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa

from headwater.settings import Settings
from tests.conftest import PG_URL, make_settings

WAREHOUSES = ["duckdb", "postgres"]


def warehouse_settings(tmp_path: Path, warehouse: str, request: pytest.FixtureRequest) -> Settings:
    """Settings loading into ``warehouse``; PostgreSQL schemas get a prefix dropped after."""
    if warehouse == "duckdb":
        return make_settings(tmp_path)
    return make_settings(
        tmp_path,
        warehouse="postgres",
        warehouse_dbname="test",
        schema_prefix=request.getfixturevalue("pg_prefix"),
    )


def warehouse_rows(settings: Settings, source: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` in the warehouse, ``{schema}`` being the source's raw schema."""
    sql = sql.replace("{schema}", settings.raw_schema(source))
    if settings.warehouse == "duckdb":
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
            return [tuple(row) for row in connection.execute(sql).fetchall()]
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


SOURCE_SERVERS = {
    "postgres": ("postgresql+psycopg2://postgres@127.0.0.1:5432", "test"),
    "mysql": ("mysql+pymysql://root@127.0.0.1:3306", ""),
}
"""Source database servers: (server URL, database the admin connection opens)."""


@contextmanager
def source_database(server: str, prefix: str) -> Iterator[str]:
    """The URL of a fresh, empty database on the local ``server`` (a SOURCE_SERVERS key),
    dropped afterwards."""
    base, admin_db = SOURCE_SERVERS[server]
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{base}/{admin_db}", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f"create database {name}"))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f"drop database {name}"))
        admin.dispose()
