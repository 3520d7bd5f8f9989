"""Rebuild the catalog from the warehouse, the dbt manifest and the dlt schemas."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from catalog.extract import (
    DatasetInfo,
    Edge,
    dbt_lineage,
    dlt_lineage,
    dlt_tables,
    read_manifest,
    warehouse_tables,
)
from catalog.models import Dataset, DatasetColumn, LineageEdge
from headwater.cache import invalidate
from headwater.db import session_scope, utcnow
from headwater.warehouse import LOCK_WAIT_SECONDS, wait_for_warehouse

if TYPE_CHECKING:
    from headwater.settings import Settings


CACHE_NAMESPACE = "catalog"
"""The API's cached catalog responses, dropped after every refresh."""


@dataclass(frozen=True)
class RefreshSummary:
    datasets: int
    columns: int
    edges: int
    removed: int
    seconds: float


def collect(settings: Settings) -> tuple[list[DatasetInfo], list[Edge]]:
    """Everything the catalog should hold now, read from the warehouse and the artifacts."""
    prefix = settings.schema_prefix
    datasets = {d.name: d for d in warehouse_tables(settings)}

    edges: list[Edge] = []
    manifest = read_manifest(settings.dbt_target_dir / "manifest.json")
    if manifest is not None:
        docs, dbt_edges = dbt_lineage(manifest)
        for name, doc in docs.items():
            dataset = datasets.get(name)
            if dataset is None:
                continue
            dataset.description = doc["description"]
            for column in dataset.columns:
                column.description = doc["columns"].get(column.name)
        edges += [e for e in dbt_edges if e.upstream in datasets and e.downstream in datasets]

    sources = sorted(
        {d.schema_name[len(prefix) + 4 :] for d in datasets.values() if d.kind == "raw"}
    )
    for edge in dlt_lineage(dlt_tables(settings, sources), prefix):
        if edge.downstream not in datasets:
            continue
        source, table = edge.upstream.split(".", 2)[1:]
        datasets.setdefault(
            edge.upstream,
            DatasetInfo(edge.upstream, "source", source, table, f"{table} in source {source}"),
        )
        edges.append(edge)
    return list(datasets.values()), edges


def apply(session: Session, datasets: list[DatasetInfo], edges: list[Edge]) -> RefreshSummary:
    """Make the catalog tables hold exactly ``datasets`` and ``edges``."""
    started = time.perf_counter()
    existing = {
        d.name: d for d in session.scalars(select(Dataset).options(selectinload(Dataset.columns)))
    }
    wanted = {d.name for d in datasets}
    removed = [d for name, d in existing.items() if name not in wanted]
    for dataset in removed:
        session.delete(dataset)

    now = utcnow()
    by_name: dict[str, Dataset] = {}
    for info in datasets:
        row = existing.get(info.name)
        if row is None:
            row = Dataset(name=info.name, created_at=now)
            session.add(row)
        row.kind = info.kind
        row.schema_name = info.schema_name
        row.table_name = info.table_name
        row.description = info.description
        row.row_count = info.row_count
        row.updated_at = now
        _sync_columns(row, info)
        by_name[info.name] = row
    session.flush()

    session.execute(delete(LineageEdge))
    unique = {(e.upstream, e.downstream): e for e in edges}
    session.add_all(
        LineageEdge(upstream_id=by_name[up].id, downstream_id=by_name[down].id, origin=edge.origin)
        for (up, down), edge in unique.items()
    )
    return RefreshSummary(
        datasets=len(datasets),
        columns=sum(len(d.columns) for d in datasets),
        edges=len(unique),
        removed=len(removed),
        seconds=time.perf_counter() - started,
    )


def _sync_columns(row: Dataset, info: DatasetInfo) -> None:
    current = {c.name: c for c in row.columns}
    keep = []
    for column in info.columns:
        target = current.get(column.name) or DatasetColumn(name=column.name)
        target.data_type = column.data_type
        target.position = column.position
        target.is_nullable = column.is_nullable
        target.description = column.description
        keep.append(target)
    row.columns = keep


def refresh(settings: Settings, lock_wait: float = LOCK_WAIT_SECONDS) -> RefreshSummary:
    """Rebuild the catalog in one transaction; readers see the old or the new state.

    Waits up to ``lock_wait`` seconds while another process writes the DuckDB file.
    """
    started = time.perf_counter()
    datasets, edges = wait_for_warehouse(settings, lambda: collect(settings), lock_wait)
    with session_scope(settings.metadata_url) as session:
        summary = apply(session, datasets, edges)
    invalidate(settings.redis_url, CACHE_NAMESPACE)
    return replace(summary, seconds=time.perf_counter() - started)
