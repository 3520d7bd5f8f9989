"""Read the catalog tables: datasets, columns and direct lineage in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from api.catalog.schemas import ColumnOut, DatasetOut
from api.errors import NotFound
from api.schemas import Page
from catalog.models import Dataset, LineageEdge
from headwater.db import as_utc


def _neighbours(
    session: Session, ids: Sequence[int]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Upstream and downstream dataset names for each of ``ids``, in one query."""
    upstream: dict[int, list[str]] = defaultdict(list)
    downstream: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return upstream, downstream
    up = aliased(Dataset)
    down = aliased(Dataset)
    rows = session.execute(
        select(LineageEdge.upstream_id, LineageEdge.downstream_id, up.name, down.name)
        .join(up, up.id == LineageEdge.upstream_id)
        .join(down, down.id == LineageEdge.downstream_id)
        .where(or_(LineageEdge.upstream_id.in_(ids), LineageEdge.downstream_id.in_(ids)))
    )
    wanted = set(ids)
    for upstream_id, downstream_id, upstream_name, downstream_name in rows:
        if downstream_id in wanted:
            upstream[downstream_id].append(upstream_name)
        if upstream_id in wanted:
            downstream[upstream_id].append(downstream_name)
    for names in (*upstream.values(), *downstream.values()):
        names.sort()
    return upstream, downstream


def _to_out(
    dataset: Dataset, upstream: dict[int, list[str]], downstream: dict[int, list[str]]
) -> DatasetOut:
    return DatasetOut(
        id=dataset.id,
        name=dataset.name,
        kind=dataset.kind,
        schema_name=dataset.schema_name,
        table_name=dataset.table_name,
        description=dataset.description,
        row_count=dataset.row_count,
        updated_at=as_utc(dataset.updated_at),
        columns=[
            ColumnOut(
                name=column.name,
                data_type=column.data_type,
                position=column.position,
                is_nullable=column.is_nullable,
                description=column.description,
            )
            for column in dataset.columns
        ],
        upstream=upstream.get(dataset.id, []),
        downstream=downstream.get(dataset.id, []),
    )


def list_datasets(
    session: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    search: str | None = None,
    kind: str | None = None,
) -> Page[DatasetOut]:
    """One page of datasets ordered by name.

    Args:
        session: Metadata store session.
        limit: Page size.
        offset: Number of matches to skip.
        search: Case-insensitive substring of the name or description
            (``%`` and ``_`` match themselves).
        kind: Exact dataset kind.
    """
    conditions: list[ColumnElement[bool]] = []
    if search:
        conditions.append(
            or_(
                Dataset.name.icontains(search, autoescape=True),
                Dataset.description.icontains(search, autoescape=True),
            )
        )
    if kind:
        conditions.append(Dataset.kind == kind)
    total = session.scalar(select(func.count()).select_from(Dataset).where(*conditions)) or 0
    datasets = session.scalars(
        select(Dataset)
        .where(*conditions)
        .options(selectinload(Dataset.columns))
        .order_by(Dataset.name, Dataset.id)
        .limit(limit)
        .offset(offset)
    ).all()
    upstream, downstream = _neighbours(session, [d.id for d in datasets])
    return Page(
        items=[_to_out(d, upstream, downstream) for d in datasets],
        total=total,
        limit=limit,
        offset=offset,
    )


def get_dataset(session: Session, dataset_id: int) -> DatasetOut:
    """One dataset.

    Raises:
        NotFound: no dataset has this id.
    """
    dataset = session.scalar(
        select(Dataset).where(Dataset.id == dataset_id).options(selectinload(Dataset.columns))
    )
    if dataset is None:
        raise NotFound(f"Dataset {dataset_id} not found")
    upstream, downstream = _neighbours(session, [dataset.id])
    return _to_out(dataset, upstream, downstream)
