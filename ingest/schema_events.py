"""Schema changes of raw tables, diffed from dlt's schema before and after each load.

Pure diffing (:func:`diff`) plus recording in ``schema_changes``. dlt never changes a
column's type in place: values of a new type go to a variant column
(``amount__v_text``), which is reported here as the type change it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from headwater.db import as_utc, session_scope
from ingest.models import SchemaChange

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.orm import Session

    from headwater.settings import Settings

VARIANT = "__v_"
Columns = dict[str, dict[str, str | None]]
"""{table: {column: data type}} of the data tables of a dlt schema."""


@dataclass(frozen=True)
class Change:
    table: str
    column: str | None
    change: str  # table_added | column_added | column_removed | type_changed
    old_type: str | None = None
    new_type: str | None = None


def columns_of(schema: Any) -> Columns:
    """The data tables of a dlt schema and their columns' types (dlt's own tables left out)."""
    if schema is None:
        return {}
    return {
        name: {column: spec.get("data_type") for column, spec in table.get("columns", {}).items()}
        for name, table in schema.tables.items()
        if not name.startswith("_dlt")
    }


def diff(before: Columns, after: Columns, tables: set[str] | None = None) -> list[Change]:
    """What changed from ``before`` to ``after``; a new table is one change, not one per column."""
    changes = []
    for table in sorted(after):
        if tables is not None and table.split("__")[0] not in tables:
            continue
        old, new = before.get(table), after[table]
        if old is None:
            if new:
                changes.append(Change(table, None, "table_added"))
            continue
        for column in sorted(set(new) - set(old)):
            if VARIANT in column:
                base = column.split(VARIANT)[0]
                changes.append(Change(table, base, "type_changed", old.get(base), new[column]))
            elif not column.startswith("_dlt"):
                changes.append(Change(table, column, "column_added", None, new[column]))
        for column in sorted(set(old) & set(new)):
            if old[column] and new[column] and old[column] != new[column]:
                changes.append(Change(table, column, "type_changed", old[column], new[column]))
    return changes


def record_changes(
    settings: Settings, source: str, changes: list[Change], load_id: str | None
) -> None:
    if not changes:
        return
    from ingest.store import store_ready

    with session_scope(settings.metadata_url) as session:
        if not store_ready(session, settings, "schema_changes"):
            return
        for change in changes:
            session.add(
                SchemaChange(
                    source=source,
                    table_name=change.table,
                    column_name=change.column,
                    change=change.change,
                    old_type=change.old_type,
                    new_type=change.new_type,
                    load_id=load_id,
                )
            )


@dataclass(frozen=True)
class RecordedChange:
    table: str
    column: str | None
    change: str
    old_type: str | None
    new_type: str | None
    at: datetime
    load_id: str | None


def recent_changes(session: Session, source: str, limit: int = 50) -> list[RecordedChange]:
    rows = session.scalars(
        select(SchemaChange)
        .where(SchemaChange.source == source)
        .order_by(SchemaChange.id.desc())
        .limit(limit)
    )
    return [
        RecordedChange(
            row.table_name,
            row.column_name,
            row.change,
            row.old_type,
            row.new_type,
            as_utc(row.at),
            row.load_id,
        )
        for row in rows
    ]
