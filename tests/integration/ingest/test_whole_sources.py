"""A source declared without ``tables`` loads every table (database) or collection
(mongodb) it has at load time, under warehouse names, the originals remembered.

MongoDB: no server package exists for this machine, so the collections live in
mongomock (a well-kept in-memory implementation of pymongo's client API); the
loads are real dlt loads into the real DuckDB file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mongomock
import pytest
import sqlalchemy as sa

from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.errors import IngestError, SpecError
from ingest.runner import run_source
from ingest.sources import check_connection, mongodb, with_tables
from ingest.spec import parse_sources
from ingest.state import loaded_tables, table_states
from tests.conftest import make_settings
from tests.integration.ingest.warehouses import (
    SOURCE_SERVERS,
    source_database,
    warehouse_rows,
    warehouse_settings,
)

pytestmark = pytest.mark.integration


def whole(kind: str, url: str) -> Any:
    text = f"sources:\n  shop:\n    kind: {kind}\n    connection: {url}\n"
    return parse_sources(text, env={}).sources["shop"]


@pytest.mark.parametrize("server", sorted(SOURCE_SERVERS))
def test_every_table_of_a_database_loads_and_new_ones_join(
    server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = warehouse_settings(tmp_path, "postgres" if server == "mysql" else "duckdb", request)
    upgrade(settings.metadata_url)
    with source_database(server, "hw_whole") as url:
        engine = sa.create_engine(url)
        quote = '"' if server == "postgres" else "`"
        with engine.begin() as connection:
            connection.execute(sa.text("create table orders (id int primary key, total int)"))
            connection.execute(sa.text(f"create table {quote}Line Items{quote} (sku text)"))
            connection.execute(sa.text("insert into orders values (1, 10), (2, 20)"))
            connection.execute(sa.text(f"insert into {quote}Line Items{quote} values ('a')"))
        source = whole("database", url)
        assert source.whole and not source.tables
        check_connection(source)

        first = run_source(settings, "shop", source)
        assert first.rows == {"line_items": 1, "orders": 2}
        assert warehouse_rows(
            settings, "shop", "select id, total from {schema}.orders order by id"
        ) == [
            (1, 10),
            (2, 20),
        ]
        assert loaded_tables(settings, "shop") == ["line_items", "orders"]

        with engine.begin() as connection:
            connection.execute(sa.text("create table refunds (id int primary key)"))
            connection.execute(sa.text("insert into refunds values (7)"))
            connection.execute(sa.text("update orders set total = 21 where id = 2"))
        engine.dispose()
        second = run_source(settings, "shop", source)
        assert second.rows["refunds"] == 1
        # The reflected primary key merges: no duplicate of order 2.
        assert warehouse_rows(
            settings, "shop", "select id, total from {schema}.orders order by id"
        ) == [
            (1, 10),
            (2, 21),
        ]
        with session_scope(settings.metadata_url) as session:
            states = {state.table for state in table_states(settings, session, "shop", source)}
        assert states == {"line_items", "orders", "refunds"}


def test_names_that_collide_after_normalising_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "clash.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        connection.execute(sa.text('create table "Line Items" (id int)'))
        connection.execute(sa.text("create table line_items (id int)"))
    engine.dispose()
    with pytest.raises(
        IngestError, match="'Line Items' and 'line_items' would both load as table 'line_items'"
    ):
        with_tables(whole("database", f"sqlite:///{db}"))


def test_an_empty_database_says_there_is_nothing_to_load(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    sa.create_engine(f"sqlite:///{db}").connect().close()
    with pytest.raises(IngestError, match="no tables to load"):
        with_tables(whole("database", f"sqlite:///{db}"))


def test_only_databases_and_mongodb_may_leave_tables_out() -> None:
    with pytest.raises(SpecError, match="a 'file' source needs 'tables'"):
        parse_sources("sources:\n  web:\n    kind: file\n", env={})


class SharedClient(mongomock.MongoClient):  # type: ignore[misc]
    """One in-memory server for every client the source opens; closing keeps the data."""

    def close(self) -> None:
        pass


def test_every_collection_of_a_mongodb_database_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = SharedClient("mongodb://mongo.internal:27017/shop", tz_aware=True)
    monkeypatch.setattr(mongodb, "MongoClient", lambda *args, **kwargs: client)
    client.shop.orders.insert_many([{"number": 1}, {"number": 2}])
    client.shop["Web-Events"].insert_one({"kind": "view"})
    settings: Settings = make_settings(tmp_path)
    summary = run_source(settings, "shop", whole("mongodb", "mongodb://mongo.internal/shop"))
    assert summary.rows == {"orders": 2, "web_events": 1}


def test_dagster_names_the_tables_of_a_whole_source_after_its_first_load(tmp_path: Path) -> None:
    from dagster import AssetKey, DagsterInstance, materialize

    from orchestration.assets import dlt_source_assets

    db = tmp_path / "shop.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as connection:
        connection.execute(sa.text("create table orders (id int primary key)"))
        connection.execute(sa.text("create table refunds (id int primary key)"))
        connection.execute(sa.text("insert into orders values (1)"))
    engine.dispose()
    settings = make_settings(tmp_path)
    upgrade(settings.metadata_url)
    source = whole("database", f"sqlite:///{db}")

    before = dlt_source_assets(settings, "shop", source)
    assert set(before.keys) == {AssetKey(["shop", "all_tables"])}
    with DagsterInstance.ephemeral() as instance:
        assert materialize([before], instance=instance).success

    after = dlt_source_assets(settings, "shop", source)
    assert set(after.keys) == {AssetKey(["shop", "orders"]), AssetKey(["shop", "refunds"])}
    with DagsterInstance.ephemeral() as instance:
        result = materialize([after], instance=instance, selection=[AssetKey(["shop", "orders"])])
    assert result.success
    assert warehouse_rows(settings, "shop", "select id from {schema}.orders") == [(1,)]
