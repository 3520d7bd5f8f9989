"""Ad hoc queries end to end: validate against what the caller's role may read, then run.

Used by the API (``POST /api/queries``) and the CLI (``headwater query``) alike.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from catalog.queries import execute
from catalog.queries.errors import QueryRejected
from catalog.queries.export import Format
from catalog.queries.export import export as export_rows
from catalog.queries.known import known_tables
from catalog.queries.policy import ROLES, Engine
from catalog.queries.validate import KnownTables, ValidatedQuery, memo_key, validate
from catalog.queries.versions import data_version, upstream_relations

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings


def engine_of(settings: Settings) -> Engine:
    return "duckdb" if settings.warehouse == "duckdb" else "postgres"


def prepare(
    session: Session,
    settings: Settings,
    sql: str,
    *,
    role: str,
    dialect: str | None = None,
    limit: int | None = None,
    params: Mapping[str, Any] | None = None,
    export: bool = False,
) -> ValidatedQuery:
    """``sql`` as it will run for ``role``, or QueryRejected saying why it may not.

    An ``export`` (streamed, never held in memory) has its own, higher row cap.
    """
    if role not in ROLES:
        raise QueryRejected(f"Unknown role {role!r}")
    return check(
        known_tables(session, settings, role),
        settings,
        sql,
        dialect=dialect,
        limit=limit,
        params=params,
        export=export,
    )


def check(
    known: KnownTables,
    settings: Settings,
    sql: str,
    *,
    dialect: str | None = None,
    limit: int | None = None,
    params: Mapping[str, Any] | None = None,
    export: bool = False,
) -> ValidatedQuery:
    """:func:`prepare` against tables already looked up (pure: no I/O)."""
    return validate(
        sql,
        known,
        engine=engine_of(settings),
        dialect=dialect,
        limit=limit,
        cap=settings.query_export_row_cap if export else settings.query_row_cap,
        max_chars=settings.query_max_sql_chars,
        params=params,
    )


def remembered(
    known: KnownTables,
    settings: Settings,
    sql: str,
    dialect: str | None,
    limit: int | None,
    params: Mapping[str, Any] | None,
    export: bool,
) -> bool:
    """Whether :func:`check` would answer this from memory (no parsing)."""
    cap = settings.query_export_row_cap if export else settings.query_row_cap
    key = memo_key(
        sql, engine_of(settings), dialect, limit, cap, settings.query_max_sql_chars, params
    )
    return key in known.memo


def version(settings: Settings, relations: tuple[str, ...]) -> str:
    """The data version of ``relations`` now (see :mod:`catalog.queries.versions`)."""
    return data_version(settings, relations)


def timeout_for(settings: Settings, requested: float | None) -> float:
    """The run time a query gets: what was asked, never above the configured maximum."""
    ceiling = settings.query_timeout_seconds
    return ceiling if requested is None else max(0.1, min(float(requested), ceiling))


def run(
    settings: Settings,
    query: ValidatedQuery,
    params: Mapping[str, Any] | None,
    *,
    role: str,
    timeout: float | None = None,
) -> execute.QueryResult:
    """Run a validated query on the locked-down connection of ``role``."""
    return execute.run(
        settings,
        query.bind_sql,
        params,
        role=role,
        limit=query.limit,
        timeout=timeout_for(settings, timeout),
    )


def depends_on(session: Session, settings: Settings, query: ValidatedQuery) -> tuple[str, ...]:
    """The warehouse tables whose data the result of ``query`` depends on (PostgreSQL;
    the embedded warehouse is versioned as a whole, see :mod:`catalog.queries.versions`)."""
    if settings.warehouse == "duckdb":
        return ()
    return tuple(upstream_relations(session, query.tables))


def cache_key(
    role: str,
    query: ValidatedQuery,
    params: Mapping[str, Any] | None,
    version: str,
) -> str:
    """The result cache key: the role, sqlglot's canonical SQL (whitespace and keyword
    case do not matter), the bound values, the row limit and the data version."""
    # Each value by its repr: equal but different values (1, 1.0, True; 0.0, -0.0) give
    # different answers, so they must not share a key.
    bound = tuple((name, repr(value)) for name, value in sorted((params or {}).items()))
    return _cache_key(role, query.engine, query.canonical, bound, query.limit, version)


@lru_cache(maxsize=4096)
def _cache_key(
    role: str,
    engine: str,
    canonical: str,
    bound: tuple[tuple[str, str], ...],
    limit: int,
    version: str,
) -> str:
    """The digest behind :func:`cache_key`, remembered: a cached answer's key is worked
    out once per data version, not on every request."""
    material = json.dumps([role, engine, canonical, bound, limit, version])
    return hashlib.sha256(material.encode()).hexdigest()


def export(
    settings: Settings,
    query: ValidatedQuery,
    params: Mapping[str, Any] | None,
    *,
    role: str,
    fmt: Format,
    timeout: float | None = None,
) -> Iterator[bytes]:
    """The whole result of an export-validated query, streamed as CSV or JSON lines."""
    return export_rows(
        settings,
        query.bind_sql,
        params,
        role=role,
        timeout=timeout_for(settings, timeout),
        fmt=fmt,
        limit=query.limit,
    )
