"""A source may name its target: the warehouse (default), or a PostgreSQL or DuckDB
connection marked ``destination: true``. Real loads into the local PostgreSQL and a
DuckDB file beside the embedded warehouse."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.destinations import destinations
from ingest.errors import IngestError, SpecError
from ingest.runner import load_declared, run_all, run_source
from ingest.sources import check_connection
from ingest.spec import parse_sources
from ingest.state import reset_state, table_states
from ingest.targets import UnsafeTarget
from tests.conftest import PG_URL, make_settings

pytestmark = pytest.mark.integration

SOURCES = """
sources:
  archive:
    kind: database
    destination: true
    description: Long-term archive
    connection: postgresql://postgres:${ARCHIVE_PASSWORD}@127.0.0.1:5432/test
  lake:
    kind: database
    destination: true
    connection: duckdb:///${HEADWATER_HOME}/lake.duckdb
  shop:
    kind: database
    connection: sqlite:///${HEADWATER_HOME}/shop.db
    target: archive
    tables:
      orders: {primary_key: id, cursor: updated_at}
  events:
    kind: database
    connection: sqlite:///${HEADWATER_HOME}/shop.db
    target: lake
    tables:
      orders: {primary_key: id}
  local:
    kind: database
    connection: sqlite:///${HEADWATER_HOME}/shop.db
    tables:
      orders: {primary_key: id}
"""


@pytest.fixture
def settings(tmp_path: Path, pg_prefix: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ARCHIVE_PASSWORD", "archive-pw-77")
    db = sqlite3.connect(tmp_path / "shop.db")
    db.execute("create table orders (id integer primary key, updated_at integer)")
    db.executemany("insert into orders values (?, ?)", [(1, 10), (2, 20)])
    db.commit()
    db.close()
    (tmp_path / "sources.yml").write_text(SOURCES)
    settings = make_settings(
        tmp_path, sources_file=tmp_path / "sources.yml", schema_prefix=pg_prefix
    )
    upgrade(settings.metadata_url)
    return settings


def pg_rows(sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


def test_sources_load_into_their_named_destinations(settings: Settings) -> None:
    declared = load_declared(settings)
    listed = destinations(settings, declared)
    assert [(d.name, d.kind) for d in listed] == [
        ("warehouse", "duckdb"),
        ("archive", "postgres"),
        ("lake", "duckdb"),
    ]
    assert "archive-pw-77" not in listed[1].shown
    for name in ("archive", "lake"):
        check_connection(declared[name])

    summaries = {s.source: s for s in run_all(settings)}
    # Destinations are written to, never loaded from.
    assert set(summaries) == {"shop", "events", "local"}
    assert summaries["shop"].target == "archive"
    schema = settings.raw_schema("shop")
    assert pg_rows(f"select id from {schema}.orders order by id") == [(1,), (2,)]
    lake = settings.home_dir / "lake.duckdb"
    with duckdb.connect(str(lake), read_only=True) as connection:
        rows = connection.execute(
            f"select id from {settings.raw_schema('events')}.orders"
        ).fetchall()
    assert sorted(rows) == [(1,), (2,)]
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        schemas = {
            r[0]
            for r in connection.execute(
                "select schema_name from information_schema.schemata"
            ).fetchall()
        }
    assert settings.raw_schema("local") in schemas
    assert settings.raw_schema("shop") not in schemas

    # The incremental state belongs to the source's pipeline into its destination.
    db = sqlite3.connect(settings.home_dir / "shop.db")
    db.execute("insert into orders values (3, 30)")
    db.commit()
    db.close()
    again = run_source(settings, "shop", declared["shop"])
    assert again.rows == {"orders": 1}
    with session_scope(settings.metadata_url) as session:
        (state,) = table_states(settings, session, "shop", declared["shop"])
    assert state.cursor_value == "30"
    assert reset_state(settings, "shop", declared["shop"], ["orders"]) == ["orders"]
    assert pg_rows(f"select count(*) from {schema}.orders") == [(3,)]


def test_a_destination_is_not_loaded_and_an_unknown_target_is_named(settings: Settings) -> None:
    declared = load_declared(settings)
    with pytest.raises(IngestError, match="'archive' is a destination"):
        run_source(settings, "archive", declared["archive"])
    wrong = declared["local"].model_copy(update={"target": "nowhere"})
    with pytest.raises(IngestError, match="target 'nowhere' is not a destination") as caught:
        run_source(settings, "local", wrong)
    assert "warehouse, archive, lake" in (caught.value.hint or "")


def test_a_duckdb_destination_must_lie_in_the_data_directories(tmp_path: Path) -> None:
    text = (
        "sources:\n  lake:\n    kind: database\n    destination: true\n"
        "    connection: duckdb:////etc/lake.duckdb\n"
        "  shop:\n    kind: database\n    connection: sqlite:///${HEADWATER_HOME}/s.db\n"
        "    target: lake\n    tables: {orders: }\n"
    )
    (tmp_path / "sources.yml").write_text(text)
    settings = make_settings(tmp_path, sources_file=tmp_path / "sources.yml")
    declared = load_declared(settings)
    with pytest.raises(UnsafeTarget, match="outside the data directories"):
        run_source(settings, "shop", declared["shop"])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("    connection: duckdb:///lake.duckdb\n", "DuckDB connection can only be a destination"),
        (
            "    destination: true\n    connection: mysql+pymysql://u@h/d\n",
            "PostgreSQL URL",
        ),
        (
            "    destination: true\n    connection: postgresql://u@h/d\n    tables: {a: }\n",
            "tables belong(s) to sources",
        ),
        ("    destination: true\n    connection: duckdb:///rel.duckdb\n", "absolute path"),
    ],
)
def test_destination_entries_are_validated(entry: str, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sources(f"sources:\n  x:\n    kind: database\n{entry}", env={})
