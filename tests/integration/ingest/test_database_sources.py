"""The `database` source kind against real PostgreSQL and MariaDB servers, into both warehouses."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from headwater.settings import Settings
from ingest.errors import IngestError
from ingest.runner import run_source
from ingest.sample_data import generate, write_database
from ingest.sources import check_connection
from ingest.spec import parse_sources
from tests.conftest import make_settings
from tests.integration.ingest.warehouses import SOURCE_SERVERS, source_database

pytestmark = pytest.mark.integration

SCALE = 0.05


@pytest.fixture(params=sorted(SOURCE_SERVERS))
def source_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on a real server, filled with the sample shop, dropped afterwards."""
    with source_database(request.param, "hw_src") as url:
        write_database(url, scale=SCALE)
        yield url


def shop_spec(url: str) -> str:
    return f"""
sources:
  shop:
    kind: database
    connection: {url}
    tables:
      customers: {{write_disposition: merge, primary_key: id, cursor: updated_at}}
      orders: {{write_disposition: merge, primary_key: id, cursor: updated_at}}
      products: {{write_disposition: replace}}
"""


def count(settings: Settings, table: str) -> int:
    sql = f"select count(*) from {settings.raw_schema('shop')}.{table}"
    if settings.warehouse == "duckdb":
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
            return int(connection.execute(sql).fetchone()[0])  # type: ignore[index]
    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    with engine.connect() as connection:
        value = connection.execute(sa.text(sql)).scalar_one()
    engine.dispose()
    return int(value)


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_database_source_loads_incrementally(
    source_url: str, warehouse: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    overrides = {}
    if warehouse == "postgres":
        overrides = {
            "warehouse": "postgres",
            "warehouse_dbname": "test",
            "schema_prefix": request.getfixturevalue("pg_prefix"),
        }
    settings = make_settings(tmp_path, **overrides)
    source = parse_sources(shop_spec(source_url), env={}).sources["shop"]
    check_connection(source)

    first = run_source(settings, "shop", source)
    assert first.rows == {"customers": 50, "orders": 250, "products": 10}
    assert count(settings, "orders") == 250

    # Change one order at the source: only it is read again, and merged, not duplicated.
    engine = sa.create_engine(source_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("update orders set status = 'returned', updated_at = :t where id = 1"),
            {"t": "2030-01-01 00:00:00"},
        )
    engine.dispose()
    second = run_source(settings, "shop", source)
    assert second.rows.get("orders") == 1
    assert second.rows.get("customers", 0) == 0
    assert count(settings, "orders") == 250
    assert count(settings, "products") == 10


def test_unreachable_database_error_hides_the_password(tmp_path: Path) -> None:
    spec = shop_spec("postgresql://reader:${SHOP_PASSWORD}@127.0.0.1:1/shop")
    source = parse_sources(spec, env={"SHOP_PASSWORD": "s3cret-pw"}).sources["shop"]
    with pytest.raises(IngestError) as info:
        check_connection(source)
    assert "cannot connect to postgresql+psycopg2://reader:***@127.0.0.1:1/shop" in str(info.value)
    assert "s3cret-pw" not in str(info.value)


def test_missing_table_is_named(tmp_path: Path) -> None:
    generate(tmp_path, scale=SCALE)
    text = shop_spec(f"sqlite:///{tmp_path / 'shop.db'}").replace("products:", "prodcts:")
    with pytest.raises(IngestError, match="has no table\\(s\\) prodcts"):
        check_connection(parse_sources(text, env={}).sources["shop"])


def test_full_refresh_reloads_a_regenerated_source(tmp_path: Path) -> None:
    """A source rebuilt with older timestamps: an incremental load misses it, a full refresh not."""
    settings = make_settings(tmp_path)
    database = tmp_path / "shop.db"
    source = parse_sources(shop_spec(f"sqlite:///{database}"), env={}).sources["shop"]
    write_database(f"sqlite:///{database}", scale=SCALE)
    run_source(settings, "shop", source)
    assert count(settings, "customers") == 50

    write_database(f"sqlite:///{database}", scale=SCALE / 2)  # replaced: 25 customers
    incremental = run_source(settings, "shop", source)
    assert incremental.rows.get("customers", 0) == 0  # nothing newer than the cursor
    assert count(settings, "customers") == 50  # stale rows of the old source remain

    refreshed = run_source(settings, "shop", source, full_refresh=True)
    assert refreshed.rows["customers"] == 25
    assert count(settings, "customers") == 25
    assert count(settings, "orders") == 125


def test_a_load_waits_while_another_process_reads_the_warehouse(tmp_path: Path) -> None:
    """DuckDB admits one process at a time for writing: the load waits, then succeeds."""
    settings = make_settings(tmp_path)
    database = tmp_path / "shop.db"
    write_database(f"sqlite:///{database}", scale=SCALE)
    source = parse_sources(shop_spec(f"sqlite:///{database}"), env={}).sources["shop"]
    run_source(settings, "shop", source)
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; "
            f"c = duckdb.connect({str(settings.duckdb_path)!r}, read_only=True); "
            "print('open', flush=True); time.sleep(4)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        started = time.monotonic()
        summary = run_source(settings, "shop", source, full_refresh=True)
        waited = time.monotonic() - started
    finally:
        reader.wait(timeout=30)
    assert summary.rows["orders"] == 250
    assert waited >= 2.5, "the reader held the file for 4 s; the load must have waited for it"
    assert count(settings, "orders") == 250


def test_the_generator_never_overwrites_tables_it_did_not_make(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'real.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("create table customers (id integer primary key, name text)"))
        connection.execute(sa.text("insert into customers values (1, 'a real customer')"))
    with pytest.raises(IngestError, match=r"already has table\(s\) customers .* refusing"):
        write_database(url, scale=SCALE)
    with engine.connect() as connection:
        assert connection.execute(sa.text("select name from customers")).scalar_one() == (
            "a real customer"
        )
    engine.dispose()


def test_sample_command_fills_a_postgres_database(source_url: str, tmp_path: Path) -> None:
    """`headwater sample --database-url`: a new scale rebuilds it, the same scale is kept."""
    from click.testing import CliRunner

    from headwater.cli import main

    def sample(scale: float) -> str:
        result = CliRunner().invoke(
            main,
            ["sample", "--database-url", source_url, "--scale", str(scale)],
            env={"HEADWATER_HOME": str(tmp_path)},
        )
        assert result.exit_code == 0, result.output
        return result.output

    assert "generated" in sample(SCALE * 2)
    assert (tmp_path / "sample" / "events.jsonl").exists()
    engine = sa.create_engine(source_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("select count(*) from orders")).scalar_one() == 500
    engine.dispose()
    assert "already there, unchanged" in sample(SCALE * 2)
