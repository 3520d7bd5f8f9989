from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog.artifacts import DbtArtifacts
from catalog.extract import (
    Edge,
    dbt_lineage,
    dbt_relations,
    dbt_schemas,
    dlt_lineage,
    is_raw_schema,
    kind_of,
    summarise_tests,
)
from catalog.freshness import freshness_status, period_seconds
from catalog.origins import SourceOrigin
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def node(kind: str, schema: str, name: str, deps: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "resource_type": kind,
        "schema": schema,
        "name": name,
        "depends_on": {"nodes": deps},
        "config": {"materialized": extra.pop("materialized", "view")},
        "description": extra.pop("description", ""),
        "columns": extra.pop("columns", {}),
        **extra,
    }


MANIFEST = {
    "sources": {
        "source.p.shop.orders": {
            "resource_type": "source",
            "schema": "raw_shop",
            "name": "orders",
            "identifier": "orders",
            "description": "raw orders",
        },
    },
    "nodes": {
        "model.p.stg_orders": node(
            "model",
            "staging",
            "stg_orders",
            ["source.p.shop.orders"],
            description="Orders, cleaned.",
            columns={"order_id": {"description": "Primary key."}},
        ),
        "model.p.int_orders": node(
            "model", "intermediate", "int_orders", ["model.p.stg_orders"], materialized="ephemeral"
        ),
        "model.p.orders": node(
            "model", "marts", "orders", ["model.p.int_orders"], alias="fct_orders"
        ),
        "test.p.unique_orders": node("test", "marts", "unique", ["model.p.orders"]),
    },
}


def test_edges_pass_through_ephemeral_models_and_skip_tests() -> None:
    docs, edges = dbt_lineage(MANIFEST)
    assert set(edges) == {
        Edge("raw_shop.orders", "staging.stg_orders", "dbt"),
        Edge("staging.stg_orders", "marts.fct_orders", "dbt"),
    }
    assert "intermediate.int_orders" not in docs
    assert docs["staging.stg_orders"]["description"] == "Orders, cleaned."
    assert docs["staging.stg_orders"]["columns"] == {"order_id": "Primary key."}


def test_dlt_edges_point_from_source_table_to_raw_table(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, schema_prefix="t1_")
    edges = dlt_lineage(
        [("shop", "orders", "orders"), ("web", "events", "events__items")], settings
    )
    assert edges == [
        Edge("source.shop.orders", "t1_raw_shop.orders", "dlt"),
        Edge("source.web.events", "t1_raw_web.events__items", "dlt"),
    ]


@pytest.mark.parametrize("prefix", ["", "t1_"])
def test_one_naming_rule_between_a_source_and_its_schema(tmp_path: Path, prefix: str) -> None:
    settings = make_settings(tmp_path, schema_prefix=prefix)
    for source in ("shop", "web_events", "raw_x"):
        assert settings.raw_source(settings.raw_schema(source)) == source
    assert settings.raw_source(f"{prefix}staging") is None
    assert settings.raw_source(f"{prefix}raw_") is None
    assert settings.raw_source("other_raw_shop") is None


@pytest.mark.parametrize(
    ("schema", "prefix", "declared", "raw", "kind"),
    [
        ("raw_shop", "", (), True, "raw"),
        ("raw_shop_staging", "", (), False, "table"),  # dlt's staging twin
        ("raw_shop_staging", "", ("shop_staging",), True, "raw"),  # a source named so
        ("staging", "", (), False, "staging"),
        ("marts", "", (), False, "mart"),
        ("t1_marts", "t1_", (), False, "mart"),
        ("t1_raw_shop", "t1_", (), True, "raw"),
        ("raw_shop", "t1_", (), False, "table"),
        ("reports", "", (), False, "table"),
    ],
)
def test_raw_schemas_and_kinds_by_name(
    tmp_path: Path, schema: str, prefix: str, declared: tuple[str, ...], raw: bool, kind: str
) -> None:
    settings = make_settings(tmp_path, schema_prefix=prefix)
    assert is_raw_schema(settings, schema, declared) is raw
    if not declared:
        assert kind_of(settings, schema) == kind


def test_catalogued_schemas_are_those_the_project_writes_and_reads() -> None:
    manifest = {
        "nodes": {
            **MANIFEST["nodes"],
            "seed.p.codes": node("seed", "seeds", "codes", [], materialized="seed"),
            "model.p.report": node("model", "reports", "report", [], materialized="table"),
        },
        "sources": MANIFEST["sources"],
    }
    # intermediate holds only an ephemeral model: nothing is written there.
    assert dbt_schemas(manifest) == {"raw_shop", "staging", "marts", "seeds", "reports"}
    assert dbt_schemas(None) == set()


def test_source_origins_name_where_each_table_is_read() -> None:
    origin = SourceOrigin(
        "database", {"orders": "sqlite table orders"}, default="sqlite table {table}"
    )
    assert origin.origin_of("orders") == "sqlite table orders"
    assert origin.origin_of("refunds") == "sqlite table refunds"
    assert SourceOrigin("file").origin_of("x") is None


def test_freshness_against_its_expectation() -> None:
    now = datetime(2026, 1, 2, 12, tzinfo=UTC)
    hour, day = 3_600, 86_400
    assert freshness_status(now - timedelta(minutes=30), hour, day, now) == "fresh"
    assert freshness_status(now - timedelta(hours=2), hour, day, now) == "warn"
    assert freshness_status(now - timedelta(days=2), hour, day, now) == "stale"
    assert freshness_status(now - timedelta(days=2), None, day, now) == "stale"
    assert freshness_status(now - timedelta(hours=2), None, day, now) == "fresh"
    assert freshness_status(None, hour, day, now) == "unknown"  # never loaded
    assert freshness_status(now, None, None, now) == "unknown"  # no expectation
    naive = (now - timedelta(hours=2)).replace(tzinfo=None)
    assert freshness_status(naive, hour, None, now) == "warn"
    assert period_seconds({"count": 12, "period": "hour"}) == 12 * hour
    assert period_seconds({"count": None, "period": None}) is None
    assert period_seconds(None) is None


def data_test(
    kind: str, name: str, attached: str, column: str | None, **config: Any
) -> dict[str, Any]:
    return {
        "resource_type": "test",
        "name": f"{kind}_{name}",
        "attached_node": attached,
        "column_name": column,
        "test_metadata": {"name": kind, "kwargs": {"column_name": column}},
        "depends_on": {"nodes": [attached]},
        "config": {"severity": config.pop("severity", "ERROR"), **config},
    }


RICH = {
    "sources": {
        "source.p.shop.orders": {
            **MANIFEST["sources"]["source.p.shop.orders"],
            "source_name": "shop",
            "columns": {"id": {"description": "Order id."}},
            "freshness": {
                "warn_after": {"count": 12, "period": "hour"},
                "error_after": {"count": 2, "period": "day"},
            },
            "loaded_at_field": None,
            "meta": {"owner": "shop-team@example.com"},
        },
    },
    "nodes": {
        "model.p.stg_orders": {
            **node(
                "model",
                "t1_staging",
                "stg_orders",
                ["source.p.shop.orders"],
                description="Orders, cleaned.",
                columns={
                    "order_id": {"description": "Primary key."},
                    "email": {"description": "E-mail."},
                },
            ),
            "fqn": ["p", "staging", "shop", "stg_orders"],
            "raw_code": "select * from {{ source('shop', 'orders') }}",
            "tags": ["daily"],
            "config": {
                "materialized": "view",
                "tags": ["pii"],
                "meta": {"owner": {"name": "Ana", "email": "ana@example.com"}},
            },
        },
        "model.p.customers": {
            **node(
                "model",
                "t1_marts",
                "customers",
                ["model.p.stg_orders"],
                materialized="table",
                columns={"customer_id": {"constraints": [{"type": "primary_key"}]}},
            ),
            "fqn": ["p", "marts", "core", "customers"],
        },
        "model.p.report": {
            **node("model", "t1_reports", "report", [], materialized="incremental"),
            "fqn": ["p", "reports", "report"],
        },
        "seed.p.codes": node("seed", "t1_seeds", "codes", [], materialized="seed"),
        "snapshot.p.orders_history": node(
            "snapshot", "t1_snapshots", "orders_history", [], materialized="snapshot"
        ),
        "test.p.unique_order_id": data_test("unique", "order_id", "model.p.stg_orders", "order_id"),
        "test.p.not_null_order_id": data_test(
            "not_null", "order_id", "model.p.stg_orders", "order_id"
        ),
        "test.p.unique_email": data_test(
            "unique", "email", "model.p.stg_orders", "email", severity="warn"
        ),
        "test.p.not_null_email": data_test("not_null", "email", "model.p.stg_orders", "email"),
        "test.p.unique_customer_id": data_test(
            "unique", "customer_id", "model.p.customers", "customer_id"
        ),
        "test.p.not_null_source_id": data_test("not_null", "id", "source.p.shop.orders", "id"),
        "test.p.unique_source_id": data_test("unique", "id", "source.p.shop.orders", "id"),
    },
    "unit_tests": {
        "unit_test.p.customers.counts": {
            "name": "counts",
            "model": "customers",
            "depends_on": {"nodes": ["model.p.customers"]},
        },
    },
}


def result(status: str, completed_at: str = "2026-01-02T10:00:05Z") -> dict[str, Any]:
    return {
        "status": status,
        "generated_at": "2026-01-02T10:00:09Z",
        "timing": [
            {"name": "compile", "completed_at": "2026-01-02T10:00:01Z"},
            {"name": "execute", "completed_at": completed_at},
        ],
    }


def test_what_dbt_says_about_each_relation(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, schema_prefix="t1_")
    artifacts = DbtArtifacts(
        manifest=RICH,
        results={
            "model.p.stg_orders": result("success"),
            "model.p.customers": result("error"),
            "test.p.unique_order_id": result("pass"),
            "test.p.not_null_order_id": result("fail"),
            "test.p.unique_email": result("warn"),
            "unit_test.p.customers.counts": result("pass"),
            "test.p.not_null_source_id": result("error"),
        },
        compiled={"model.p.stg_orders": 'select * from "raw_shop"."orders"'},
    )
    relations = dbt_relations(artifacts, settings)
    assert set(relations) == {
        "raw_shop.orders",
        "t1_staging.stg_orders",
        "t1_marts.customers",
        "t1_reports.report",
        "t1_seeds.codes",
        "t1_snapshots.orders_history",
    }
    kinds = {name: r.kind for name, r in relations.items()}
    assert kinds == {
        "raw_shop.orders": None,  # the warehouse decides: a raw table
        "t1_staging.stg_orders": "staging",
        "t1_marts.customers": "mart",
        "t1_reports.report": "model",
        "t1_seeds.codes": "seed",
        "t1_snapshots.orders_history": "snapshot",
    }

    staging = relations["t1_staging.stg_orders"]
    assert staging.owner == "ana@example.com"
    assert staging.tags == ["daily", "pii"]
    assert staging.materialization == "view"
    assert staging.raw_sql == "select * from {{ source('shop', 'orders') }}"
    assert staging.compiled_sql == 'select * from "raw_shop"."orders"'
    assert staging.columns["order_id"].tests == {"unique", "not_null"}
    assert staging.columns["email"].tests == {"unique", "not_null"}
    # email's uniqueness only warns: not a key.
    assert staging.primary_key == {"order_id"}
    assert staging.last_build_status == "success"
    assert staging.last_built_at == datetime(2026, 1, 2, 10, 0, 5, tzinfo=UTC)
    assert staging.test_results == {
        "pass": 1,
        "fail": 1,
        "warn": 1,
        "error": 0,
        "skipped": 0,
        "failing": ["not_null_order_id"],
        "warning": ["unique_email"],
        "ran_at": "2026-01-02T10:00:09Z",
    }

    customers = relations["t1_marts.customers"]
    assert customers.primary_key == {"customer_id"}  # by constraint
    assert customers.last_build_status == "error"
    assert customers.last_built_at is None  # the failed build did not replace it
    assert customers.test_results is not None
    assert customers.test_results["pass"] == 1  # the unit test; unique never ran
    assert customers.materialization == "table"

    source = relations["raw_shop.orders"]
    assert source.dbt_source == "shop.orders"
    assert source.owner == "shop-team@example.com"
    assert (source.warn_after, source.error_after) == (12 * 3_600, 2 * 86_400)
    assert source.loaded_at_field is None
    assert source.primary_key == {"id"}
    assert source.columns["id"].description == "Order id."
    assert source.test_results is not None
    assert source.test_results["failing"] == ["not_null_id"]
    assert source.materialization is None


def test_test_summary_maps_dbt_statuses() -> None:
    summary = summarise_tests(
        [("a", "pass", "2026-01-01"), ("b", "runtime error", None), ("c", "skipped", "2026-01-02")]
    )
    assert (summary["pass"], summary["error"], summary["skipped"]) == (1, 1, 1)
    assert summary["failing"] == ["b"]
    assert summary["ran_at"] == "2026-01-02"
