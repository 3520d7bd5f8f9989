from __future__ import annotations

from typing import Any

import pytest

from catalog.extract import Edge, dbt_lineage, dlt_lineage, is_catalogued_schema, kind_of

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


def test_dlt_edges_point_from_source_table_to_raw_table() -> None:
    edges = dlt_lineage([("shop", "orders", "orders"), ("web", "events", "events__items")], "t1_")
    assert edges == [
        Edge("source.shop.orders", "t1_raw_shop.orders", "dlt"),
        Edge("source.web.events", "t1_raw_web.events__items", "dlt"),
    ]


@pytest.mark.parametrize(
    ("schema", "prefix", "covered", "kind"),
    [
        ("raw_shop", "", True, "raw"),
        ("raw_shop_staging", "", False, None),
        ("staging", "", True, "staging"),
        ("marts", "", True, "mart"),
        ("t1_marts", "t1_", True, "mart"),
        ("marts", "t1_", False, None),
        ("main", "", False, None),
        ("information_schema", "", False, None),
    ],
)
def test_which_schemas_are_catalogued(
    schema: str, prefix: str, covered: bool, kind: str | None
) -> None:
    assert is_catalogued_schema(schema, prefix) is covered
    if kind:
        assert kind_of(schema, prefix) == kind
