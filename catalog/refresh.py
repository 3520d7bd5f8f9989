"""Rebuild the catalog from the warehouse, the dbt manifest and the dlt schemas."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session, selectinload

from catalog.artifacts import DbtArtifacts, read_artifacts
from catalog.columns import ModelAnalysis, ModelQuery, analyse, load_edges
from catalog.extract import (
    DatasetInfo,
    DbtRelation,
    DltTable,
    Edge,
    dataset_name,
    dbt_lineage,
    dbt_relations,
    dbt_schemas,
    default_schemas,
    dlt_lineage,
    dlt_table_info,
    is_raw_schema,
    kind_of,
    warehouse_tables,
)
from catalog.graph import chunks, column_graph
from catalog.history import DATASET_ADDED, DATASET_REMOVED, Change, Column, diff_columns
from catalog.lineage import FILTER, ColumnEdge
from catalog.models import (
    OUTSIDE_THE_WAREHOUSE,
    ColumnLineage,
    Dataset,
    DatasetColumn,
    LineageAnalysis,
    LineageEdge,
    SchemaEvent,
)
from catalog.origins import Flow, SourceOrigin
from headwater.cache import invalidate
from headwater.db import session_scope, utcnow
from headwater.warehouse import LOCK_WAIT_SECONDS, wait_for_warehouse

log = logging.getLogger("headwater.catalog")

if TYPE_CHECKING:
    from headwater.settings import Settings


CACHE_NAMESPACE = "catalog"
"""The API's cached catalog responses, dropped after every refresh."""


IMPACT_DEPTH = 10
IMPACT_LIMIT = 500
"""A schema change records at most this many downstream columns."""


@dataclass(frozen=True)
class RefreshSummary:
    datasets: int
    columns: int
    edges: int
    removed: int
    seconds: float
    column_edges: int = 0
    """Column edges written by this refresh (those of unchanged models stay)."""
    analysed: int = 0
    """Models whose SQL or upstream schema changed, analysed again."""
    unresolved: int = 0
    """Models with columns whose lineage is incomplete (each says why)."""
    schema_changes: int = 0


@dataclass
class ColumnLineageUpdate:
    """What a refresh changes in the column lineage."""

    models: set[str] = field(default_factory=set)
    """Every model the catalog holds now."""
    analyses: dict[str, ModelAnalysis] = field(default_factory=dict)
    """The models analysed again (the others keep their edges)."""
    loads: list[tuple[str, ColumnEdge]] = field(default_factory=list)
    """``(raw table, edge)``: source column → raw column, rewritten every time."""
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    """Dataset → {lower-cased column: its name}: DuckDB's SQL names columns in any case,
    the edges keep the warehouse's spelling."""


def column_lineage(
    settings: Settings,
    datasets: list[DatasetInfo],
    edges: list[Edge],
    previous: Mapping[str, str],
) -> ColumnLineageUpdate:
    """Analyse the models whose compiled SQL or upstream schema changed since
    ``previous`` (dataset → fingerprint), and the loads' column edges.

    A source dataset gets the columns of the raw table it was loaded into."""
    tables = {d.name: {c.name: c.data_type for c in d.columns} for d in datasets}
    upstream: dict[str, list[str]] = defaultdict(list)
    for edge in edges:
        if edge.origin == "dbt":
            upstream[edge.downstream].append(edge.upstream)
    models = [
        ModelQuery(d.name, d.compiled_sql, tuple(sorted(upstream.get(d.name, []))))
        for d in datasets
        if (d.dbt_unique_id or "").startswith("model.")
    ]
    dialect = "duckdb" if settings.warehouse == "duckdb" else "postgres"
    update = ColumnLineageUpdate(
        models={m.dataset for m in models}, analyses=analyse(models, tables, dialect, previous)
    )
    update.columns = {
        name: {column.lower(): column for column in columns} for name, columns in tables.items()
    }
    by_name = {d.name: d for d in datasets}
    # One raw table per source table: dlt's nested tables (``orders__items``) hold
    # values of a nested field, not columns of the source table itself.
    roots: dict[str, str] = {}
    for edge in edges:
        if edge.origin == "dlt" and (
            edge.upstream not in roots or len(edge.downstream) < len(roots[edge.upstream])
        ):
            roots[edge.upstream] = edge.downstream
    update.loads = load_edges(sorted(roots.items()), tables)
    for raw, column_edge in update.loads:
        source = by_name.get(column_edge.upstream)
        if (
            source is not None
            and source.kind == "source"
            and all(c.name != column_edge.upstream_column for c in source.columns)
        ):
            column = next(c for c in by_name[raw].columns if c.name == column_edge.column)
            source.columns.append(
                replace(column, name=column_edge.upstream_column, position=len(source.columns) + 1)
            )
    return update


REFRESH_LOCK = 0x68_77_63_61_74  # "hwcat"
"""PostgreSQL advisory lock held by a refresh's transaction."""


def _one_refresh_at_a_time(session: Session) -> None:
    """Two refreshes writing at once would clash on names or record changes twice: on
    PostgreSQL the second waits for the first's transaction (SQLite takes one writer
    anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("select pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK})


def previous_fingerprints(session: Session) -> dict[str, str]:
    return dict(
        session.execute(
            select(Dataset.name, LineageAnalysis.fingerprint).join(
                LineageAnalysis, LineageAnalysis.dataset_id == Dataset.id
            )
        ).all()
    )


def collect(
    settings: Settings,
    origins: Mapping[str, SourceOrigin] | None = None,
    artifacts: DbtArtifacts | None = None,
    flows: Sequence[Flow] = (),
) -> tuple[list[DatasetInfo], list[Edge]]:
    """Everything the catalog should hold now, read from the warehouse and the artifacts.

    Covers every schema the dbt project writes or reads (from the newest manifest) and
    the raw schema of every source (declared in ``origins``, or named by the rule).
    """
    origins = dict(origins or {})
    if artifacts is None:
        artifacts = read_artifacts(settings)
    manifest = artifacts.manifest
    relations = dbt_relations(artifacts, settings)
    schemas = dbt_schemas(manifest) if manifest else default_schemas(settings)
    schemas |= {settings.raw_schema(source) for source in origins}
    loaded_at = {
        name: relation.loaded_at_field
        for name, relation in relations.items()
        if relation.loaded_at_field
        and (relation.warn_after is not None or relation.error_after is not None)
    }
    datasets = {d.name: d for d in warehouse_tables(settings, schemas, loaded_at, declared=origins)}
    for dataset in datasets.values():
        describe(dataset, relations.get(dataset.name.lower()), settings, origins)

    edges: list[Edge] = []
    if manifest is not None:
        _, dbt_edges = dbt_lineage(manifest)
        edges += [e for e in dbt_edges if e.upstream in datasets and e.downstream in datasets]

    raw_sources: dict[str, list[DatasetInfo]] = {}
    for dataset in datasets.values():
        source = settings.raw_source(dataset.schema_name)
        if dataset.kind == "raw" and source is not None:
            raw_sources.setdefault(source, []).append(dataset)
    loaded = dlt_table_info(settings, sorted(raw_sources))
    for dlt_table in loaded:
        raw = datasets.get(dataset_name(settings.raw_schema(dlt_table.source), dlt_table.table))
        if raw is not None:
            _describe_load(raw, dlt_table, origins.get(dlt_table.source))
    for edge in dlt_lineage([(t.source, t.resource, t.table) for t in loaded], settings):
        if edge.downstream not in datasets:
            continue
        source, table = edge.upstream.split(".", 2)[1:]
        origin = origins.get(source)
        datasets.setdefault(
            edge.upstream,
            DatasetInfo(
                edge.upstream,
                "source",
                source,
                table,
                f"{table} in source {source}",
                source_kind=origin.kind if origin else None,
                origin=origin.origin_of(table) if origin else None,
            ),
        )
        edges.append(edge)
    for source, tables in raw_sources.items():
        origin = origins.get(source)
        for raw in tables:  # tables dlt does not describe (no local pipeline state)
            if origin is not None and raw.source_kind is None:
                raw.source_kind = origin.kind
                raw.origin = origin.origin_of(raw.table_name)
    edges += _flows(datasets, flows, origins)
    return list(datasets.values()), edges


def _flows(
    datasets: dict[str, DatasetInfo], flows: Sequence[Flow], origins: Mapping[str, SourceOrigin]
) -> list[Edge]:
    """Source table → destination table for loads that leave the warehouse."""
    edges: dict[tuple[str, str], Edge] = {}
    for flow in flows:
        origin = origins.get(flow.source)
        for table in flow.tables:
            upstream = f"source.{flow.source}.{table}"
            datasets.setdefault(
                upstream,
                DatasetInfo(
                    upstream,
                    "source",
                    flow.source,
                    table,
                    f"{table} in source {flow.source}",
                    source_kind=origin.kind if origin else None,
                    origin=origin.origin_of(table) if origin else None,
                ),
            )
            downstream = f"{flow.target}.{flow.schema}.{table}"
            known = datasets.get(downstream)
            loaders = f"{known.description}; " if known and known.description else ""
            datasets[downstream] = DatasetInfo(
                downstream,
                "destination",
                flow.schema,
                table,
                f"{loaders}loaded by {flow.by}"
                if known
                else f"{table} in destination {flow.target}, loaded by {flow.by}",
                source_kind=origin.kind if origin else None,
                origin=origin.origin_of(table) if origin else None,
            )
            edges[(upstream, downstream)] = Edge(upstream, downstream, "load")
    return list(edges.values())


def describe(
    dataset: DatasetInfo,
    relation: DbtRelation | None,
    settings: Settings,
    declared: Mapping[str, SourceOrigin],
) -> None:
    """Fill in what dbt knows of a warehouse table (its kind first)."""
    raw = is_raw_schema(settings, dataset.schema_name, declared)
    if relation is not None and relation.kind is not None:
        dataset.kind = relation.kind
    elif raw or relation is not None:  # a table a dbt source() reads is a loaded table
        dataset.kind = "raw"
    else:
        dataset.kind = kind_of(settings, dataset.schema_name)
    dataset.materialization = dataset.relation_type
    if relation is None:
        return
    dataset.dbt_unique_id = relation.unique_id
    dataset.dbt_source = relation.dbt_source
    dataset.description = relation.description
    dataset.owner = relation.owner
    dataset.tags = list(relation.tags)
    dataset.materialization = relation.materialization or dataset.relation_type
    dataset.raw_sql = relation.raw_sql
    dataset.compiled_sql = relation.compiled_sql
    dataset.last_built_at = relation.last_built_at
    dataset.last_build_status = relation.last_build_status
    dataset.test_results = relation.test_results
    dataset.freshness_warn_after = relation.warn_after
    dataset.freshness_error_after = relation.error_after
    if relation.warn_after is not None or relation.error_after is not None:
        loaded_at = relation.loaded_at_field
        dataset.fresh_as_of = dataset.fresh_as_of if loaded_at else dataset.last_loaded_at
    primary_key = relation.primary_key
    for column in dataset.columns:
        declared_column = relation.columns.get(column.name.lower())
        if declared_column is not None:
            column.description = declared_column.description
            column.tests = sorted(declared_column.tests)
        column.is_primary_key = (column.name.lower() in primary_key) if primary_key else None


def _describe_load(dataset: DatasetInfo, table: DltTable, origin: SourceOrigin | None) -> None:
    """A raw table: where dlt read it from, and the primary key dlt merges on."""
    if origin is not None:
        dataset.source_kind = origin.kind
        dataset.origin = origin.origin_of(table.resource)
    if table.primary_key and not any(c.is_primary_key for c in dataset.columns):
        key = {name.lower() for name in table.primary_key}
        for column in dataset.columns:
            column.is_primary_key = column.name.lower() in key


DATASET_FIELDS = (
    "description",
    "row_count",
    "fqn",
    "dbt_unique_id",
    "dbt_source",
    "owner",
    "materialization",
    "raw_sql",
    "compiled_sql",
    "size_bytes",
    "source_kind",
    "origin",
    "last_loaded_at",
    "last_built_at",
    "last_build_status",
    "freshness_warn_after",
    "freshness_error_after",
    "fresh_as_of",
    "test_results",
)
"""Attributes copied as they are from a :class:`DatasetInfo` to its row."""


def signature(info: DatasetInfo) -> str:
    """A key of everything the catalog stores about a dataset: a refresh rewrites only the
    datasets whose key moved."""
    fields = {k: v for k, v in vars(info).items() if k != "columns"}
    body = json.dumps([fields, [vars(c) for c in info.columns]], sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


def apply(
    session: Session,
    datasets: list[DatasetInfo],
    edges: list[Edge],
    lineage: ColumnLineageUpdate | None = None,
) -> RefreshSummary:
    """Make the catalog tables hold exactly ``datasets`` and ``edges``, apply ``lineage``
    and record each schema change since the last refresh.

    Datasets whose signature did not move are not even loaded."""
    started = time.perf_counter()
    known = {
        name: (dataset_id, key)
        for name, dataset_id, key in session.execute(
            select(Dataset.name, Dataset.id, Dataset.signature)
        )
    }
    keys = {info.name: signature(info) for info in datasets}
    changed = [info for info in datasets if known.get(info.name, (0, None))[1] != keys[info.name]]
    removed = sorted(name for name in known if name not in keys)
    touched = [info.name for info in changed if info.name in known] + removed
    rows = {
        row.name: row
        for chunk in chunks(touched)
        for row in session.scalars(
            select(Dataset).where(Dataset.name.in_(chunk)).options(selectinload(Dataset.columns))
        )
    }
    # Before anything changes: the impact of a change is read from the lineage as it was.
    events = _schema_events(session, rows, changed, removed) if known else []
    for name in removed:
        session.delete(rows[name])

    now = utcnow()
    for info in changed:
        row = rows.get(info.name)
        if row is None:
            row = rows[info.name] = Dataset(name=info.name, created_at=now)
            session.add(row)
        row.kind = info.kind
        row.schema_name = info.schema_name
        row.table_name = info.table_name
        for attribute in DATASET_FIELDS:
            setattr(row, attribute, getattr(info, attribute))
        row.tags = list(info.tags)
        row.signature = keys[info.name]
        row.updated_at = now
        _sync_columns(row, info)
    session.flush()
    ids = {name: dataset_id for name, (dataset_id, _) in known.items() if name in keys}
    ids.update((info.name, rows[info.name].id) for info in changed)

    session.execute(delete(LineageEdge))
    unique = {(e.upstream, e.downstream): e for e in edges}
    if unique:
        session.execute(
            insert(LineageEdge),
            [
                {"upstream_id": ids[up], "downstream_id": ids[down], "origin": edge.origin}
                for (up, down), edge in unique.items()
            ],
        )
    written = _apply_column_lineage(session, ids, lineage) if lineage else 0
    for event in events:
        event.dataset_id = ids.get(event.dataset)
    session.add_all(events)
    analyses = lineage.analyses.values() if lineage else ()
    return RefreshSummary(
        datasets=len(datasets),
        columns=sum(len(d.columns) for d in datasets),
        edges=len(unique),
        removed=len(removed),
        seconds=time.perf_counter() - started,
        column_edges=written,
        analysed=len(lineage.analyses) if lineage else 0,
        unresolved=sum(bool(a.lineage.unresolved) for a in analyses),
        schema_changes=len(events),
    )


def _apply_column_lineage(
    session: Session, ids: Mapping[str, int], update: ColumnLineageUpdate
) -> int:
    """Replace the edges of the models analysed again and of every load; keep the rest.
    Returns the number of edges written."""
    stale = [
        dataset_id
        for dataset_id, name in session.execute(
            select(LineageAnalysis.dataset_id, Dataset.name).join(
                Dataset, Dataset.id == LineageAnalysis.dataset_id
            )
        )
        if name not in update.models
    ]
    redo = [ids[name] for name in update.analyses] + stale
    raws = sorted({ids[raw] for raw, _ in update.loads if raw in ids})
    for chunk in chunks(redo + raws):
        session.execute(delete(ColumnLineage).where(ColumnLineage.downstream_id.in_(chunk)))
    for chunk in chunks(redo):
        session.execute(delete(LineageAnalysis).where(LineageAnalysis.dataset_id.in_(chunk)))

    rows: list[dict[str, object]] = []
    now = utcnow()
    analyses = []
    names = {name.lower(): name for name in ids}

    def spelled(dataset: str, column: str | None) -> str | None:
        if column is None:
            return None
        return update.columns.get(dataset, {}).get(column.lower(), column)

    for name, analysis in update.analyses.items():
        unresolved = dict(analysis.lineage.unresolved)
        for edge in analysis.lineage.edges:
            upstream = edge.upstream if edge.upstream in ids else names.get(edge.upstream.lower())
            if upstream is None:
                unresolved.setdefault(
                    edge.column or "*", f"reads {edge.upstream}, which the catalog does not hold"
                )
                continue
            rows.append(
                _edge_row(
                    ids[name],
                    ids[upstream],
                    replace(
                        edge,
                        column=spelled(name, edge.column),
                        upstream_column=spelled(upstream, edge.upstream_column) or "",
                    ),
                )
            )
        analyses.append(
            {
                "dataset_id": ids[name],
                "fingerprint": analysis.fingerprint,
                "unresolved": unresolved,
                "analysed_at": now,
            }
        )
    for raw, edge in update.loads:
        if raw in ids and edge.upstream in ids:
            rows.append(_edge_row(ids[raw], ids[edge.upstream], edge))
    if rows:
        session.execute(insert(ColumnLineage), rows)
    if analyses:
        session.execute(insert(LineageAnalysis), analyses)
    return len(rows)


def _edge_row(downstream: int, upstream: int, edge: ColumnEdge) -> dict[str, object]:
    return {
        "downstream_id": downstream,
        "downstream_column": None if edge.kind == FILTER else edge.column,
        "upstream_id": upstream,
        "upstream_column": edge.upstream_column,
        "kind": edge.kind,
    }


def _schema_events(
    session: Session,
    rows: Mapping[str, Dataset],
    changed: list[DatasetInfo],
    removed: list[str],
) -> list[SchemaEvent]:
    """One event per column change, dataset added or removed, each with its impact.

    ``rows`` holds the stored state of the datasets that ``changed`` or were ``removed``.
    """
    events: list[SchemaEvent] = []
    now = utcnow()
    for info in changed:
        row = rows.get(info.name)
        if row is None:
            events.append(SchemaEvent(dataset=info.name, change=DATASET_ADDED, impact=[]))
            continue
        old = [Column(c.name, c.data_type, c.position) for c in row.columns]
        new = [Column(c.name, c.data_type, c.position) for c in info.columns]
        if not old and info.kind in OUTSIDE_THE_WAREHOUSE:
            continue  # a source table's columns, named for the first time
        for change in diff_columns(old, new):
            events.append(_event(session, row, change))
    for name in removed:
        events.append(_event(session, rows[name], Change(DATASET_REMOVED)))
    for event in events:
        event.detected_at = now
    return events


def _event(session: Session, row: Dataset, change: Change) -> SchemaEvent:
    impact: list[dict[str, Any]] = []
    if change.change != "added":
        # What read the column (or the dataset) until now.
        column = change.old_name or change.column
        if change.change == DATASET_REMOVED or any(c.name == column for c in row.columns):
            graph = column_graph(
                session,
                row,
                None if change.change == DATASET_REMOVED else column,
                "down",
                IMPACT_DEPTH,
            )
            names = {n.id: n.name for n in graph.nodes}
            best: dict[tuple[str, str | None], int] = {}
            for link in graph.columns:
                key = (names.get(link.downstream_id, "?"), link.downstream_column)
                best[key] = min(best.get(key, link.depth), link.depth)
            impact = [
                {"dataset": dataset, "column": col, "depth": depth}
                for (dataset, col), depth in sorted(best.items(), key=lambda i: (i[1], i[0][0]))
            ][:IMPACT_LIMIT]
    return SchemaEvent(
        dataset=row.name,
        change=change.change,
        column=change.column,
        old_name=change.old_name,
        old_type=change.old_type,
        new_type=change.new_type,
        impact=impact,
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
        target.tests = list(column.tests)
        target.is_primary_key = column.is_primary_key
        keep.append(target)
    row.columns = keep


def refresh(
    settings: Settings,
    lock_wait: float = LOCK_WAIT_SECONDS,
    origins: Mapping[str, SourceOrigin] | None = None,
    flows: Sequence[Flow] = (),
) -> RefreshSummary:
    """Rebuild the catalog in one transaction; readers see the old or the new state.

    Waits up to ``lock_wait`` seconds while another process writes the DuckDB file.
    ``origins`` (declared source → :class:`SourceOrigin`) tells where raw tables came
    from, ``flows`` which tables loads take to destinations outside the warehouse;
    callers that may import ``ingest`` and ``orchestration`` build both.
    """
    started = time.perf_counter()
    datasets, edges = wait_for_warehouse(
        settings, lambda: collect(settings, origins, flows=flows), lock_wait
    )
    with session_scope(settings.metadata_url) as session:
        _one_refresh_at_a_time(session)
        lineage = column_lineage(settings, datasets, edges, previous_fingerprints(session))
        summary = apply(session, datasets, edges, lineage)
    invalidate(settings.redis_url, CACHE_NAMESPACE)
    if settings.warehouse == "postgres":
        inside = {d.schema_name for d in datasets if d.kind not in OUTSIDE_THE_WAREHOUSE}
        _grant_query_access(settings, inside)
    return replace(summary, seconds=time.perf_counter() - started)


def _grant_query_access(settings: Settings, schemas: set[str]) -> None:
    """New schemas (a new source's raw schema) become readable to the query roles that
    may read them; a failure only delays that, it never fails the refresh."""
    from catalog.queries.roles import grant_query_access

    try:
        grant_query_access(settings, sorted(schemas))
    except Exception as exc:
        log.warning("catalog: query roles not granted on the warehouse: %s", exc)
