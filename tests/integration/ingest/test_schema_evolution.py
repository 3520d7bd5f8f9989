"""Schema evolution per source: new columns and types taken in and recorded as
schema-change events, or refused by a frozen contract with the old rows intact.
Real dlt loads of a real SQLite database and JSON Lines file into DuckDB."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.errors import IngestError
from ingest.original_names import original_names
from ingest.runner import run_source
from ingest.schema_events import recent_changes
from ingest.spec import SourceSpec, parse_sources
from tests.conftest import make_settings
from tests.integration.ingest.warehouses import warehouse_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    result = make_settings(tmp_path)
    upgrade(result.metadata_url)
    return result


def database(path: Path, contract: str = "") -> SourceSpec:
    extra = f"    schema_contract: {contract}\n" if contract else ""
    text = (
        f"sources:\n  crm:\n    kind: database\n    connection: sqlite:///{path}\n{extra}"
        "    tables:\n      people: {primary_key: id}\n"
    )
    return parse_sources(text, env={}).sources["crm"]


def changes(settings: Settings, source: str) -> list[tuple[str, str | None, str, str | None]]:
    with session_scope(settings.metadata_url) as session:
        return [
            (c.table, c.column, c.change, c.new_type)
            for c in reversed(recent_changes(session, source))
        ]


def test_new_columns_are_taken_in_and_recorded(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table people (id integer primary key, name text)")
        connection.execute("insert into people values (1, 'Ana')")
    run_source(settings, "crm", database(path))
    with sqlite3.connect(path) as connection:
        connection.execute("alter table people add column email text")
        connection.execute("insert into people values (2, 'Bea', 'bea@example.com')")
    run_source(settings, "crm", database(path))
    assert changes(settings, "crm") == [
        ("people", None, "table_added", None),
        ("people", "email", "column_added", "text"),
    ]
    rows = warehouse_rows(settings, "crm", "select id, email from {schema}.people order by id")
    assert rows == [(1, None), (2, "bea@example.com")]


def test_a_frozen_contract_refuses_a_new_column_and_keeps_the_rows(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table people (id integer primary key, name text)")
        connection.execute("insert into people values (1, 'Ana')")
    run_source(settings, "crm", database(path, "freeze"))
    with sqlite3.connect(path) as connection:
        connection.execute("alter table people add column email text")
        connection.execute("update people set name = 'Ana B.', email = 'a@example.com'")
    with pytest.raises(IngestError) as info:
        run_source(settings, "crm", database(path, "freeze"))
    message = str(info.value)
    assert "table 'people' got a new column" in message
    assert "schema_contract 'freeze' refuses" in message
    rows = warehouse_rows(settings, "crm", "select id, name from {schema}.people")
    assert rows == [(1, "Ana")]


def test_a_changed_type_is_recorded_with_both_types(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "events.json"
    events.write_text(json.dumps([{"id": 1, "score": 10}]))
    text = (
        "sources:\n  web:\n    kind: file\n    tables:\n"
        f"      events: {{path: {events}, write_disposition: append}}\n"
    )
    source = parse_sources(text, env={}).sources["web"]
    run_source(settings, "web", source)
    events.write_text(json.dumps([{"id": 2, "score": "high"}]))
    run_source(settings, "web", source)
    with session_scope(settings.metadata_url) as session:
        change = next(c for c in recent_changes(session, "web") if c.change == "type_changed")
    assert (change.table, change.column, change.old_type, change.new_type) == (
        "events",
        "score",
        "bigint",
        "text",
    )


def test_a_type_clash_in_arrow_data_fails_with_the_databases_line(
    settings: Settings, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"id": 1, "score": 10}) + "\n")
    text = (
        "sources:\n  web:\n    kind: file\n    tables:\n"
        f"      events: {{path: {events}, write_disposition: append}}\n"
    )
    source = parse_sources(text, env={}).sources["web"]
    run_source(settings, "web", source)
    events.write_text(json.dumps({"id": 2, "score": "high"}) + "\n")
    with pytest.raises(IngestError) as info:
        run_source(settings, "web", source)
    assert str(info.value).endswith(
        "Conversion Error: Could not convert string 'high' to INT64 when casting from source "
        "column score"
    )
    assert "Traceback" not in str(info.value)
    rows = warehouse_rows(settings, "web", "select id, score from {schema}.events")
    assert rows == [(1, 10)]


def test_renamed_columns_keep_their_original_names(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "crm.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            'create table people (id integer primary key, "CustomerID" int, "Order Date" text)'
        )
        connection.execute("insert into people values (1, 7, '2026-01-01')")
    run_source(settings, "crm", database(path))
    rows = warehouse_rows(settings, "crm", "select customer_id, order_date from {schema}.people")
    assert rows == [(7, "2026-01-01")]
    with session_scope(settings.metadata_url) as session:
        assert original_names(session, "crm") == {
            "people": {"customer_id": "CustomerID", "order_date": "Order Date"}
        }
