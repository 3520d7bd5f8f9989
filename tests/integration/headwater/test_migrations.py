"""Migrations on both metadata stores: SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import api.audit.models
import api.auth.models
import api.queries.models
import api.users.models
import catalog.models
import headwater.events
import headwater.notify.models
import ingest.models
import orchestration.models
from headwater.db import Base, get_engine
from headwater.migrate import current_revision, downgrade, upgrade

pytestmark = pytest.mark.integration

HEAD = "0010"
MODELS = (
    api.users.models,
    api.auth.models,
    api.audit.models,
    api.queries.models,
    catalog.models,
    headwater.events,
    headwater.notify.models,
    ingest.models,
    orchestration.models,
)  # every package's tables registered on Base


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    name = f"hw_meta_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/test", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f"create database {name}"))
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    yield url
    get_engine(url).dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(f"drop database {name} with (force)"))
    admin.dispose()


def test_migrations_build_exactly_the_models_and_run_down_again(store_url: str) -> None:
    assert current_revision(store_url) is None
    upgrade(store_url)
    assert current_revision(store_url) == HEAD
    with get_engine(store_url).connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    upgrade(store_url)  # again: nothing to do, nothing lost
    assert current_revision(store_url) == HEAD
    downgrade(store_url, "base")
    with get_engine(store_url).connect() as connection:
        assert set(sa.inspect(connection).get_table_names()) <= {"alembic_version"}


def test_data_survives_a_repeated_upgrade(store_url: str) -> None:
    upgrade(store_url)
    with get_engine(store_url).begin() as connection:
        connection.execute(
            sa.text(
                "insert into datasets (name, kind, schema_name, table_name, created_at, updated_at)"
                " values ('marts.x', 'mart', 'marts', 'x', current_timestamp, current_timestamp)"
            )
        )
    upgrade(store_url)
    with get_engine(store_url).connect() as connection:
        assert connection.execute(sa.text("select count(*) from datasets")).scalar_one() == 1


def test_dataset_metadata_columns_keep_every_catalogued_row(store_url: str) -> None:
    upgrade(store_url, "0006")
    with get_engine(store_url).begin() as connection:
        connection.execute(
            sa.text(
                "insert into datasets (id, name, kind, schema_name, table_name, description,"
                " row_count, created_at, updated_at) values (7, 'marts.x', 'mart', 'marts', 'x',"
                " 'kept', 42, current_timestamp, current_timestamp)"
            )
        )
        connection.execute(
            sa.text(
                "insert into dataset_columns (dataset_id, name, data_type, position, is_nullable,"
                " description) values (7, 'id', 'bigint', 1, false, 'the key')"
            )
        )
    upgrade(store_url, "0007")
    with get_engine(store_url).connect() as connection:
        row = connection.execute(
            sa.text("select name, description, row_count, fqn, tags, test_results from datasets")
        ).one()
        assert tuple(row) == ("marts.x", "kept", 42, None, None, None)
        column = connection.execute(
            sa.text("select name, description, tests, is_primary_key from dataset_columns")
        ).one()
        assert tuple(column) == ("id", "the key", None, None)
    downgrade(store_url, "0006")
    with get_engine(store_url).connect() as connection:
        assert connection.execute(sa.text("select count(*) from dataset_columns")).scalar() == 1
