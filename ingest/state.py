"""Incremental state made visible and resettable, and the history of loads per table.

Cursor values live in dlt's pipeline state (local, and synced to the warehouse);
the outcome of every load of every table is recorded in ``source_loads``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from headwater.db import as_utc, session_scope, utcnow
from ingest.errors import IngestError
from ingest.models import SourceLoad
from ingest.spec import TableSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sqlalchemy.orm import Session

    from headwater.settings import Settings
    from ingest.spec import SourceSpec

MAX_CURSOR_TEXT = 200


@dataclass(frozen=True)
class LastLoad:
    status: str
    rows: int
    finished_at: datetime
    load_id: str | None
    error: str | None


@dataclass(frozen=True)
class TableState:
    table: str
    cursor: str | None
    cursor_value: str | None
    last_load: LastLoad | None


def _pipeline_state(settings: Settings, name: str, source: SourceSpec) -> dict[str, Any]:
    """dlt's local state of the source's pipeline; empty when it never ran here."""
    import dlt
    from dlt.pipeline.exceptions import CannotRestorePipelineException

    from ingest.destinations import pipeline_name

    try:
        pipe = dlt.attach(
            pipeline_name=pipeline_name(settings, name, source),
            pipelines_dir=str(settings.dlt_dir),
        )
    except CannotRestorePipelineException:
        return {}
    return dict(pipe.state)


def cursor_values(
    settings: Settings, name: str, source: SourceSpec, state: Mapping[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """{table: {cursor column: last value}} from the pipeline's ``state`` (read from its
    local folder when not given)."""
    if state is None:
        state = _pipeline_state(settings, name, source)
    out: dict[str, dict[str, Any]] = {}
    for section in state.get("sources", {}).values():
        for table, resource in section.get("resources", {}).items():
            for cursor, incremental in resource.get("incremental", {}).items():
                out.setdefault(table, {})[cursor] = incremental.get("last_value")
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:MAX_CURSOR_TEXT]


def last_loads(session: Session, name: str) -> dict[str, LastLoad]:
    """The newest recorded load of each table of source ``name``."""
    newest = (
        select(SourceLoad.table_name, func.max(SourceLoad.id).label("id"))
        .where(SourceLoad.source == name)
        .group_by(SourceLoad.table_name)
        .subquery()
    )
    rows = session.scalars(select(SourceLoad).join(newest, SourceLoad.id == newest.c.id))
    return {
        row.table_name: LastLoad(
            row.status, row.rows, as_utc(row.finished_at), row.load_id, row.error
        )
        for row in rows
    }


def table_states(
    settings: Settings, session: Session | None, name: str, source: SourceSpec
) -> list[TableState]:
    """Each declared table of ``source``: its cursor, where it stands, its last load."""
    values = cursor_values(settings, name, source)
    loads = last_loads(session, name) if session is not None else {}
    tables = source.tables or {table: TableSpec() for table in sorted({*values, *loads})}
    return [
        TableState(
            table,
            spec.cursor,
            _text(values.get(table, {}).get(spec.cursor)) if spec.cursor else None,
            loads.get(table),
        )
        for table, spec in tables.items()
    ]


def loaded_tables(settings: Settings, name: str) -> list[str]:
    """The tables loads of source ``name`` have written so far, by name."""
    from ingest.store import store_ready

    with session_scope(settings.metadata_url) as session:
        if not store_ready(session, settings, SourceLoad.__tablename__):
            return []
        found = session.scalars(
            select(SourceLoad.table_name)
            .where(SourceLoad.source == name, SourceLoad.status == "loaded")
            .distinct()
        )
        return sorted(found)


def reset_state(settings: Settings, name: str, source: SourceSpec, tables: list[str]) -> list[str]:
    """Forget the cursors of ``tables``: their next load reads everything again.

    The loaded rows stay. Returns the tables whose state was dropped.

    Raises:
        IngestError: the source never loaded here, or a load is pending.
    """
    import dlt
    from dlt.pipeline.exceptions import CannotRestorePipelineException, PipelineNeverRan
    from dlt.pipeline.helpers import pipeline_drop

    from headwater.warehouse import wait_for_warehouse
    from ingest.destinations import pipeline_name, target_of

    try:
        pipe = dlt.attach(
            pipeline_name=pipeline_name(settings, name, source),
            pipelines_dir=str(settings.dlt_dir),
            destination=target_of(settings, name, source).dlt(),
            dataset_name=settings.raw_schema(name),
        )
    except CannotRestorePipelineException:
        raise IngestError(f"source {name!r} has no state to reset: it never loaded") from None
    if pipe.has_pending_data:
        raise IngestError(
            f"source {name!r} has a load in progress or cut short",
            hint=f"run `headwater ingest {name}` to finish it, then reset",
        )
    with_state = [t for t in tables if t in cursor_values(settings, name, source)]
    if not with_state:
        return []
    try:
        drop = pipeline_drop(pipe, resources=with_state, state_only=True)
    except PipelineNeverRan:
        raise IngestError(f"source {name!r} has no state to reset: it never loaded") from None
    wait_for_warehouse(settings, drop)
    return with_state


def record_loads(
    settings: Settings,
    name: str,
    source: SourceSpec,
    rows: dict[str, int],
    *,
    started_at: datetime,
    load_id: str | None = None,
    error: str | None = None,
    state: Mapping[str, Any] | None = None,
) -> None:
    """Record the outcome of one load for each table in ``rows`` (when the store exists);
    ``state``: the pipeline's, when the caller has it at hand."""
    from ingest.store import store_ready

    values = cursor_values(settings, name, source, state) if error is None else {}
    finished = utcnow()
    with session_scope(settings.metadata_url) as session:
        if not store_ready(session, settings, SourceLoad.__tablename__):
            return
        for table, count in rows.items():
            cursor = next(iter(values.get(table, {}).values()), None)
            session.add(
                SourceLoad(
                    source=name,
                    table_name=table,
                    status="failed" if error else "loaded",
                    rows=count,
                    load_id=load_id,
                    cursor_value=_text(cursor),
                    error=error,
                    started_at=started_at,
                    finished_at=finished,
                )
            )
