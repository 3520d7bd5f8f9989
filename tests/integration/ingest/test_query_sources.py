"""``query:`` tables and column selection of database sources: real PostgreSQL and
MariaDB (own databases), real loads into DuckDB, incremental on the query's cursor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ingest.errors import IngestError, SpecError
from ingest.runner import run_source
from ingest.sources import check_connection
from ingest.spec import SourceSpec, parse_sources
from tests.conftest import make_settings
from tests.integration.ingest.warehouses import SOURCE_SERVERS, source_database, warehouse_rows

pytestmark = pytest.mark.integration


@pytest.fixture(params=sorted(SOURCE_SERVERS))
def source_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with source_database(request.param, "hw_query") as url:
        fill(url)
        yield url


def fill(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "create table orders (id int primary key, customer varchar(20), "
                "amount decimal(10,2), secret varchar(20), changed int)"
            )
        )
        connection.execute(
            sa.text(
                "insert into orders values (1, 'ana', 10.00, 'x', 1), (2, 'ana', 5.50, 'y', 2), "
                "(3, 'bea', 7.25, 'z', 3)"
            )
        )
    engine.dispose()


def source(url: str, tables: str) -> SourceSpec:
    text = f"sources:\n  shop:\n    kind: database\n    connection: {url}\n    tables:\n{tables}"
    return parse_sources(text, env={}).sources["shop"]


QUERY = """\
      big_orders:
        query: select id, customer, amount, changed from orders where amount > 6
        primary_key: id
        cursor: changed
      order_ids:
        source_table: orders
        columns: [id, customer]
"""


def test_a_query_and_chosen_columns_load_incrementally(source_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    shop = source(source_url, QUERY)
    check_connection(shop)
    first = run_source(settings, "shop", shop)
    assert first.rows == {"big_orders": 2, "order_ids": 3}
    assert warehouse_rows(
        settings, "shop", "select id, customer, amount from {schema}.big_orders order by id"
    ) == [(1, "ana", 10), (3, "bea", 7.25)]
    columns = warehouse_rows(
        settings,
        "shop",
        "select column_name from information_schema.columns "
        "where table_schema = '{schema}' and table_name = 'order_ids' order by column_name",
    )
    assert [c for (c,) in columns if not c.startswith("_dlt")] == ["customer", "id"]

    engine = sa.create_engine(source_url)
    with engine.begin() as connection:
        connection.execute(sa.text("update orders set amount = 99, changed = 9 where id = 2"))
    engine.dispose()
    second = run_source(settings, "shop", shop)
    assert second.rows["big_orders"] == 1  # only the row past the cursor
    assert warehouse_rows(settings, "shop", "select count(*) from {schema}.big_orders") == [(3,)]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("delete from orders", "a SELECT is expected, found DELETE"),
        ("select 1; select 2", "one SELECT statement expected, found 2 statements"),
        ("select * into copy from orders", "only reads are allowed, found INTO"),
        ("selec id from orders", "not valid"),
    ],
)
def test_a_query_that_is_not_one_select_is_refused(query: str, message: str) -> None:
    tables = f"      t: {{query: '{query}'}}\n"
    with pytest.raises(SpecError, match=message):
        source("postgresql://u@db/x", tables)


def test_a_failing_query_and_missing_columns_are_named(source_url: str) -> None:
    broken = source(source_url, "      t: {query: 'select nope from orders'}\n")
    with pytest.raises(IngestError, match="table 't': the query failed"):
        check_connection(broken)
    missing = source(source_url, "      t: {source_table: orders, columns: [id, custmer]}\n")
    with pytest.raises(IngestError, match=r"no column 'custmer' for its columns.*customer"):
        check_connection(missing)
