"""Walking stored lineage over a small hand-made catalog (a SQLite metadata store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from catalog.graph import (
    ColumnNotFound,
    DatasetNotFound,
    Graph,
    column_graph,
    edge_index,
    resolve,
    table_graph,
)
from catalog.models import ColumnLineage, Dataset, DatasetColumn, LineageEdge
from headwater.db import session_scope
from headwater.migrate import upgrade

# raw_shop.orders ──▶ staging.stg_orders ──▶ marts.revenue, and raw_shop.customers
# filters marts.revenue's rows (a join key), from status to a where clause.
COLUMNS = {
    "raw_shop.orders": ["id", "amount", "status", "customer_id"],
    "raw_shop.customers": ["id", "country"],
    "staging.stg_orders": ["order_id", "amount", "status", "customer_id"],
    "marts.revenue": ["country", "revenue"],
}
EDGES = [
    ("staging.stg_orders", "order_id", "raw_shop.orders", "id", "rename"),
    ("staging.stg_orders", "amount", "raw_shop.orders", "amount", "copy"),
    ("staging.stg_orders", "status", "raw_shop.orders", "status", "transform"),
    ("staging.stg_orders", "customer_id", "raw_shop.orders", "customer_id", "copy"),
    ("marts.revenue", "revenue", "staging.stg_orders", "amount", "aggregate"),
    ("marts.revenue", "country", "raw_shop.customers", "country", "copy"),
    ("marts.revenue", None, "staging.stg_orders", "status", "filter"),
    ("marts.revenue", None, "staging.stg_orders", "customer_id", "filter"),
    ("marts.revenue", None, "raw_shop.customers", "id", "filter"),
]


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    with session_scope(url) as session:
        ids = {}
        for name, columns in COLUMNS.items():
            schema, table = name.split(".")
            dataset = Dataset(
                name=name,
                kind=schema,
                schema_name=schema,
                table_name=table,
                tags=[],
                columns=[
                    DatasetColumn(name=c, data_type="varchar", position=i)
                    for i, c in enumerate(columns, 1)
                ],
            )
            session.add(dataset)
            session.flush()
            ids[name] = dataset.id
        for down, down_column, up, up_column, kind in EDGES:
            session.add(
                ColumnLineage(
                    downstream_id=ids[down],
                    downstream_column=down_column,
                    upstream_id=ids[up],
                    upstream_column=up_column,
                    kind=kind,
                )
            )
        for down, up in {(d, u) for d, _, u, _, _ in EDGES}:
            session.add(LineageEdge(upstream_id=ids[up], downstream_id=ids[down], origin="dbt"))
        session.flush()
        yield session


def links(graph: Graph) -> set[tuple[str, str | None, str, str | None, str, int]]:
    names = {n.id: n.name for n in graph.nodes}
    return {
        (
            names[e.upstream_id],
            e.upstream_column,
            names[e.downstream_id],
            e.downstream_column,
            e.kind,
            e.depth,
        )
        for e in graph.columns
    }


def test_up_from_a_mart_column_follows_values_and_the_rows_filters(session: Session) -> None:
    dataset, column = resolve(session, "marts.revenue.revenue")
    assert (dataset.name, column) == ("marts.revenue", "revenue")
    values = links(column_graph(session, dataset, column, "up", 5, filters=False))
    assert values == {
        ("staging.stg_orders", "amount", "marts.revenue", "revenue", "aggregate", 1),
        ("raw_shop.orders", "amount", "staging.stg_orders", "amount", "copy", 2),
    }
    everything = links(column_graph(session, dataset, column, "up", 5))
    assert ("raw_shop.customers", "id", "marts.revenue", None, "filter", 1) in everything
    # The filter columns are followed up too, each edge listed once.
    assert ("raw_shop.orders", "status", "staging.stg_orders", "status", "transform", 2) in (
        everything
    )
    assert len(everything) == len({link[:5] for link in everything})


def test_down_a_filter_column_reaches_every_column_of_the_filtered_dataset(
    session: Session,
) -> None:
    dataset = resolve(session, "raw_shop.orders")[0]
    graph = column_graph(session, dataset, "status", "down", 5)
    assert links(graph) == {
        ("raw_shop.orders", "status", "staging.stg_orders", "status", "transform", 1),
        ("staging.stg_orders", "status", "marts.revenue", None, "filter", 2),
    }
    assert not graph.truncated
    shallow = column_graph(session, dataset, "status", "down", 1)
    assert shallow.truncated and len(shallow.columns) == 1


def test_table_graph_walks_datasets_by_depth(session: Session) -> None:
    revenue = resolve(session, "marts.revenue")[0]
    up = table_graph(session, revenue, "up", 1)
    assert {n.name for n in up.nodes} == {
        "marts.revenue",
        "staging.stg_orders",
        "raw_shop.customers",
    }
    assert up.truncated
    assert {n.name for n in table_graph(session, revenue, "up", 5).nodes} == set(COLUMNS)


def test_names_resolve_or_say_what_is_wrong(session: Session) -> None:
    assert resolve(session, "stg_orders")[0].name == "staging.stg_orders"
    assert resolve(session, "stg_orders.AMOUNT")[1] == "amount"
    with pytest.raises(DatasetNotFound, match="no dataset named 'nothing'"):
        resolve(session, "nothing")
    with pytest.raises(ColumnNotFound, match="has no column 'nope'"):
        resolve(session, "marts.revenue.nope")
    session.add(
        Dataset(name="marts.stg_orders", kind="mart", schema_name="marts", table_name="stg_orders")
    )
    session.flush()
    with pytest.raises(DatasetNotFound, match="ambiguous"):
        resolve(session, "stg_orders")


@pytest.mark.parametrize("direction", ["up", "down"])
@pytest.mark.parametrize("filters", [True, False])
@pytest.mark.parametrize(
    "target",
    ["marts.revenue.revenue", "marts.revenue", "raw_shop.orders.status", "raw_shop.orders"],
)
def test_a_walk_from_the_in_memory_index_equals_the_walk_over_the_store(
    session: Session, direction: str, filters: bool, target: str
) -> None:
    dataset, column = resolve(session, target)
    stored = column_graph(session, dataset, column, direction, 5, filters=filters)  # type: ignore[arg-type]
    index = edge_index(session)
    indexed = column_graph(
        session,
        dataset,
        column,
        direction,
        5,
        filters=filters,
        index=index,  # type: ignore[arg-type]
    )
    assert indexed.columns == stored.columns  # the same edges, in the same order
    assert (indexed.nodes, indexed.truncated) == (stored.nodes, stored.truncated)


def test_the_index_follows_a_change_of_the_edges(session: Session) -> None:
    first = edge_index(session)
    assert edge_index(session) is first  # unchanged table: the same index
    orders = resolve(session, "raw_shop.orders")[0]
    revenue = resolve(session, "marts.revenue")[0]
    session.add(
        ColumnLineage(
            downstream_id=revenue.id,
            downstream_column="revenue",
            upstream_id=orders.id,
            upstream_column="amount",
            kind="transform",
        )
    )
    session.flush()
    second = edge_index(session)
    assert second is not first
    assert any(e[1] == "amount" and e[2] == revenue.id for e in second.by_upstream[orders.id])


def test_a_query_depends_on_its_tables_and_everything_upstream(session: Session) -> None:
    from catalog.queries.versions import upstream_relations

    assert upstream_relations(session, ["marts.revenue"]) == [
        "marts.revenue",
        "raw_shop.customers",
        "raw_shop.orders",
        "staging.stg_orders",
    ]
    assert upstream_relations(session, ["raw_shop.orders"]) == ["raw_shop.orders"]
    # A new edge is seen at once, though the graph is otherwise read once per catalog state.
    customers = resolve(session, "raw_shop.customers")[0]
    orders = resolve(session, "raw_shop.orders")[0]
    session.add(LineageEdge(upstream_id=customers.id, downstream_id=orders.id, origin="dbt"))
    session.flush()
    assert upstream_relations(session, ["raw_shop.orders"]) == [
        "raw_shop.customers",
        "raw_shop.orders",
    ]
