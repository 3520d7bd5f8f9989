"""Loads that leave the warehouse are in the lineage too: a declared source whose
``target`` is another destination, and a job that loads into one, each show as
source table → ``destination`` dataset, named after the destination."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import select

from catalog.graph import table_graph
from catalog.models import Dataset, LineageEdge
from headwater.db import session_scope
from headwater.migrate import upgrade
from orchestration.models import Job
from orchestration.origins import refresh_catalog, source_flows
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

SOURCES = """
sources:
  lake:
    kind: database
    destination: true
    connection: duckdb:///${HEADWATER_HOME}/lake.duckdb
  events:
    kind: database
    connection: sqlite:///${HEADWATER_HOME}/shop.db
    target: lake
    tables:
      orders: {primary_key: id}
  shop:
    kind: database
    connection: sqlite:///${HEADWATER_HOME}/shop.db
    tables:
      orders: {primary_key: id}
      customers: {primary_key: id}
"""


def test_loads_to_other_destinations_are_edges_of_the_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.execute("create table orders (id integer primary key)")
        db.execute("create table customers (id integer primary key)")
    (tmp_path / "sources.yml").write_text(SOURCES)
    settings = make_settings(tmp_path, sources_file=tmp_path / "sources.yml")
    duckdb.connect(str(settings.duckdb_path)).close()
    upgrade(settings.metadata_url)
    with session_scope(settings.metadata_url) as session:
        session.add(
            Job(
                name="Customers to the lake",
                owner_id=1,
                source="shop",
                target="lake",
                tables=["customers"],
                timezone="UTC",
                retries=0,
                retry_delay_seconds=60,
                enabled=True,
                shared=False,
            )
        )
        session.add(
            Job(
                name="Into the warehouse",
                owner_id=1,
                source="shop",
                target="warehouse",
                tables=["orders"],
                timezone="UTC",
                retries=0,
                retry_delay_seconds=60,
                enabled=True,
                shared=False,
            )
        )
    flows = {(f.source, f.tables, f.target, f.by.split(" (")[0]) for f in source_flows(settings)}
    assert flows == {
        ("events", ("orders",), "lake", "sources.yml"),
        ("shop", ("customers",), "lake", "job 1"),
    }

    refresh_catalog(settings)
    with session_scope(settings.metadata_url) as session:
        kinds = dict(session.execute(select(Dataset.name, Dataset.kind)).tuples().all())
        assert kinds["lake.raw_events.orders"] == "destination"
        assert kinds["lake.raw_shop.customers"] == "destination"
        assert kinds["source.shop.customers"] == "source"
        customers = session.scalars(
            select(Dataset).where(Dataset.name == "lake.raw_shop.customers")
        ).one()
        assert "loaded by job 1 (Customers to the lake)" in (customers.description or "")
        names = {d.id: d.name for d in session.scalars(select(Dataset))}
        edges = {
            (names[e.upstream_id], names[e.downstream_id], e.origin)
            for e in session.scalars(select(LineageEdge))
        }
        assert ("source.events.orders", "lake.raw_events.orders", "load") in edges
        assert ("source.shop.customers", "lake.raw_shop.customers", "load") in edges
        source = session.scalars(
            select(Dataset).where(Dataset.name == "source.shop.customers")
        ).one()
        downstream = table_graph(session, source, "down", 2)
        assert "lake.raw_shop.customers" in {n.name for n in downstream.nodes}
