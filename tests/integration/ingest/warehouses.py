"""Both destinations for ingest tests: the embedded DuckDB file and the local PostgreSQL."""

from __future__ import annotations

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
