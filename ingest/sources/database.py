"""``database`` sources: tables of any SQLAlchemy database (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dlt
from dlt.sources.sql_database import sql_table
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from headwater.db import normalize_url
from ingest.checks import column_problems
from ingest.errors import IngestError

if TYPE_CHECKING:
    from dlt.extract.resource import DltResource

    from ingest.spec import SourceSpec

CHUNK_SIZE = 50_000


def _url(source: SourceSpec) -> str:
    url = source.connection or ""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise IngestError(
            "the connection is not a valid database URL",
            hint="use e.g. postgresql://user:${PASSWORD}@host/db or mysql+pymysql://...",
        ) from None
    return normalize_url(parsed.render_as_string(hide_password=False))


CONNECT_TIMEOUT_SECONDS = 10


def _engine(url: str) -> Engine:
    """An engine that gives up connecting after CONNECT_TIMEOUT_SECONDS."""
    backend = make_url(url).get_backend_name()
    arguments = (
        {"connect_timeout": CONNECT_TIMEOUT_SECONDS} if backend in ("postgresql", "mysql") else {}
    )
    return create_engine(url, pool_pre_ping=False, connect_args=arguments)


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def reflected_keys(url: str, tables: list[str]) -> dict[str, tuple[str, ...]]:
    """The primary key of each of ``tables`` as the database declares it (empty if none)."""
    if not tables:
        return {}
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            return {
                table: tuple(inspector.get_pk_constraint(table).get("constrained_columns") or ())
                for table in tables
            }
    except SQLAlchemyError:
        return {}  # the load itself reports the connection problem, with its hint
    finally:
        engine.dispose()


def resources(source: SourceSpec, tables: list[str]) -> list[DltResource]:
    url = _url(source)
    unkeyed = [
        source.tables[name].source_table or name
        for name in tables
        if source.tables[name].write_disposition is None and not source.tables[name].primary_key
    ]
    keys = reflected_keys(url, unkeyed)
    out = []
    for name in tables:
        spec = source.tables[name]
        disposition, key = spec.resolved(name, keys.get(spec.source_table or name, ()))
        incremental: dlt.sources.incremental[Any] | None = (
            dlt.sources.incremental(spec.cursor, lag=spec.lag) if spec.cursor else None
        )
        resource = sql_table(
            credentials=url,
            table=spec.source_table or name,
            incremental=incremental,
            backend="pyarrow",
            chunk_size=CHUNK_SIZE,
            reflection_level="full_with_precision",
            defer_table_reflect=True,
        )
        resource.apply_hints(
            table_name=name,
            write_disposition=disposition,
            primary_key=list(key),
        )
        out.append(resource.with_name(name))
    return out


def check_connection(source: SourceSpec) -> None:
    url = _url(source)
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            inspector = inspect(connection)
            present = set(inspector.get_table_names())
            problems = [
                problem
                for name, spec in source.tables.items()
                if (spec.source_table or name) in present
                for problem in column_problems(
                    name,
                    spec,
                    [c["name"] for c in inspector.get_columns(spec.source_table or name)],
                )
            ]
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        reason = str(orig) if orig is not None else type(exc).__name__
        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
        raise IngestError(
            f"cannot connect to {_safe(url)}: {(reason.splitlines() or [''])[0]}"
        ) from None
    finally:
        engine.dispose()
    missing = [
        spec.source_table or name
        for name, spec in source.tables.items()
        if (spec.source_table or name) not in present
    ]
    if missing:
        raise IngestError(f"{_safe(url)} has no table(s) {', '.join(missing)}")
    if problems:
        raise IngestError("; ".join(problems), hint="fix the column names in the sources file")
