"""Which models a refresh re-analyses, and the column edges of the loads."""

from __future__ import annotations

from catalog.columns import NOT_COMPILED, ModelQuery, analyse, load_edges
from catalog.lineage import ColumnEdge

TABLES = {
    "raw_shop.orders": {"id": "bigint", "amount": "decimal(18,2)", "_dlt_id": "varchar"},
    "staging.stg_orders": {"order_id": "bigint", "amount": "decimal(18,2)"},
}
STG = ModelQuery(
    "staging.stg_orders",
    'select id as order_id, amount from "w"."raw_shop"."orders"',
    ("raw_shop.orders",),
)


def test_only_models_whose_sql_or_upstream_schema_changed_are_analysed_again() -> None:
    first = analyse([STG], TABLES, "duckdb", {})
    assert set(first) == {"staging.stg_orders"}
    edges = first["staging.stg_orders"].lineage.edges
    assert ColumnEdge("order_id", "raw_shop.orders", "id", "rename") in edges
    previous = {name: a.fingerprint for name, a in first.items()}

    assert analyse([STG], TABLES, "duckdb", previous) == {}

    edited = ModelQuery(
        STG.dataset, STG.sql.replace("amount", "amount * 2 as amount"), STG.upstream
    )
    assert set(analyse([edited], TABLES, "duckdb", previous)) == {"staging.stg_orders"}

    widened = {**TABLES, "raw_shop.orders": {**TABLES["raw_shop.orders"], "note": "varchar"}}
    assert set(analyse([STG], widened, "duckdb", previous)) == {"staging.stg_orders"}
    # A change elsewhere in the warehouse leaves the model alone.
    elsewhere = {**TABLES, "raw_web.events": {"id": "bigint"}}
    assert analyse([STG], elsewhere, "duckdb", previous) == {}


def test_a_model_without_compiled_sql_says_so_once() -> None:
    model = ModelQuery("marts.customers", None, ("staging.stg_orders",))
    first = analyse([model], TABLES, "duckdb", {})
    assert first["marts.customers"].lineage.unresolved == {"*": NOT_COMPILED}
    previous = {"marts.customers": first["marts.customers"].fingerprint}
    assert analyse([model], TABLES, "duckdb", previous) == {}


def test_load_edges_copy_each_column_and_name_the_sources_spelling() -> None:
    edges = load_edges(
        [("source.shop.orders", "raw_shop.orders")],
        TABLES,
        {("raw_shop.orders", "amount"): "Amount"},
    )
    assert edges == [
        ("raw_shop.orders", ColumnEdge("id", "source.shop.orders", "id", "copy")),
        ("raw_shop.orders", ColumnEdge("amount", "source.shop.orders", "Amount", "rename")),
    ]
