"""What a role's queries may read, from the catalog, cached per catalog version."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from catalog.models import OUTSIDE_THE_WAREHOUSE, Dataset, DatasetColumn
from catalog.queries.policy import readable
from catalog.queries.validate import KnownTables, relations

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings


_cache: dict[tuple[str, str, Any], KnownTables] = {}
_lock = threading.Lock()


def catalog_version(session: Session) -> tuple[Any, ...]:
    """Changes whenever the catalog's datasets change (a refresh that changed anything)."""
    row = session.execute(
        select(func.count(Dataset.id), func.max(Dataset.updated_at), func.max(Dataset.id))
    ).one()
    return tuple(row)


def known_tables(session: Session, settings: Settings, role: str) -> KnownTables:
    """The relations ``role`` may query (and those it may not, for clearer errors)."""
    key = (settings.metadata_url, role, (catalog_version(session), settings.schema_prefix))
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    rows = session.execute(
        select(Dataset.schema_name, Dataset.table_name, DatasetColumn.name, DatasetColumn.data_type)
        .join(DatasetColumn, DatasetColumn.dataset_id == Dataset.id)
        .where(Dataset.kind.not_in(OUTSIDE_THE_WAREHOUSE))  # not queryable
        .order_by(Dataset.id, DatasetColumn.position)
    ).all()
    everything = relations((str(a), str(b), str(c), str(d or "")) for a, b, c, d in rows)
    patterns, prefix = settings.query_schemas(role), settings.schema_prefix
    allowed = tuple(r for r in everything if readable(r.schema, patterns, prefix))
    hidden = frozenset(
        r.qualified.lower() for r in everything if not readable(r.schema, patterns, prefix)
    )
    aliases = (
        {
            r.schema[len(prefix) :].lower(): r.schema
            for r in everything
            if r.schema.startswith(prefix)
        }
        if prefix
        else {}
    )
    known = KnownTables(allowed, hidden, aliases)
    with _lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = known
    return known
