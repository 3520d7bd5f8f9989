"""Shared fixtures: isolated settings per test, a PostgreSQL schema prefix dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.settings import Settings, get_settings

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def make_settings(home: Path, **overrides: Any) -> Settings:
    """Settings for one test: everything under ``home``, nothing from the environment."""
    values: dict[str, Any] = {
        "home": home,
        "database_url": None,
        "warehouse": "duckdb",
        "warehouse_path": None,
        "schema_prefix": "",
        "redis_url": None,
        "secret_key": "test-secret-key-that-is-long-enough-for-hs256",
        "admin_password": None,
        # No Dagster here unless a test starts one (port 9: nothing listens).
        "dagster_url": "http://127.0.0.1:9",
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def pg_prefix() -> Iterator[str]:
    """A unique schema prefix in the local PostgreSQL `test` database, dropped afterwards."""
    import sqlalchemy as sa

    prefix = f"t{uuid.uuid4().hex[:8]}_"
    yield prefix
    engine = sa.create_engine(PG_URL)
    with engine.begin() as connection:
        schemas = connection.execute(
            sa.text(
                "select schema_name from information_schema.schemata where schema_name like :p"
            ),
            {"p": prefix.replace("_", r"\_") + "%"},
        ).scalars()
        for schema in schemas:
            connection.execute(sa.text(f'drop schema "{schema}" cascade'))
    engine.dispose()
