"""Stream a validated query's whole result as CSV or JSON lines, a batch at a time.

Memory stays flat however many rows there are. On DuckDB the engine itself writes each
row as one line of text (in parallel, like its own ``COPY … TO``) and the lines come
out in Arrow batches; on PostgreSQL a server-side cursor hands out batches that are
written here. The same locked-down connections as :mod:`catalog.queries.execute`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from catalog.queries.execute import duckdb_session, postgres_session

if TYPE_CHECKING:
    from headwater.settings import Settings

Format = Literal["csv", "jsonl"]
BATCH_ROWS = 100_000
MEDIA_TYPES: dict[str, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}

# DuckDB types whose text never needs CSV quoting.
_PLAIN = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
    "BOOLEAN",
    "DATE",
)


def export(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    *,
    role: str,
    timeout: float,
    fmt: Format,
) -> Iterator[bytes]:
    """The result of ``sql`` (validated, with its export limit) as chunks of text.

    Opening the connection happens at the first ``next()``: call it before sending
    anything so a busy warehouse or a refused query is still an error response.
    """
    if settings.warehouse == "duckdb":
        return _duckdb(settings, sql, params, timeout, fmt)
    return _postgres(settings, sql, params, role, timeout, fmt)


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _csv_expression(names: list[str], types: list[str]) -> str:
    """One SQL expression that renders a row as a CSV line (RFC 4180 quoting)."""
    parts = []
    for name, kind in zip(names, types, strict=True):
        value = f"CAST(q.{_quoted(name)} AS VARCHAR)"
        if kind.upper().startswith(_PLAIN) and not kind.endswith("]"):  # not a list
            parts.append(f"coalesce({value}, '')")
        else:
            parts.append(
                f"CASE WHEN {value} IS NULL THEN '' "
                f"WHEN regexp_matches({value}, '[\",\\r\\n]') "
                f"THEN '\"' || replace({value}, '\"', '\"\"') || '\"' ELSE {value} END"
            )
    return " || ',' || ".join(parts) if parts else "''"


def _duckdb(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    timeout: float,
    fmt: Format,
) -> Iterator[bytes]:
    import duckdb

    bound = dict(params) if params else None
    with duckdb_session(settings, timeout) as (connection, error):
        try:
            relation = connection.sql(sql, params=bound)
            names = list(relation.columns)
            types = [str(t) for t in relation.types]
            # ``sql`` is the validated statement as sqlglot wrote it (no comments); the
            # expression around it is built from the engine's own column names, quoted.
            if fmt == "csv":
                yield _csv_line(names).encode()
                line = _csv_expression(names, types)
            else:
                line = "CAST(to_json(q) AS VARCHAR)"
            lines = f"SELECT {line} || chr(10) AS line FROM ({sql}) AS q"  # noqa: S608
            reader = connection.sql(lines, params=bound).to_arrow_reader(BATCH_ROWS)
            for batch in reader:
                if batch.num_rows:
                    yield _text_of(batch.column(0))
        except duckdb.Error as exc:
            raise error(exc) from None


def _text_of(column: Any) -> bytes:
    """The lines of an Arrow string column, end to end: for plain string arrays that is
    one slice of the data buffer (no per-row work in Python)."""
    import pyarrow as pa

    if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) and (
        column.null_count == 0
    ):
        width = 8 if pa.types.is_large_string(column.type) else 4
        offsets = column.buffers()[1]
        first = int.from_bytes(
            offsets[column.offset * width : (column.offset + 1) * width], "little"
        )
        end = column.offset + len(column)
        last = int.from_bytes(offsets[end * width : (end + 1) * width], "little")
        return bytes(column.buffers()[2][first:last])
    return "".join(column.to_pylist()).encode()


def _postgres(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    role: str,
    timeout: float,
    fmt: Format,
) -> Iterator[bytes]:
    with postgres_session(settings, role, timeout) as connection:
        cursor = connection.cursor(name="headwater_export")
        try:
            cursor.execute(sql, dict(params) if params else None)
            rows = cursor.fetchmany(BATCH_ROWS)
            names = [d.name for d in cursor.description or ()]
            if fmt == "csv":
                yield _csv_line(names).encode()
            while rows:
                buffer = io.StringIO()
                if fmt == "csv":
                    csv.writer(buffer, lineterminator="\n").writerows(rows)
                else:
                    for row in rows:
                        buffer.write(json.dumps(dict(zip(names, row, strict=True)), default=str))
                        buffer.write("\n")
                yield buffer.getvalue().encode()
                rows = cursor.fetchmany(BATCH_ROWS)
        finally:
            cursor.close()
