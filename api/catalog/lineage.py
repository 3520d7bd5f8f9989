"""``/api/catalog/datasets/{id}/lineage`` and ``/impact``: walk the lineage graph (any role).

The walking is :mod:`catalog.graph`'s (shared with ``headwater lineage``); this module
only speaks HTTP. Answers are cached until the next catalog refresh.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response
from litestar.params import Parameter

from api.auth.guards import requires_reader
from api.cache import cached_json
from api.db import Database
from api.openapi import error_responses
from api.routing import get
from api.schemas import NO_NUL, bounded
from catalog.graph import MAX_DEPTH, Graph, column_graph, find_dataset, table_graph
from catalog.refresh import CACHE_NAMESPACE

MAX_IMPACT_PAGE = 5000

Depth = Annotated[
    int, Parameter(ge=1, le=MAX_DEPTH, description="How many steps to walk (1 = neighbours).")
]
ColumnName = Annotated[
    str | None,
    Parameter(
        min_length=1,
        max_length=255,
        pattern=NO_NUL,
        description="Follow this column only (column-level lineage).",
    ),
]


class NodeOut(msgspec.Struct, rename="camel"):
    id: int
    name: str
    kind: str


class TableEdgeOut(msgspec.Struct, rename="camel"):
    upstream_id: int
    downstream_id: int
    origin: str
    """``dbt`` (a model reads it) or ``dlt`` (a load wrote it)."""
    depth: int


class ColumnEdgeOut(msgspec.Struct, rename="camel"):
    upstream_id: int
    upstream_column: str
    downstream_id: int
    downstream_column: str | None
    """None for a ``filter`` edge: the column decides which rows, for every column."""
    kind: Literal["copy", "rename", "transform", "aggregate", "filter"]
    depth: int


class UnresolvedOut(msgspec.Struct, rename="camel"):
    dataset_id: int
    column: str
    """``*`` when the whole query could not be traced."""
    reason: str


class LineageOut(msgspec.Struct, rename="camel"):
    """Datasets and edges reached from ``root``; ids let a client walk on without
    searching."""

    root: NodeOut
    column: str | None
    direction: Literal["up", "down"]
    depth: int
    truncated: bool
    """More lies beyond ``depth``."""
    nodes: list[NodeOut]
    tables: list[TableEdgeOut]
    columns: list[ColumnEdgeOut]
    unresolved: list[UnresolvedOut]


class ImpactItem(msgspec.Struct, rename="camel"):
    dataset_id: int
    dataset: str
    kind: str
    column: str | None
    """None: the whole dataset (its rows are filtered by the changed column)."""
    depth: int
    """Fewest steps from the changed column."""
    via: list[str]
    """How it is reached on its shortest paths (copy, rename, transform, aggregate,
    filter)."""


class ImpactOut(msgspec.Struct, rename="camel"):
    root: NodeOut
    column: str | None
    depth: int
    truncated: bool
    datasets: int
    """Distinct downstream datasets affected."""
    total: int
    """Downstream columns (and whole datasets) affected; ``items`` holds one page of
    them, nearest first."""
    limit: int
    offset: int
    items: list[ImpactItem]


def _node(node: Any) -> NodeOut:
    return NodeOut(id=node.id, name=node.name, kind=node.kind)


def lineage_out(graph: Graph) -> LineageOut:
    return LineageOut(
        root=_node(graph.root),
        column=graph.column,
        direction=graph.direction,
        depth=graph.depth,
        truncated=graph.truncated,
        nodes=[_node(n) for n in graph.nodes],
        tables=[
            TableEdgeOut(
                upstream_id=e.upstream_id,
                downstream_id=e.downstream_id,
                origin=e.origin,
                depth=e.depth,
            )
            for e in graph.tables
        ],
        columns=[
            ColumnEdgeOut(
                upstream_id=e.upstream_id,
                upstream_column=e.upstream_column,
                downstream_id=e.downstream_id,
                downstream_column=e.downstream_column,
                kind=e.kind,  # type: ignore[arg-type]
                depth=e.depth,
            )
            for e in graph.columns
        ],
        unresolved=[
            UnresolvedOut(dataset_id=dataset_id, column=column, reason=reason)
            for dataset_id, notes in sorted(graph.unresolved.items())
            for column, reason in sorted(notes.items())
        ],
    )


def impact_out(graph: Graph, limit: int = 1000, offset: int = 0) -> ImpactOut:
    kinds = {n.id: n for n in graph.nodes}
    reached: dict[tuple[int, str | None], ImpactItem] = {}
    for edge in graph.columns:
        key = (edge.downstream_id, edge.downstream_column)
        item = reached.get(key)
        if item is None or edge.depth < item.depth:
            node = kinds[edge.downstream_id]
            reached[key] = ImpactItem(
                dataset_id=node.id,
                dataset=node.name,
                kind=node.kind,
                column=edge.downstream_column,
                depth=edge.depth,
                via=[edge.kind],
            )
        elif edge.depth == item.depth and edge.kind not in item.via:
            item.via = sorted([*item.via, edge.kind])
    items = sorted(reached.values(), key=lambda i: (i.depth, i.dataset, i.column or ""))
    return ImpactOut(
        root=_node(graph.root),
        column=graph.column,
        depth=graph.depth,
        truncated=graph.truncated,
        datasets=len({i.dataset_id for i in items}),
        total=len(items),
        limit=limit,
        offset=offset,
        items=items[offset : offset + limit],
    )


class LineageController(Controller):
    path = "/api/catalog/datasets/{dataset_id:int}"
    tags = ("catalog",)

    @get(
        "/lineage",
        operation_id="getDatasetLineage",
        guards=[requires_reader],
        summary="Lineage graph of a dataset or one of its columns",
        description="Up (where it comes from) or down (what it feeds), `depth` steps. "
        "With `column`, or with `level=column`, column edges; else table edges.",
        responses=error_responses(400, 401, 404, s404="No dataset with this id, or no such column"),
    )
    async def lineage(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dataset_id: Annotated[int, bounded("Dataset id.")],
        direction: Annotated[
            Literal["up", "down"], Parameter(description="`up` or `down`.")
        ] = "up",
        depth: Depth = 3,
        column: ColumnName = None,
        level: Annotated[
            Literal["table", "column"],
            Parameter(description="`table` or `column` edges (a `column` implies `column`)."),
        ] = "table",
    ) -> Response[LineageOut]:
        def work(session: Any) -> LineageOut:
            root = find_dataset(session, dataset_id)
            if column is None and level == "table":
                return lineage_out(table_graph(session, root, direction, depth))
            return lineage_out(column_graph(session, root, column, direction, depth))

        async def produce() -> LineageOut:
            return await database.run(work)

        return await cached_json(request, CACHE_NAMESPACE, produce)

    @get(
        "/impact",
        operation_id="getDatasetImpact",
        guards=[requires_reader],
        summary="Everything downstream of a dataset or one of its columns",
        description="Each downstream column (or whole dataset, when the change filters its "
        "rows) with its fewest steps away and how it is reached.",
        responses=error_responses(400, 401, 404, s404="No dataset with this id, or no such column"),
    )
    async def impact(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dataset_id: Annotated[int, bounded("Dataset id.")],
        column: ColumnName = None,
        depth: Depth = 10,
        limit: Annotated[
            int, Parameter(ge=1, le=MAX_IMPACT_PAGE, description="Items per page.")
        ] = 1000,
        offset: Annotated[int, bounded("Items to skip.", minimum=0)] = 0,
    ) -> Response[ImpactOut]:
        def work(session: Any) -> ImpactOut:
            root = find_dataset(session, dataset_id)
            graph = column_graph(session, root, column, "down", depth)
            return impact_out(graph, limit, offset)

        async def produce() -> ImpactOut:
            return await database.run(work)

        return await cached_json(request, CACHE_NAMESPACE, produce)
