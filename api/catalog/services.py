"""Read the catalog tables: datasets, columns and direct lineage in a fixed number of queries."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, String, case, cast, func, or_, select
from sqlalchemy.orm import Session, aliased, defer, selectinload

from api.catalog.schemas import (
    ColumnDetailOut,
    ColumnOut,
    DatasetDetailOut,
    DatasetOut,
    DbtTestCountsOut,
    DbtTestResultsOut,
    FreshnessOut,
)
from api.errors import NotFound
from api.schemas import Page
from catalog.models import Dataset, DatasetColumn, LineageEdge
from headwater.db import as_utc, utcnow

HEAVY = (Dataset.raw_sql, Dataset.compiled_sql, Dataset.origin)
"""Columns only the detail answer shows: never loaded for a list."""


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


def _common(
    dataset: Dataset,
    upstream: dict[int, list[str]],
    downstream: dict[int, list[str]],
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "name": dataset.name,
        "kind": dataset.kind,
        "schema_name": dataset.schema_name,
        "table_name": dataset.table_name,
        "fqn": dataset.fqn,
        "description": dataset.description,
        "owner": dataset.owner,
        "tags": list(dataset.tags or []),
        "materialization": dataset.materialization,
        "dbt_source": dataset.dbt_source,
        "source_kind": dataset.source_kind,
        "row_count": dataset.row_count,
        "size_bytes": dataset.size_bytes,
        "last_loaded_at": as_utc(dataset.last_loaded_at),
        "last_built_at": as_utc(dataset.last_built_at),
        "freshness": dataset.freshness(now),
        "updated_at": as_utc(dataset.updated_at),
        "upstream": upstream.get(dataset.id, []),
        "downstream": downstream.get(dataset.id, []),
    }


def _counts(results: dict[str, Any] | None) -> dict[str, int] | None:
    if not results:
        return None
    return {
        "passed": int(results.get("pass") or 0),
        "failed": int(results.get("fail") or 0),
        "warned": int(results.get("warn") or 0),
        "errored": int(results.get("error") or 0),
        "skipped": int(results.get("skipped") or 0),
    }


def _to_out(
    dataset: Dataset,
    upstream: dict[int, list[str]],
    downstream: dict[int, list[str]],
    now: datetime,
) -> DatasetOut:
    counts = _counts(dataset.test_results)
    return DatasetOut(
        **_common(dataset, upstream, downstream, now),
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
        tests=DbtTestCountsOut(**counts) if counts is not None else None,
    )


def _to_detail(
    dataset: Dataset,
    upstream: dict[int, list[str]],
    downstream: dict[int, list[str]],
    now: datetime,
) -> DatasetDetailOut:
    results = dataset.test_results or {}
    counts = _counts(results)
    expected = dataset.freshness_warn_after is not None or dataset.freshness_error_after is not None
    return DatasetDetailOut(
        **_common(dataset, upstream, downstream, now),
        columns=[
            ColumnDetailOut(
                name=column.name,
                data_type=column.data_type,
                position=column.position,
                is_nullable=column.is_nullable,
                description=column.description,
                tests=list(column.tests or []),
                is_primary_key=column.is_primary_key,
            )
            for column in dataset.columns
        ],
        tests=(
            DbtTestResultsOut(
                **counts,
                failing=[str(name) for name in results.get("failing") or []],
                warning=[str(name) for name in results.get("warning") or []],
                ran_at=str(results["ran_at"]) if results.get("ran_at") else None,
            )
            if counts is not None
            else None
        ),
        origin=dataset.origin,
        dbt_unique_id=dataset.dbt_unique_id,
        raw_sql=dataset.raw_sql,
        compiled_sql=dataset.compiled_sql,
        last_build_status=dataset.last_build_status,
        freshness_expectation=(
            FreshnessOut(
                warn_after_seconds=dataset.freshness_warn_after,
                error_after_seconds=dataset.freshness_error_after,
                as_of=as_utc(dataset.fresh_as_of),
            )
            if expected
            else None
        ),
    )


def list_datasets(
    session: Session,
    *,
    limit: int = 50,
    offset: int = 0,
    search: str | None = None,
    kind: str | None = None,
) -> Page[DatasetOut]:
    """One page of datasets: by name, or by relevance to ``search``.

    Args:
        session: Metadata store session.
        limit: Page size.
        offset: Number of matches to skip.
        search: Case-insensitive text found in the name, a column name, a tag or the
            description (``%`` and ``_`` match themselves). Ranked: the exact table or
            full name first, then names that start with it, names that contain it,
            exact then partial column names, tags, descriptions.
        kind: Exact dataset kind.
    """
    conditions: list[ColumnElement[bool]] = []
    order: list[Any] = [Dataset.name, Dataset.id]
    if search:
        rank = _relevance(search)
        conditions.append(rank > 0)
        order = [rank.desc(), *order]
    if kind:
        conditions.append(Dataset.kind == kind)
    total = session.scalar(select(func.count()).select_from(Dataset).where(*conditions)) or 0
    datasets = session.scalars(
        select(Dataset)
        .where(*conditions)
        .options(selectinload(Dataset.columns), *(defer(column) for column in HEAVY))
        .order_by(*order)
        .limit(limit)
        .offset(offset)
    ).all()
    upstream, downstream = _neighbours(session, [d.id for d in datasets])
    now = utcnow()
    return Page(
        items=[_to_out(d, upstream, downstream, now) for d in datasets],
        total=total,
        limit=limit,
        offset=offset,
    )


def _relevance(text: str) -> ColumnElement[int]:
    """How well a dataset matches ``text`` (0: not at all), as one SQL expression."""
    lowered = text.lower()
    columns = select(DatasetColumn.id).where(DatasetColumn.dataset_id == Dataset.id)
    return case(
        (func.lower(Dataset.table_name) == lowered, 100),
        (func.lower(Dataset.name) == lowered, 100),
        (Dataset.table_name.istartswith(text, autoescape=True), 70),
        (Dataset.name.icontains(text, autoescape=True), 50),
        (columns.where(func.lower(DatasetColumn.name) == lowered).exists(), 40),
        (columns.where(DatasetColumn.name.icontains(text, autoescape=True)).exists(), 30),
        (cast(Dataset.tags, String).icontains(text, autoescape=True), 20),
        (Dataset.description.icontains(text, autoescape=True), 10),
        else_=0,
    )


def get_dataset(session: Session, dataset_id: int) -> DatasetDetailOut:
    """One dataset, with its SQL, origin, column tests and keys, and failing tests.

    Raises:
        NotFound: no dataset has this id.
    """
    dataset = session.scalar(
        select(Dataset).where(Dataset.id == dataset_id).options(selectinload(Dataset.columns))
    )
    if dataset is None:
        raise NotFound(f"Dataset {dataset_id} not found")
    upstream, downstream = _neighbours(session, [dataset.id])
    return _to_detail(dataset, upstream, downstream, utcnow())
