"""``/api/catalog/datasets/{id}/lineage`` and ``/impact``: walk the lineage graph;
``/api/catalog/schema-changes``: the schema history (any role).

The walking is :mod:`catalog.graph`'s (shared with ``headwater lineage``); this module
only speaks HTTP. Answers are cached until the next catalog refresh.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response
from litestar.params import Parameter
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from api.auth.guards import requires_reader
from api.cache import cached_json
from api.db import Database
from api.openapi import error_responses
from api.routing import get
from api.schemas import NO_NUL, Page, bounded
from api.times import moment, rfc3339
from catalog.graph import MAX_DEPTH, Graph, column_graph, edge_index, find_dataset, table_graph
from catalog.models import SchemaEvent
from catalog.refresh import CACHE_NAMESPACE
from headwater.db import as_utc

MAX_IMPACT_PAGE = 5000
ChangeKind = Literal[
    "added", "removed", "renamed", "type_changed", "dataset_added", "dataset_removed"
]

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


class ImpactRef(msgspec.Struct, rename="camel"):
    dataset: str
    column: str | None
    depth: int


class SchemaChangeOut(msgspec.Struct, rename="camel"):
    """A change a refresh saw in a dataset's columns, and what it reaches downstream."""

    id: int
    dataset_id: int | None
    """None once the dataset itself is gone."""
    dataset: str
    change: Literal[
        "added", "removed", "renamed", "type_changed", "dataset_added", "dataset_removed"
    ]
    column: str | None
    old_name: str | None
    """The column's name before a rename."""
    old_type: str | None
    new_type: str | None
    detected_at: datetime
    impact: list[ImpactRef]
    """Downstream columns (column null: a whole dataset) it reaches, nearest first."""


def schema_changes(
    session: Session,
    *,
    dataset_id: int | None,
    change: str | None,
    since: datetime | None,
    limit: int,
    offset: int,
) -> Page[SchemaChangeOut]:
    conditions: list[ColumnElement[bool]] = []
    if dataset_id is not None:
        find_dataset(session, dataset_id)  # 404 for an unknown dataset
        conditions.append(SchemaEvent.dataset_id == dataset_id)
    if change:
        conditions.append(SchemaEvent.change == change)
    if since is not None:
        conditions.append(SchemaEvent.detected_at >= since.astimezone(UTC))  # stored in UTC
    total = session.scalar(select(func.count()).select_from(SchemaEvent).where(*conditions)) or 0
    rows = session.scalars(
        select(SchemaEvent)
        .where(*conditions)
        .order_by(SchemaEvent.detected_at.desc(), SchemaEvent.id.desc())
        .limit(limit)
        .offset(offset)
    )
    items = [
        SchemaChangeOut(
            id=row.id,
            dataset_id=row.dataset_id,
            dataset=row.dataset,
            change=row.change,  # type: ignore[arg-type]
            column=row.column,
            old_name=row.old_name,
            old_type=row.old_type,
            new_type=row.new_type,
            detected_at=as_utc(row.detected_at),
            impact=[
                ImpactRef(dataset=i["dataset"], column=i["column"], depth=i["depth"])
                for i in row.impact
            ],
        )
        for row in rows
    ]
    return Page(items=items, total=total, limit=limit, offset=offset)


class SchemaChangesController(Controller):
    path = "/api/catalog/schema-changes"
    tags = ("catalog",)

    @get(
        "",
        operation_id="listSchemaChanges",
        guards=[requires_reader],
        summary="Schema history",
        description="Every column added, removed, renamed (best guess) or retyped, and every "
        "dataset added or removed, newest first, each with its downstream impact.",
        responses=error_responses(400, 401, 404, s404="No dataset with this id"),
    )
    async def list_changes(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dataset_id: Annotated[
            int | None,
            Parameter(query="datasetId", ge=1, le=2**31 - 1, description="One dataset's history."),
        ] = None,
        change: Annotated[ChangeKind | None, Parameter(description="One kind of change.")] = None,
        since: Annotated[
            str | None, moment("Changes detected at or after this time (RFC 3339).")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Changes to skip.", minimum=0)] = 0,
    ) -> Response[Page[SchemaChangeOut]]:
        since_at = rfc3339("since", since)

        async def produce() -> Page[SchemaChangeOut]:
            return await database.run(
                lambda s: schema_changes(
                    s,
                    dataset_id=dataset_id,
                    change=change,
                    since=since_at,
                    limit=limit,
                    offset=offset,
                )
            )

        return await cached_json(request, CACHE_NAMESPACE, produce)


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
            index = edge_index(session)
            return lineage_out(column_graph(session, root, column, direction, depth, index=index))

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
            graph = column_graph(session, root, column, "down", depth, index=edge_index(session))
            return impact_out(graph, limit, offset)

        async def produce() -> ImpactOut:
            return await database.run(work)

        return await cached_json(request, CACHE_NAMESPACE, produce)
