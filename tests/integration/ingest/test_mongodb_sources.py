"""``mongodb`` sources into both destinations.

No MongoDB server package exists for this machine, so the collections live in
mongomock, a well-kept in-memory implementation of pymongo's client API: the
source module's ``MongoClient`` is replaced by one shared mongomock client. The
loads themselves are real dlt loads into the real DuckDB file and the local
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import mongomock
import pytest
from bson import Decimal128, ObjectId

from ingest.errors import IngestError, SpecError
from ingest.runner import run_source
from ingest.sources import check_connection, mongodb
from ingest.spec import SourceSpec, parse_sources
from tests.integration.ingest.warehouses import WAREHOUSES, warehouse_rows, warehouse_settings

pytestmark = pytest.mark.integration

URL = "mongodb://reader:${MONGO_PASSWORD}@mongo.internal:27017/shop"
PASSWORD = "mongo-secret-pw"


class SharedClient(mongomock.MongoClient):  # type: ignore[misc]
    """One in-memory server for every client the source opens; closing keeps the data."""

    def close(self) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[mongomock.MongoClient]:
    client = SharedClient("mongodb://mongo.internal:27017/shop", tz_aware=True)
    monkeypatch.setattr(mongodb, "MongoClient", lambda *args, **kwargs: client)
    yield client


def spec(tables: str, database: str = "") -> SourceSpec:
    head = f"sources:\n  shop:\n    kind: mongodb\n    connection: {URL}\n"
    text = f"{head}{database}    tables:\n{tables}"
    return parse_sources(text, env={"MONGO_PASSWORD": PASSWORD}).sources["shop"]


def orders(count: int, start: int = 0) -> list[dict[str, Any]]:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [
        {
            "_id": ObjectId(),
            "number": i,
            "total": Decimal128(f"{i}.25"),
            "placed_at": base + dt.timedelta(hours=i),
            "customer": {"name": f"c{i}", "address": {"city": "Lyon"}},
            "items": [{"sku": f"s{i}", "qty": 1}, {"sku": "x", "qty": 2}],
        }
        for i in range(start, start + count)
    ]


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_collections_load_flattened_with_child_tables_and_incrementally(
    tmp_path: Path, warehouse: str, request: pytest.FixtureRequest, server: Any
) -> None:
    server.shop.orders.insert_many(orders(5))
    settings = warehouse_settings(tmp_path, warehouse, request)
    source = spec("      orders: {cursor: placed_at}\n")

    first = run_source(settings, "shop", source)
    assert first.rows["orders"] == 5, first.rows
    assert first.rows["orders__items"] == 10
    rows = warehouse_rows(
        settings,
        "shop",
        "select number, total, customer__name, customer__address__city "
        "from {schema}.orders order by number",
    )
    assert rows[0] == (0, Decimal("0.25"), "c0", "Lyon")
    assert len(rows) == 5
    assert warehouse_rows(settings, "shop", "select count(*) from {schema}.orders__items") == [
        (10,)
    ]

    # A changed document (its cursor moves) and two new ones: merged on _id, none twice.
    later = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    server.shop.orders.update_one(
        {"number": 4}, {"$set": {"customer.name": "renamed", "placed_at": later}}
    )
    server.shop.orders.insert_many(orders(2, start=5))
    second = run_source(settings, "shop", source)
    assert second.rows["orders"] == 3  # from the last cursor value on: 4, 5, 6
    assert warehouse_rows(settings, "shop", "select count(*) from {schema}.orders") == [(7,)]
    assert warehouse_rows(
        settings, "shop", "select customer__name from {schema}.orders where number = 4"
    ) == [("renamed",)]


def test_a_named_database_and_collection_and_the_checks(server: Any) -> None:
    server.crm.people.insert_one({"_id": 1, "name": "Ana", "changed": 3})
    source = spec(
        "      contacts: {source_table: people, cursor: changed}\n",
        database="    database: crm\n",
    )
    check_connection(source)
    wrong = spec("      contacts: {source_table: people, cursor: changd}\n", "    database: crm\n")
    with pytest.raises(IngestError, match="changd"):
        check_connection(wrong)
    missing = spec("      nowhere: {}\n", "    database: crm\n")
    with pytest.raises(
        IngestError, match=r"\*\*\*@mongo.internal.* has no collection\(s\) nowhere"
    ):
        check_connection(missing)


def test_an_unreachable_server_names_it_without_the_password() -> None:
    source = parse_sources(
        "sources:\n  m:\n    kind: mongodb\n    connection: mongodb://u:${P}@127.0.0.1:1/db\n"
        "    tables: {t: }\n",
        env={"P": PASSWORD},
    ).sources["m"]
    original = mongodb.SERVER_TIMEOUT_MS
    mongodb.SERVER_TIMEOUT_MS = 300
    try:
        with pytest.raises(IngestError) as info:
            check_connection(source)
    finally:
        mongodb.SERVER_TIMEOUT_MS = original
    assert "cannot connect to mongodb://u:***@127.0.0.1:1/db" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_mongodb_source_needs_a_mongodb_url() -> None:
    with pytest.raises(SpecError, match="a 'mongodb' source needs a 'connection' URL"):
        parse_sources(
            "sources:\n  m:\n    kind: mongodb\n    connection: postgresql://h/db\n"
            "    tables: {t: }\n",
            env={},
        )
