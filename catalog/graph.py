"""Walk the stored lineage: table and column graphs up or down, and impact analysis.

One query per level of depth, whatever the size of the catalog; the API and the
command line share these functions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog.errors import CatalogError
from catalog.lineage import FILTER
from catalog.models import ColumnLineage, Dataset, LineageAnalysis, LineageEdge

T = TypeVar("T")
Direction = Literal["up", "down"]
MAX_DEPTH = 50
_CHUNK = 400
"""Frontier items per query (SQLite binds at most 32,766 values; PostgreSQL 65,535)."""


class DatasetNotFound(CatalogError):
    """No dataset has this id or name."""


class ColumnNotFound(CatalogError):
    """The dataset has no such column."""


@dataclass(frozen=True)
class Node:
    id: int
    name: str
    kind: str


@dataclass(frozen=True)
class TableEdge:
    upstream_id: int
    downstream_id: int
    origin: str
    depth: int


@dataclass(frozen=True)
class ColumnLink:
    upstream_id: int
    upstream_column: str
    downstream_id: int
    downstream_column: str | None
    """None: a ``filter`` edge, which shapes every column of the downstream dataset."""
    kind: str
    depth: int


@dataclass
class Graph:
    root: Node
    column: str | None
    direction: Direction
    depth: int
    nodes: list[Node] = field(default_factory=list)
    tables: list[TableEdge] = field(default_factory=list)
    columns: list[ColumnLink] = field(default_factory=list)
    unresolved: dict[int, dict[str, str]] = field(default_factory=dict)
    """Dataset id → {column or ``*``: why its lineage is incomplete}, for the datasets
    reached."""
    truncated: bool = False
    """More lies beyond ``depth``."""


def find_dataset(session: Session, ref: int | str) -> Dataset:
    """A dataset by id or by name (``schema.table``, or a bare table name when unique).

    Raises:
        DatasetNotFound: no such dataset, or a bare name several schemas share.
    """
    if isinstance(ref, int):
        found = session.get(Dataset, ref)
        if found is None:
            raise DatasetNotFound(f"no dataset {ref}")
        return found
    found = session.scalar(select(Dataset).where(Dataset.name == ref))
    if found is not None:
        return found
    matches = list(session.scalars(select(Dataset).where(Dataset.table_name == ref).limit(5)))
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(sorted(m.name for m in matches))
        raise DatasetNotFound(f"{ref!r} is ambiguous: {names}", hint="name it with its schema")
    raise DatasetNotFound(
        f"no dataset named {ref!r}", hint="`headwater catalog refresh` after a load or a build"
    )


def table_graph(session: Session, root: Dataset, direction: Direction, depth: int) -> Graph:
    """Datasets ``depth`` table-level steps up or down from ``root``."""
    depth = _bounded(depth)
    graph = Graph(_node(root), None, direction, depth)
    near = LineageEdge.downstream_id if direction == "up" else LineageEdge.upstream_id
    seen = {root.id}
    frontier = {root.id}
    for level in range(1, depth + 2):
        if not frontier:
            break
        rows = [
            row
            for chunk in chunks(sorted(frontier))
            for row in session.execute(
                select(LineageEdge.upstream_id, LineageEdge.downstream_id, LineageEdge.origin)
                .where(near.in_(chunk))
                .order_by(LineageEdge.upstream_id, LineageEdge.downstream_id)
            )
        ]
        if level > depth:
            graph.truncated = bool(rows)
            break
        frontier = set()
        for upstream_id, downstream_id, origin in rows:
            graph.tables.append(TableEdge(upstream_id, downstream_id, origin, level))
            reached = upstream_id if direction == "up" else downstream_id
            if reached not in seen:
                seen.add(reached)
                frontier.add(reached)
    _finish(session, graph, seen)
    return graph


EdgeRow = tuple[int, str, int, str | None, str, int]
"""upstream id, upstream column, downstream id, downstream column, kind, edge id"""


@dataclass(frozen=True)
class EdgeIndex:
    """Every column edge in memory, by the dataset at either end: a walk of any depth
    then costs no query. Built once per state of the ``column_lineage`` table."""

    by_upstream: dict[int, list[EdgeRow]]
    by_downstream: dict[int, list[EdgeRow]]


_indexes: dict[str, tuple[tuple[object, ...], EdgeIndex]] = {}
_indexes_lock = threading.Lock()


def edge_index(session: Session) -> EdgeIndex:
    """The column edges of the catalog behind ``session``, from memory while the table is
    unchanged (its row count and highest id: a refresh deletes and inserts rows)."""
    version = tuple(
        session.execute(select(func.count(ColumnLineage.id), func.max(ColumnLineage.id))).one()
    )
    url = str(session.get_bind().engine.url)
    with _indexes_lock:
        known = _indexes.get(url)
    if known is not None and known[0] == version:
        return known[1]
    by_upstream: dict[int, list[EdgeRow]] = {}
    by_downstream: dict[int, list[EdgeRow]] = {}
    query = select(
        ColumnLineage.upstream_id,
        ColumnLineage.upstream_column,
        ColumnLineage.downstream_id,
        ColumnLineage.downstream_column,
        ColumnLineage.kind,
        ColumnLineage.id,
    )
    for row in session.execute(query):
        edge: EdgeRow = tuple(row)  # type: ignore[assignment]
        by_upstream.setdefault(edge[0], []).append(edge)
        by_downstream.setdefault(edge[2], []).append(edge)
    index = EdgeIndex(by_upstream, by_downstream)
    with _indexes_lock:
        _indexes[url] = (version, index)
    return index


def column_graph(
    session: Session,
    root: Dataset,
    column: str | None,
    direction: Direction,
    depth: int,
    *,
    filters: bool = True,
    index: EdgeIndex | None = None,
) -> Graph:
    """Column edges ``depth`` steps up (where it comes from) or down (what it feeds,
    the impact) from ``root.column``, or from every column of ``root``.

    Going down, a column that filters a dataset's rows reaches every column of it.
    ``filters=False`` follows values only (copy, rename, transform, aggregate). With an
    ``index`` (:func:`edge_index`) the walk reads no edge from the store.

    Raises:
        ColumnNotFound: ``column`` is not a column of ``root``.
    """
    depth = _bounded(depth)
    if column is not None:
        column = _column_of(root, column)
    graph = Graph(_node(root), column, direction, depth)
    # A frontier item is (dataset, column); column None stands for every column.
    frontier: set[tuple[int, str | None]] = {(root.id, column)}
    seen = set(frontier)
    datasets = {root.id}
    recorded: set[tuple[int, str, int, str | None, str]] = set()
    for level in range(1, depth + 2):
        if not frontier:
            break
        step = (
            _indexed_step(index, frontier, direction, filters)
            if index is not None
            else _column_step(session, frontier, direction, filters)
        )
        rows = [r for r in step if r not in recorded]
        if level > depth:
            graph.truncated = bool(rows)
            break
        frontier = set()
        for edge in rows:
            recorded.add(edge)  # an edge reached again, deeper, is not listed twice
            up_id, up_column, down_id, down_column, kind = edge
            graph.columns.append(ColumnLink(up_id, up_column, down_id, down_column, kind, level))
            reached: tuple[int, str | None] = (
                (up_id, up_column) if direction == "up" else (down_id, down_column)
            )
            datasets.add(reached[0])
            if reached not in seen and (reached[0], None) not in seen:
                seen.add(reached)
                frontier.add(reached)
    _finish(session, graph, datasets)
    return graph


def _column_step(
    session: Session, frontier: set[tuple[int, str | None]], direction: Direction, filters: bool
) -> Iterable[tuple[int, str, int, str | None, str]]:
    """The edges leaving ``frontier`` one step ``direction``: every edge of the frontier's
    datasets is read (one indexed ``IN`` per chunk), then kept when its column is in the
    frontier (a dataset-wide item keeps them all)."""
    fields = (
        ColumnLineage.upstream_id,
        ColumnLineage.upstream_column,
        ColumnLineage.downstream_id,
        ColumnLineage.downstream_column,
        ColumnLineage.kind,
    )
    order = (ColumnLineage.downstream_id, ColumnLineage.downstream_column, ColumnLineage.id)
    if direction == "up":
        dataset_of, near = ColumnLineage.downstream_id, (2, 3)
    else:
        dataset_of, near = ColumnLineage.upstream_id, (0, 1)
    values_only = [] if filters else [ColumnLineage.kind != FILTER]
    for chunk in chunks(sorted({dataset for dataset, _ in frontier})):
        query = select(*fields).where(dataset_of.in_(chunk), *values_only).order_by(*order)
        for row in session.execute(query):
            dataset, column = row[near[0]], row[near[1]]
            if (
                (dataset, None) in frontier
                or (dataset, column) in frontier
                # Going up, a dataset's filter edges shape each of its columns.
                or (column is None and direction == "up")
            ):
                yield tuple(row)  # type: ignore[misc]


def _indexed_step(
    index: EdgeIndex, frontier: set[tuple[int, str | None]], direction: Direction, filters: bool
) -> Iterable[tuple[int, str, int, str | None, str]]:
    """:func:`_column_step` from memory, in the same order."""
    by_dataset, near = (
        (index.by_downstream, (2, 3)) if direction == "up" else (index.by_upstream, (0, 1))
    )
    found = []
    for dataset in {dataset for dataset, _ in frontier}:
        for edge in by_dataset.get(dataset, ()):
            if not filters and edge[4] == FILTER:
                continue
            column = edge[near[1]]
            if (
                (dataset, None) in frontier
                or (dataset, column) in frontier
                or (column is None and direction == "up")
            ):
                found.append(edge)
    found.sort(key=lambda e: (e[2], e[3] is not None, e[3] or "", e[5]))
    return [edge[:5] for edge in found]


def _finish(session: Session, graph: Graph, ids: set[int]) -> None:
    """Name the datasets reached and add their unresolved notes (plain rows, no objects)."""
    nodes = [
        Node(*row)
        for chunk in chunks(sorted(ids))
        for row in session.execute(
            select(Dataset.id, Dataset.name, Dataset.kind).where(Dataset.id.in_(chunk))
        )
    ]
    graph.nodes = sorted(nodes, key=lambda n: n.name)
    for chunk in chunks(sorted(ids)):
        for dataset_id, unresolved in session.execute(
            select(LineageAnalysis.dataset_id, LineageAnalysis.unresolved).where(
                LineageAnalysis.dataset_id.in_(chunk)
            )
        ):
            if unresolved:
                graph.unresolved[dataset_id] = dict(unresolved)


def _column_of(dataset: Dataset, column: str) -> str:
    names = {c.name for c in dataset.columns}
    if column in names:
        return column
    folded = {n.lower(): n for n in names}
    if column.lower() in folded:
        return folded[column.lower()]
    raise ColumnNotFound(
        f"{dataset.name} has no column {column!r}",
        hint="its columns: " + ", ".join(sorted(names)[:30]),
    )


def _bounded(depth: int) -> int:
    return max(1, min(depth, MAX_DEPTH))


def _node(dataset: Dataset) -> Node:
    return Node(dataset.id, dataset.name, dataset.kind)


def chunks(items: list[T]) -> Iterable[list[T]]:
    """``items`` in slices small enough for one ``IN`` list on any store."""
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def resolve(session: Session, target: str) -> tuple[Dataset, str | None]:
    """``DATASET`` or ``DATASET.COLUMN`` (the column after the last dot) to the dataset
    and the column (None for the whole dataset).

    Raises:
        DatasetNotFound: neither reading names a dataset.
        ColumnNotFound: the dataset has no such column.
    """
    try:
        return find_dataset(session, target), None
    except DatasetNotFound as whole:
        name, dot, column = target.rpartition(".")
        if not dot or not name:
            raise
        try:
            dataset = find_dataset(session, name)
        except DatasetNotFound:
            raise whole from None
        return dataset, _column_of(dataset, column)
