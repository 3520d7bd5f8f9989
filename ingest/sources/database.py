"""``database`` sources: tables of any SQLAlchemy database (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import dlt
from dlt.sources.sql_database import sql_table
from sqlalchemy import create_engine, inspect, text
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


def _safe(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def resources(source: SourceSpec, tables: list[str]) -> list[DltResource]:
    url = _url(source)
    out = []
    for name in tables:
        spec = source.tables[name]
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
            write_disposition=spec.write_disposition,
            primary_key=list(spec.primary_key),
        )
        out.append(resource.with_name(name))
    return out


def check_connection(source: SourceSpec) -> None:
    url = _url(source)
    engine = create_engine(url, pool_pre_ping=False)
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
