"""Sources in their two homes (sources.yml and the metadata store, credentials encrypted),
and the per-table state a user sees: cursor, last load, reset.

A migrated SQLite metadata store in the test's own HEADWATER_HOME; real dlt loads of a
SQLite source into a DuckDB warehouse.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from headwater.db import get_engine, session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.errors import IngestError, SpecError
from ingest.runner import run_source
from ingest.spec import SourceSpec, parse_sources
from ingest.state import reset_state, table_states
from ingest.store import (
    ReadOnlySource,
    SourceExists,
    UnreadableSource,
    all_sources,
    create_source,
    delete_source,
    get_source,
    mask_url,
    update_source,
)
from ingest.targets import UnsafeTarget
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

PASSWORD = "s3cret"
CONNECTION = f"postgresql://reader:{PASSWORD}@127.0.0.1:5432/test"
SOURCES_YML = """\
sources:
  web:
    kind: file
    tables:
      events: {path: events.csv, primary_key: id}
"""


def database_source(connection: str = CONNECTION) -> dict[str, Any]:
    return {
        "kind": "database",
        "description": "The shop",
        "connection": connection,
        "tables": {"orders": {"primary_key": "id", "cursor": "updated_at"}},
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "events.csv").write_text("id,kind\n1,view\n2,click\n")
    (tmp_path / "sources.yml").write_text(SOURCES_YML)
    settings = make_settings(tmp_path, sources_file=tmp_path / "sources.yml")
    upgrade(settings.metadata_url)
    return settings


def create(settings: Settings, name: str, data: dict[str, Any]) -> None:
    with session_scope(settings.metadata_url) as session:
        create_source(session, settings, name, data)


def raw_row(settings: Settings, name: str) -> tuple[str, str | None] | None:
    """The stored ``config`` and ``secrets`` columns, as the database holds them."""
    with get_engine(settings.metadata_url).connect() as connection:
        row = connection.execute(
            sa.text("select config, secrets from sources where name = :n"), {"n": name}
        ).first()
    return None if row is None else (str(row[0]), row[1])


# --- two homes ---------------------------------------------------------------------


def test_a_created_source_keeps_its_connection_encrypted(settings: Settings) -> None:
    create(settings, "shop", database_source())

    row = raw_row(settings, "shop")
    assert row is not None
    config, secrets = row
    assert PASSWORD not in config
    assert "connection" not in json.loads(config)
    assert json.loads(config)["tables"]["orders"]["cursor"] == "updated_at"
    assert secrets is not None
    assert PASSWORD not in secrets
    assert "reader" not in secrets

    sources = all_sources(settings)
    assert list(sources) == ["web", "shop"]  # the file's first, then the stored ones
    assert sources["web"].origin == "file"
    assert sources["web"].spec.tables["events"].path == str(settings.home_dir / "events.csv")
    assert sources["shop"].origin == "store"
    assert sources["shop"].spec.connection == CONNECTION
    assert sources["shop"].created_at is not None


def test_a_name_declared_in_both_homes_is_an_error_naming_both(settings: Settings) -> None:
    create(settings, "shop", database_source())
    text = settings.sources_file.read_text()
    settings.sources_file.write_text(
        text + "  shop:\n    kind: file\n    tables:\n      orders: {path: events.csv}\n"
    )
    with pytest.raises(SpecError) as info:
        all_sources(settings)
    message = str(info.value)
    assert "source 'shop' is declared twice" in message
    assert str(settings.sources_file) in message
    assert "metadata store" in message
    assert "headwater source delete" in message  # the way out


def test_a_taken_name_cannot_be_created_again(settings: Settings) -> None:
    with pytest.raises(SourceExists, match=r"'web' already exists \(in sources.yml\)"):
        create(settings, "web", database_source())
    create(settings, "shop", database_source())
    with pytest.raises(SourceExists, match=r"'shop' already exists \(in the metadata store\)"):
        create(settings, "shop", database_source())
    assert raw_row(settings, "web") is None


def test_invalid_fields_are_named_as_the_api_spells_them(settings: Settings) -> None:
    data = database_source()
    data["tables"] = {"orders": {"write_disposition": "upsert", "primery_key": "id"}}
    with pytest.raises(SpecError) as info:
        create(settings, "shop", data)
    message = str(info.value)
    lines = message.splitlines()
    assert any(line.startswith("tables.orders.writeDisposition: ") for line in lines), message
    assert "'upsert'" in message
    assert "tables.orders.primeryKey: unknown field" in message
    for internal in ("TableSpec", "SourceSpec", "pydantic", "literal_error", "write_disposition"):
        assert internal not in message
    assert raw_row(settings, "shop") is None


def test_an_invalid_name_or_an_unsafe_target_is_not_stored(settings: Settings) -> None:
    with pytest.raises(SpecError, match="source name 'Shop' must start with a lower case"):
        create(settings, "Shop", database_source())
    with pytest.raises(UnsafeTarget, match="link-local or cloud-metadata"):
        create(settings, "meta", database_source("postgresql://u:pw@169.254.169.254/db"))
    assert list(all_sources(settings)) == ["web"]


@pytest.mark.parametrize("form", ["mask_url output", "typed ***"])
def test_sending_the_mask_back_keeps_the_stored_password(settings: Settings, form: str) -> None:
    create(settings, "shop", database_source())
    masked = (
        mask_url(CONNECTION)
        if form == "mask_url output"
        else "postgresql://reader:***@127.0.0.1:5432/test"
    )
    assert PASSWORD not in masked
    with session_scope(settings.metadata_url) as session:
        before, after = update_source(
            session, settings, "shop", {"connection": masked, "description": "Orders"}
        )
    assert before.spec.description == "The shop"
    assert after.spec.connection == CONNECTION

    with session_scope(settings.metadata_url) as session:
        stored = get_source(settings, session, "shop")
    assert stored.spec.connection == CONNECTION
    assert stored.spec.description == "Orders"
    row = raw_row(settings, "shop")
    assert row is not None and PASSWORD not in (row[1] or "")


def test_the_mask_is_not_accepted_for_another_host(settings: Settings) -> None:
    create(settings, "shop", database_source())
    before = raw_row(settings, "shop")
    moved = mask_url(CONNECTION).replace("127.0.0.1", "10.20.30.40")
    with (
        pytest.raises(SpecError, match="host, port, user or parameters changed"),
        session_scope(settings.metadata_url) as session,
    ):
        update_source(session, settings, "shop", {"connection": moved})
    assert raw_row(settings, "shop") == before


def test_a_new_password_replaces_the_stored_one(settings: Settings) -> None:
    create(settings, "shop", database_source())
    changed = CONNECTION.replace(PASSWORD, "n3w-pw")
    with session_scope(settings.metadata_url) as session:
        update_source(session, settings, "shop", {"connection": changed})
    assert all_sources(settings)["shop"].spec.connection == changed


def test_file_sources_are_read_only(settings: Settings) -> None:
    with session_scope(settings.metadata_url) as session:
        with pytest.raises(ReadOnlySource, match=r"'web' is declared in sources\.yml"):
            update_source(session, settings, "web", {"description": "x"})
        with pytest.raises(ReadOnlySource, match=r"'web' is declared in sources\.yml"):
            delete_source(session, settings, "web")
    assert "web" in all_sources(settings)


def test_delete_removes_a_stored_source(settings: Settings) -> None:
    create(settings, "shop", database_source())
    with session_scope(settings.metadata_url) as session:
        deleted = delete_source(session, settings, "shop")
    assert deleted is not None
    assert deleted.spec.connection == CONNECTION
    assert raw_row(settings, "shop") is None
    assert list(all_sources(settings)) == ["web"]


def test_mask_url_hides_the_password_and_secret_parameters() -> None:
    shown = mask_url(f"{CONNECTION}?sslpassword=x9y8&application_name=headwater&api_key=k7")
    assert PASSWORD not in shown
    assert "x9y8" not in shown
    assert "k7" not in shown
    parsed = make_url(shown)
    assert parsed.password == "***"
    assert parsed.query["sslpassword"] == "***"
    assert parsed.query["api_key"] == "***"
    assert parsed.query["application_name"] == "headwater"
    assert (parsed.username, parsed.host, parsed.port, parsed.database) == (
        "reader",
        "127.0.0.1",
        5432,
        "test",
    )
    assert mask_url("not a url") == "***"


def test_the_mask_reads_as_stars_not_percent_escapes() -> None:
    shown = mask_url(f"{CONNECTION}?sslpassword=x")
    assert shown == "postgresql://reader:***@127.0.0.1:5432/test?sslpassword=***"


# --- incremental state and load history ---------------------------------------------


def shop_database(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("create table items (id integer primary key, name text, version int)")
        connection.execute("create table tags (id integer primary key, label text, version int)")
        connection.executemany(
            "insert into items values (?, ?, ?)", [(1, "a", 1), (2, "b", 5), (3, "c", 3)]
        )
        connection.executemany("insert into tags values (?, ?, ?)", [(1, "x", 7), (2, "y", 2)])
    connection.close()


def loaded_source(path: Path) -> SourceSpec:
    text = f"""\
sources:
  src:
    kind: database
    connection: sqlite:///{path}
    tables:
      items: {{primary_key: id, cursor: version}}
      tags: {{primary_key: id, cursor: version}}
"""
    return parse_sources(text, env={}).sources["src"]


def states(settings: Settings, source: SourceSpec) -> dict[str, Any]:
    with session_scope(settings.metadata_url) as session:
        return {s.table: s for s in table_states(settings, session, "src", source)}


def warehouse_count(settings: Settings, table: str) -> int:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        row = connection.execute(f"select count(*) from {settings.raw_schema('src')}.{table}")
        return int(row.fetchone()[0])  # type: ignore[index]


def test_cursor_last_load_and_reset_are_visible_per_table(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade(settings.metadata_url)
    database = tmp_path / "src.db"
    shop_database(database)
    source = loaded_source(database)

    before = states(settings, source)
    assert before["items"].cursor == "version"
    assert before["items"].cursor_value is None
    assert before["items"].last_load is None
    with pytest.raises(IngestError, match="never loaded"):
        reset_state(settings, "src", source, ["items"])

    first = run_source(settings, "src", source)
    assert first.rows == {"items": 3, "tags": 2}
    after_first = states(settings, source)
    assert after_first["items"].cursor_value == "5"
    assert after_first["tags"].cursor_value == "7"
    items_load = after_first["items"].last_load
    assert items_load is not None
    assert (items_load.status, items_load.rows, items_load.error) == ("loaded", 3, None)
    assert items_load.load_id == first.load_id
    assert items_load.finished_at.tzinfo is not None

    with sqlite3.connect(database) as connection:
        connection.execute("insert into items values (4, 'd', 6)")
    connection.close()
    second = run_source(settings, "src", source)
    assert second.rows == {"items": 1, "tags": 0}
    after_second = states(settings, source)
    assert after_second["items"].cursor_value == "6"
    tags_load = after_second["tags"].last_load
    assert tags_load is not None
    assert (tags_load.status, tags_load.rows) == ("loaded", 0)  # a table with no new rows
    assert after_second["tags"].cursor_value == "7"

    assert reset_state(settings, "src", source, ["items"]) == ["items"]
    after_reset = states(settings, source)
    assert after_reset["items"].cursor_value is None
    assert after_reset["tags"].cursor_value == "7"  # the other table keeps its place

    third = run_source(settings, "src", source)
    assert third.rows == {"items": 4, "tags": 0}  # every row of items read again
    assert warehouse_count(settings, "items") == 4  # merged, not duplicated
    assert states(settings, source)["items"].cursor_value == "6"


def test_a_failed_load_is_recorded_as_failed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    upgrade(settings.metadata_url)
    database = tmp_path / "src.db"
    shop_database(database)
    source = loaded_source(database)
    run_source(settings, "src", source)

    with sqlite3.connect(database) as connection:
        connection.execute("drop table tags")
    connection.close()
    with pytest.raises(IngestError) as info:
        run_source(settings, "src", source)

    tags_load = states(settings, source)["tags"].last_load
    assert tags_load is not None
    assert tags_load.status == "failed"
    assert tags_load.rows == 0
    assert tags_load.error == info.value.message
    assert tags_load.error and "src" in tags_load.error


def test_a_source_whose_key_was_lost_is_skipped_named_and_still_deletable(
    settings: Settings,
) -> None:
    create(settings, "shop", database_source())
    keys = settings.home_dir / "secret_keys"
    keys.write_text(Fernet.generate_key().decode() + "\n")  # the old key is gone
    assert list(all_sources(settings)) == ["web"]  # the others still load
    with session_scope(settings.metadata_url) as session:
        with pytest.raises(
            UnreadableSource, match="cannot decrypt the credentials of source 'shop'"
        ):
            get_source(settings, session, "shop")
        assert delete_source(session, settings, "shop") is None
    assert raw_row(settings, "shop") is None


def test_the_sources_file_is_parsed_once_per_version(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.store

    parsed: list[Path] = []
    real = ingest.store.load_sources

    def counting(path: Path, env: dict[str, str]) -> object:
        parsed.append(path)
        return real(path, env)

    monkeypatch.setattr(ingest.store, "load_sources", counting)
    ingest.store._parsed_sources_file.cache_clear()
    first = all_sources(settings)
    assert all_sources(settings) == first
    assert len(parsed) == 1
    text = settings.sources_file.read_text()
    settings.sources_file.write_text(text.replace("web:", "web2:"))
    assert "web2" in all_sources(settings)  # an edit is seen at once
    assert len(parsed) == 2
