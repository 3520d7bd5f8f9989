"""A database source's tables reflected ahead, in the background: used when that
reflection covers every table, else reflected again; its failure is the attempt's."""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from pathlib import Path

import pytest

from ingest.sources import database
from ingest.spec import parse_sources

pytestmark = pytest.mark.unit


def test_resources_take_the_reflection_done_ahead_or_reflect_again(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as connection:
        connection.execute("create table orders (id integer primary key, total text)")
        connection.execute("create table notes (body text)")
    text = (
        f"sources:\n  shop:\n    kind: database\n    connection: sqlite:///{path}\n"
        "    tables:\n      orders: {}\n      notes: {}\n"
    )
    spec = parse_sources(text, env={}).sources["shop"]

    ahead = database.reflect_ahead(spec, ["orders", "notes"])
    assert ahead is not None
    assert ahead.result()[1] == {"orders": ("id",), "notes": ()}
    assert database.reflect_ahead(spec, ["orders", "nowhere"]) is None  # told later

    failed: Future[database.Reflected] = Future()
    failed.set_exception(ConnectionError("connection cut"))
    partial: Future[database.Reflected] = Future()
    partial.set_result(({}, {"orders": ("id",)}))
    with pytest.raises(ConnectionError, match="connection cut"):  # as if reflected here
        database.resources(spec, ["orders", "notes"], ahead=failed)
    for given in (ahead, partial, None):
        built = database.resources(spec, ["orders", "notes"], ahead=given)
        # The keys decide the defaults: merged on the primary key, else replaced.
        assert [(r.name, r.write_disposition) for r in built] == [
            ("orders", "merge"),
            ("notes", "replace"),
        ]
