"""The refresh's column lineage over a small hand-made project: a real DuckDB warehouse
and a dbt manifest written here (no dbt run), so each rule is checked in isolation."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from catalog.graph import column_graph, resolve
from catalog.models import ColumnLineage, LineageAnalysis
from catalog.refresh import refresh
from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

MODEL = 'select "CustomerID" as CustomerId, Amount as amount from "warehouse"."raw"."orders"'


def write_manifest(settings: Settings, models: dict[str, str]) -> None:
    nodes = {
        f"model.p.{name}": {
            "unique_id": f"model.p.{name}",
            "resource_type": "model",
            "name": name,
            "schema": "marts",
            "database": "warehouse",
            "config": {"materialized": "table"},
            "depends_on": {"nodes": ["source.p.raw.orders"]},
            "raw_code": sql,
            "compiled_code": sql,
            "checksum": {"name": "sha256", "checksum": str(hash(sql))},
            "columns": {},
        }
        for name, sql in models.items()
    }
    source = {
        "unique_id": "source.p.raw.orders",
        "resource_type": "source",
        "source_name": "raw",
        "name": "orders",
        "identifier": "orders",
        "schema": "raw",
        "database": "warehouse",
        "columns": {},
    }
    manifest = {
        "metadata": {"generated_at": f"2026-11-29T10:00:{len(models):02d}Z"},
        "nodes": nodes,
        "sources": {source["unique_id"]: source},
    }
    settings.dbt_target_dir.mkdir(parents=True, exist_ok=True)
    (settings.dbt_target_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    upgrade(settings.metadata_url)
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.execute("create schema raw; create schema marts")
        connection.execute('create table raw.orders ("CustomerID" bigint, "Amount" double)')
        connection.execute(f"create table marts.customers as {MODEL.replace('warehouse.', '')}")
        connection.execute("create table marts.totals as select 1 as n")
    return settings


def test_edges_keep_the_warehouses_spelling_of_mixed_case_columns(settings: Settings) -> None:
    write_manifest(settings, {"customers": MODEL})
    assert refresh(settings).analysed == 1
    with session_scope(settings.metadata_url) as session:
        dataset, column = resolve(session, "marts.customers.CustomerId")
        up = column_graph(session, dataset, column, "up", 3)
        assert [(e.upstream_column, e.downstream_column, e.kind) for e in up.columns] == [
            ("CustomerID", "CustomerId", "copy")  # one identifier to DuckDB
        ]
        raw, amount = resolve(session, "raw.orders.Amount")
        down = column_graph(session, raw, amount, "down", 3)
        assert [(e.downstream_column, e.kind) for e in down.columns] == [("amount", "copy")]


def test_a_model_gone_from_the_project_loses_its_analysis_and_edges(settings: Settings) -> None:
    write_manifest(settings, {"customers": MODEL, "totals": "select 1 as n"})
    first = refresh(settings)
    assert first.analysed == 2
    again = refresh(settings)
    assert again.analysed == 0, "nothing changed: nothing analysed"
    write_manifest(settings, {"totals": "select 1 as n"})
    refresh(settings)
    with session_scope(settings.metadata_url) as session:
        customers = resolve(session, "marts.customers")[0].id
        assert (
            session.scalar(
                sa.select(sa.func.count()).where(LineageAnalysis.dataset_id == customers)
            )
            == 0
        )
        assert (
            session.scalar(
                sa.select(sa.func.count()).where(ColumnLineage.downstream_id == customers)
            )
            == 0
        )
