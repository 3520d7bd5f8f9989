"""Original column names: the source's own spelling of columns the warehouse renamed.

dlt normalises every name for the warehouse (``CustomerID`` becomes ``customer_id``,
``Order Date`` becomes ``order_date``). A tap on each resource sees the first batch
before that happens; after a successful load the names that changed are stored in
``source_columns`` and shown with the source's state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from headwater.db import session_scope
from ingest.models import SourceColumn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings


def _names(item: Any) -> list[str]:
    if hasattr(item, "column_names"):  # an Arrow table or batch
        return [str(name) for name in item.column_names]
    if isinstance(item, list) and item and isinstance(item[0], dict):
        return [str(name) for name in item[0]]
    if isinstance(item, dict):
        return [str(name) for name in item]
    return []


class OriginalNames:
    """Remembers, per table, the column names of the first batch a resource yields."""

    def __init__(self) -> None:
        self.seen: dict[str, list[str]] = {}

    def tap(self, table: str) -> Callable[[Any], Any]:
        def record(item: Any) -> Any:
            if table not in self.seen:
                names = _names(item)
                if names:
                    self.seen[table] = names
            return item

        return record

    def renamed(self, normalize: Callable[[str], str]) -> dict[str, dict[str, str]]:
        """{table: {warehouse name: original}} of the names that ``normalize`` changes."""
        out: dict[str, dict[str, str]] = {}
        for table, names in self.seen.items():
            changed = {normalize(name): name for name in names if normalize(name) != name}
            if changed:
                out[table] = changed
        return out


def record_names(settings: Settings, source: str, renamed: dict[str, dict[str, str]]) -> None:
    """Store the renamed columns of the tables just loaded (replacing what was known)."""
    if not renamed:
        return
    from ingest.store import store_ready

    with session_scope(settings.metadata_url) as session:
        if not store_ready(session, settings, SourceColumn.__tablename__):
            return
        for table, columns in renamed.items():
            session.execute(
                delete(SourceColumn).where(
                    SourceColumn.source == source, SourceColumn.table_name == table
                )
            )
            session.add_all(
                SourceColumn(
                    source=source, table_name=table, column_name=name, original_name=original
                )
                for name, original in sorted(columns.items())
            )


def original_names(session: Session, source: str) -> dict[str, dict[str, str]]:
    """{table: {warehouse name: original}} of a source's renamed columns."""
    out: dict[str, dict[str, str]] = {}
    rows = session.scalars(select(SourceColumn).where(SourceColumn.source == source))
    for row in rows:
        out.setdefault(row.table_name, {})[row.column_name] = row.original_name
    return out
