"""``database`` sources: tables of any SQLAlchemy database (SQLite, PostgreSQL, MySQL)."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import dlt
from dlt.sources.sql_database import sql_table
from dlt.sources.sql_database.helpers import ConnectorXTableLoader, register_table_loader_backend
from dlt.sources.sql_database.schema_types import default_table_adapter
from sqlalchemy import Engine, MetaData, Table, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SQLAlchemyError

from headwater.db import normalize_url
from ingest.checks import column_problems
from ingest.errors import IngestError
from ingest.masks import mask_url, scrub, url_secrets

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dlt.extract.resource import DltResource

    from ingest.spec import SourceSpec, TableSpec

CHUNK_SIZE = 50_000
STREAM_BATCH_ROWS = 200_000
ARROW_NATIVE = {"postgresql", "mysql"}
ARROW_BACKEND = "headwater_connectorx"


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
    return mask_url(url)


def _connection_error(url: str, exc: SQLAlchemyError) -> IngestError:
    """One line naming the database (password masked) and what its driver said."""
    orig = getattr(exc, "orig", None)
    reason = scrub(str(orig) if orig is not None else type(exc).__name__, url_secrets(url))
    return IngestError(f"cannot connect to {_safe(url)}: {(reason.splitlines() or [''])[0]}")


Reflected = tuple[dict[str, Table], dict[str, tuple[str, ...]]]
"""Source tables by name, each reflected, and the primary key of each."""


def reflected(url: str, tables: list[str]) -> Reflected:
    """``tables`` reflected once (each in a metadata of its own), and the primary key of
    each as the database declares it (empty if none). dlt reads a table from such a
    metadata instead of reflecting it again on its own connection (about 30 ms a table
    on an incremental run).

    Raises:
        IngestError: the database cannot be reached, or lacks one of the tables.
    """
    if not tables:
        return {}, {}
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            found = {}
            missing = []
            for table in dict.fromkeys(tables):
                try:
                    found[table] = Table(
                        table, MetaData(), autoload_with=connection, resolve_fks=False
                    )
                except NoSuchTableError:
                    missing.append(table)
            if missing:
                raise IngestError(f"{_safe(url)} has no table(s) {', '.join(missing)}")
            keys = {
                table: tuple(column.name for column in reflection.primary_key.columns)
                for table, reflection in found.items()
            }
            return found, keys
    except SQLAlchemyError as exc:
        raise _connection_error(url, exc) from None
    finally:
        engine.dispose()


MYSQL_TYPES = text(
    """
    select c.column_name, c.data_type, c.column_type,
           exists (select 1 from information_schema.check_constraints k
                   where k.constraint_schema = c.table_schema
                     and k.check_clause like concat('%json_valid(`', c.column_name, '`)%'))
    from information_schema.columns c
    where c.table_schema = database() and c.table_name = :table
    """
)
MYSQL_TYPES_NO_CHECKS = text(
    """
    select column_name, data_type, column_type, 0 from information_schema.columns
    where table_schema = database() and table_name = :table
    """
)


def mysql_types(url: str, tables: list[str]) -> dict[str, dict[str, str]]:
    """What MySQL/MariaDB column types mean, where the driver loses it: ``json`` (MariaDB
    stores JSON as text with a json_valid check), ``bool`` (tinyint(1)) and
    ``timestamp`` (kept in UTC by the server, unlike DATETIME; marked so only when the
    server's zone is UTC, else left as read). {table: {column: kind}}"""
    out: dict[str, dict[str, str]] = {}
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            # TIMESTAMP values arrive in the session's zone: only a UTC server makes them UTC.
            offset = connection.execute(
                text("select timestampdiff(second, utc_timestamp(), now())")
            )
            utc: bool = offset.scalar_one() == 0
            for table in tables:
                try:
                    rows = connection.execute(MYSQL_TYPES, {"table": table}).all()
                except SQLAlchemyError:  # MySQL before 8.0.16: no check constraints
                    rows = connection.execute(MYSQL_TYPES_NO_CHECKS, {"table": table}).all()
                kinds: dict[str, str] = {}
                for column, data_type, column_type, json_checked in rows:
                    if str(data_type).lower() == "json" or json_checked:
                        kinds[str(column)] = "json"
                    elif str(column_type).lower() == "tinyint(1)":
                        kinds[str(column)] = "bool"
                    elif str(data_type).lower() == "timestamp" and utc:
                        kinds[str(column)] = "timestamp"
                out[table] = kinds
    except SQLAlchemyError:
        return {}  # the load itself reports the connection problem
    finally:
        engine.dispose()
    return out


def _mysql_adapters(kinds: dict[str, str]) -> tuple[Any, Any]:
    """(table adapter giving reflection the true types, map casting Arrow batches to them)."""
    import pyarrow as pa
    from sqlalchemy import JSON, TIMESTAMP, Boolean

    def adapt_table(table: Any) -> None:
        for column, kind in kinds.items():
            if column in table.c:
                table.c[column].type = {
                    "json": JSON(),
                    "bool": Boolean(),
                    "timestamp": TIMESTAMP(timezone=True),
                }[kind]

    def cast(batch: Any) -> Any:
        if not isinstance(batch, pa.Table):
            return batch
        for column, kind in kinds.items():
            index = batch.schema.get_field_index(column)
            if index < 0 or kind == "json":
                continue
            target = pa.bool_() if kind == "bool" else pa.timestamp("us", tz="UTC")
            field = batch.schema.field(index)
            if field.type != target:
                batch = batch.set_column(
                    index,
                    pa.field(column, target, field.nullable),
                    batch.column(index).cast(target),
                )
        return batch

    return adapt_table, cast


class _ConnectorXLoader(ConnectorXTableLoader):
    """dlt's connectorx reader, with connectorx's panics turned into plain errors.

    connectorx reports a connection cut midway as a Rust panic, which Python raises as
    a BaseException that nothing on the way would catch: here it becomes the
    ConnectionError it is, so that the load fails cleanly and is tried again.
    """

    def _load_rows_connectorx(self, query: Any, backend_kwargs: dict[str, Any]) -> Iterator[Any]:
        try:
            yield from super()._load_rows_connectorx(query, backend_kwargs)
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":
                raise
            raise ConnectionError(f"connectorx: {str(exc).splitlines()[0][:300]}") from None


register_table_loader_backend(ARROW_BACKEND, _ConnectorXLoader)


def _reader(url: str) -> tuple[str, dict[str, Any]]:
    """The fastest reader for the engine: Arrow-native for PostgreSQL and MySQL.

    connectorx streams Arrow record batches straight from the wire protocol (no
    Python objects per row); SQLite keeps SQLAlchemy's cursor, read into Arrow.
    """
    if make_url(url).get_backend_name() in ARROW_NATIVE:
        return ARROW_BACKEND, {"return_type": "arrow_stream", "batch_size": STREAM_BATCH_ROWS}
    return "pyarrow", {}


def _source_tables(source: SourceSpec, tables: list[str]) -> list[str]:
    """The source's own names of ``tables`` (those read by a ``query`` left out)."""
    return [source.tables[n].source_table or n for n in tables if source.tables[n].query is None]


def reflect_ahead(source: SourceSpec, tables: list[str]) -> Future[Reflected] | None:
    """Reflect ``tables`` in the background (for :func:`resources`), while the run does
    what needs the warehouse first. None when there is nothing to reflect."""
    if any(table not in source.tables for table in tables):
        return None  # told when the resources are built
    named = _source_tables(source, tables)
    if not named:
        return None
    try:
        url = _url(source)
    except IngestError:
        return None  # told when the resources are built
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headwater-reflect")
    try:
        return pool.submit(reflected, url, named)
    finally:
        pool.shutdown(wait=False)


def _reflected_ahead(ahead: Future[Reflected] | None, named: list[str]) -> Reflected | None:
    """What :func:`reflect_ahead` found, if it covers ``named``; its failure raised as
    reflecting here would have raised it (the caller's next attempt reflects anew)."""
    if ahead is None:
        return None
    found = ahead.result()
    return found if set(named) <= set(found[1]) else None


def resources(
    source: SourceSpec,
    tables: list[str],
    fresh: set[str] | frozenset[str] = frozenset(),
    ahead: Future[Reflected] | None = None,
) -> list[DltResource]:
    """One resource per table. A table in ``fresh`` (nothing of it loaded yet) whose
    merge key is the source's own primary key constraint is appended: the same rows
    as a merge into an empty table, without the staging copy. ``ahead``: the tables
    reflected already (:func:`reflect_ahead`)."""
    url = _url(source)
    named = _source_tables(source, tables)
    reflections, keys = _reflected_ahead(ahead, named) or reflected(url, named)
    backend, backend_kwargs = _reader(url)
    is_mysql = make_url(url).get_backend_name() == "mysql"
    typed = mysql_types(url, named) if is_mysql else {}
    out = []
    for name in tables:
        spec = source.tables[name]
        if spec.query is not None:
            out.append(_query_resource(url, name, spec))
            continue
        constraint = keys.get(spec.source_table or name, ())
        disposition, key = spec.resolved(name, constraint)
        first_write = disposition
        if disposition == "merge" and name in fresh and key and set(key) == set(constraint):
            first_write = "append"
        incremental: dlt.sources.incremental[Any] | None = (
            dlt.sources.incremental(spec.cursor, lag=spec.lag) if spec.cursor else None
        )
        adapt_table, cast = _mysql_adapters(typed.get(spec.source_table or name, {}))
        included = list(spec.columns) if spec.columns else None
        # One reflection per declared table: two reading the same source table reflect
        # their own, as each trims its columns.
        table = reflections.get(spec.source_table or name)
        if table is not None and named.count(spec.source_table or name) == 1:
            # dlt takes a table found in its metadata as it is: adapted here as dlt
            # adapts those it reflects (chosen columns, UUIDs as text, MySQL's types).
            default_table_adapter(table, included)
            if is_mysql:
                adapt_table(table)
        else:
            table = None
        resource = sql_table(
            credentials=url,
            table=spec.source_table or name,
            incremental=incremental,
            backend=backend,  # type: ignore[arg-type]
            backend_kwargs=backend_kwargs,
            chunk_size=CHUNK_SIZE,
            reflection_level="full_with_precision",
            defer_table_reflect=True,
            metadata=table.metadata if table is not None else None,
            table_adapter_callback=adapt_table if is_mysql else None,
            included_columns=included,
        )
        if is_mysql:
            resource.add_map(cast)
        resource.apply_hints(
            table_name=name,
            write_disposition=first_write,
            primary_key=list(key),
        )
        out.append(resource.with_name(name))
    return out


def _arrow_url(url: str) -> str:
    """The URL connectorx reads: the engine's own scheme, no SQLAlchemy driver."""
    parsed = make_url(url)
    return parsed.set(drivername=parsed.get_backend_name()).render_as_string(hide_password=False)


def _query_rows(url: str, sql: str) -> Iterator[Any]:
    """Arrow tables of ``sql``'s rows, streamed."""
    import pyarrow as pa

    if make_url(url).get_backend_name() in ARROW_NATIVE:
        import connectorx as cx

        reader = cx.read_sql(
            _arrow_url(url), sql, return_type="arrow_stream", batch_size=STREAM_BATCH_ROWS
        )
        try:
            for batch in reader:
                yield pa.Table.from_batches([batch])
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":
                raise
            raise ConnectionError(f"connectorx: {str(exc).splitlines()[0][:300]}") from None
        return
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            result = connection.execution_options(stream_results=True).execute(text(sql))
            names = list(result.keys())
            while rows := result.fetchmany(CHUNK_SIZE):
                yield pa.Table.from_pylist([dict(zip(names, row, strict=True)) for row in rows])
    finally:
        engine.dispose()


def _query_resource(url: str, name: str, spec: TableSpec) -> DltResource:
    """A table whose rows are ``spec.query``'s; with a cursor, only rows at or past it."""
    from ingest.queries import incremental_sql

    disposition, key = spec.resolved(name)
    query = spec.query or ""
    incremental: dlt.sources.incremental[Any] | None = (
        dlt.sources.incremental(spec.cursor, lag=spec.lag) if spec.cursor else None
    )

    def read(cursor: dlt.sources.incremental[Any] | None = incremental) -> Iterator[Any]:
        sql = query
        if spec.cursor and cursor is not None and cursor.last_value is not None:
            sql = incremental_sql(query, url, spec.cursor, cursor.last_value)
        try:
            yield from _query_rows(url, sql)
        except (SQLAlchemyError, RuntimeError) as exc:
            orig = getattr(exc, "orig", None) or exc
            first = (str(orig).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise IngestError(f"table {name!r}: the query failed: {first}") from None

    return dlt.resource(
        read, name=name, table_name=name, write_disposition=disposition, primary_key=list(key)
    )


def _query_problems(connection: Any, url: str, name: str, spec: TableSpec) -> list[str]:
    """Run the query for its columns only (no rows); what the table's settings lack."""
    from ingest.queries import probe_sql

    probe = probe_sql(spec.query or "", url)
    try:
        columns = list(connection.execute(text(probe)).keys())
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        first = (str(orig).strip().splitlines() or [type(exc).__name__])[0][:300]
        connection.rollback()
        return [f"table {name!r}: the query failed: {first}"]
    return column_problems(name, spec, columns)


def table_names(source: SourceSpec) -> list[str]:
    """The tables of the source database's default schema."""
    url = _url(source)
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            return list(inspect(connection).get_table_names())
    except SQLAlchemyError as exc:
        raise _connection_error(url, exc) from None
    finally:
        engine.dispose()


def check_connection(source: SourceSpec) -> None:
    url = _url(source)
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            inspector = inspect(connection)
            present = set(inspector.get_table_names()) | set(inspector.get_view_names())
            problems = [
                problem
                for name, spec in source.tables.items()
                if spec.query is not None
                for problem in _query_problems(connection, url, name, spec)
            ]
            problems += [
                problem
                for name, spec in source.tables.items()
                if spec.query is None and (spec.source_table or name) in present
                for problem in column_problems(
                    name,
                    spec,
                    [c["name"] for c in inspector.get_columns(spec.source_table or name)],
                )
            ]
    except SQLAlchemyError as exc:
        raise _connection_error(url, exc) from None
    finally:
        engine.dispose()
    missing = [
        spec.source_table or name
        for name, spec in source.tables.items()
        if spec.query is None and (spec.source_table or name) not in present
    ]
    if missing:
        raise IngestError(f"{_safe(url)} has no table(s) {', '.join(missing)}")
    if problems:
        raise IngestError("; ".join(problems), hint="fix the column names in the sources file")
