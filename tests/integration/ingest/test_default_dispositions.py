"""With no write_disposition, loading twice never duplicates a row: real dlt loads.

A table whose primary key the database declares is merged on it; a table with no
key is replaced; a file with a declared key is merged.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest

from ingest.runner import run_source
from ingest.spec import parse_sources
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def _count(path: Path, table: str) -> int:
    with duckdb.connect(str(path), read_only=True) as connection:
        row = connection.execute(f"select count(*) from {table}").fetchone()
    return int(row[0]) if row else 0


def test_loading_twice_with_defaults_duplicates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table keyed (id integer primary key, name text)")
        connection.execute("create table loose (name text, amount integer)")
        connection.executemany("insert into keyed values (?, ?)", [(1, "a"), (2, "b")])
        connection.executemany("insert into loose values (?, ?)", [("x", 1), ("y", 2)])
    (tmp_path / "rates.csv").write_text("code,rate\nEUR,1.0\nUSD,1.1\n")
    text = (
        "sources:\n"
        "  shop:\n"
        "    kind: database\n"
        f"    connection: sqlite:///{db}\n"
        "    tables:\n"
        "      keyed:\n"
        "      loose:\n"
        "  rates:\n"
        "    kind: file\n"
        "    tables:\n"
        f"      rates: {{path: '{tmp_path / 'rates.csv'}', primary_key: code}}\n"
    )
    sources = parse_sources(text, env={}).sources
    settings = make_settings(tmp_path / "home", data_dirs=[tmp_path])
    for _ in range(2):
        run_source(settings, "shop", sources["shop"])
        run_source(settings, "rates", sources["rates"])
    with sqlite3.connect(db) as connection:
        connection.execute("update keyed set name = 'changed' where id = 1")
    run_source(settings, "shop", sources["shop"])

    warehouse = settings.duckdb_path
    assert _count(warehouse, "raw_shop.keyed") == 2
    assert _count(warehouse, "raw_shop.loose") == 2
    assert _count(warehouse, "raw_rates.rates") == 2
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        names = connection.execute("select name from raw_shop.keyed order by id").fetchall()
    assert names == [("changed",), ("b",)]
