"""Stream a validated query's whole result as CSV or JSON lines, a batch at a time.

Memory stays flat however many rows there are, and the CSV is the engine's own: on
DuckDB the engine writes each row as one line of text (in parallel, byte for byte as
its ``COPY … TO`` would) and the lines come out in Arrow batches; on PostgreSQL its
``COPY … TO STDOUT`` streams through a short queue. JSON lines on PostgreSQL are
written here from a server-side cursor's batches. The same locked-down connections as
:mod:`catalog.queries.execute`.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from catalog.queries.errors import QueryTimeout, WarehouseBusy
from catalog.queries.execute import RETRY_AFTER_SECONDS, duckdb_session, postgres_session

if TYPE_CHECKING:
    from headwater.settings import Settings

Format = Literal["csv", "jsonl"]
BATCH_ROWS = 100_000
EXPORT_SLOTS = 2
COPY_CHUNK_BYTES = 1 << 20  # a PostgreSQL COPY is handed on in chunks of about this size
COPY_QUEUE_CHUNKS = 4
SLOT_GRACE_SECONDS = 5
_slots = threading.BoundedSemaphore(EXPORT_SLOTS)

# DuckDB types whose text never needs CSV quoting (no comma, quote or line break).
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
    "TIME",  # and TIMESTAMP, TIMESTAMP WITH TIME ZONE, TIME WITH TIME ZONE
    "INTERVAL",
    "UUID",
)
# What makes DuckDB's COPY quote a value: a comma, a quote or a line break in it.
_SPECIAL = ("'\"'", "','", "chr(10)", "chr(13)")


def export(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    *,
    role: str,
    timeout: float,
    fmt: Format,
    limit: int,
) -> Iterator[bytes]:
    """The first ``limit`` rows of ``sql`` (validated for export) as chunks of text.

    Opening the connection happens at the first ``next()``: call it before sending
    anything so a busy warehouse or a refused query is still an error response. At most
    :data:`EXPORT_SLOTS` exports run at once, and each ends at ``timeout`` however
    slowly its client reads.
    """
    if settings.warehouse == "duckdb":
        chunks = _duckdb(settings, sql, params, timeout, fmt, limit)
    else:
        chunks = _postgres(settings, sql, params, role, timeout, fmt, limit)
    return _in_a_slot(chunks, timeout)


def _in_a_slot(chunks: Iterator[bytes], timeout: float) -> Iterator[bytes]:
    """``chunks`` holding one export slot: until they end, or at the latest until the
    timeout has passed (its connection is closed by then), so a client that stalls
    without hanging up does not keep the slot."""
    if not _slots.acquire(blocking=False):
        raise WarehouseBusy(
            f"{EXPORT_SLOTS} exports are running; try again shortly",
            retry_after=RETRY_AFTER_SECONDS,
        )
    held = [True]
    guard = threading.Lock()

    def release() -> None:
        with guard:
            if held[0]:
                held[0] = False
                _slots.release()

    expiry = threading.Timer(timeout + SLOT_GRACE_SECONDS, release)
    expiry.daemon = True
    expiry.start()
    try:
        yield from chunks
    finally:
        expiry.cancel()
        release()


def _too_long(timeout: float) -> QueryTimeout:
    return QueryTimeout(f"The export ran longer than {timeout:g} s and was stopped")


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _csv_expression(types: list[str]) -> str:
    """One SQL expression that renders a row of ``q(c0, c1, …)`` as a CSV line, quoted
    as DuckDB's ``COPY … TO`` quotes (RFC 4180, only where needed; an empty string as
    ``""``, so it differs from a NULL). One ``concat`` per row: a chain of ``||`` would
    build a new string at each step."""
    parts = []
    for position, kind in enumerate(types):
        value = f"CAST(q.c{position} AS VARCHAR)"
        if kind.upper().startswith(_PLAIN) and not kind.endswith("]"):  # not a list
            parts.append(f"coalesce({value}, '')")
        else:
            special = " OR ".join(f"contains({value}, {mark})" for mark in _SPECIAL)
            parts.append(
                f"CASE WHEN {value} IS NULL THEN '' WHEN {value} = '' OR {special} "
                f"THEN '\"' || replace({value}, '\"', '\"\"') || '\"' ELSE {value} END"
            )
    return "concat(" + ", ',', ".join(parts) + ", chr(10))" if parts else "chr(10)"


def _json_expression(names: list[str]) -> str:
    """One SQL expression that renders a row of ``q(c0, c1, …)`` as a JSON object line."""
    pairs = ", ".join(
        "'" + name.replace("'", "''") + f"', q.c{position}" for position, name in enumerate(names)
    )
    return f"CAST(json_object({pairs}) AS VARCHAR) || chr(10)"


def _duckdb(
    settings: Settings,
    sql: str,
    params: Mapping[str, Any] | None,
    timeout: float,
    fmt: Format,
    limit: int,
) -> Iterator[bytes]:
    import duckdb

    bound = dict(params) if params else None
    deadline = time.monotonic() + timeout
    with duckdb_session(settings, timeout) as session:
        try:
            with session.calling:
                relation = session.connection.sql(sql, params=bound)
                names = list(relation.columns)
                types = [str(t) for t in relation.types]
            # ``sql`` is the validated statement as the validator wrote it (no comments); its
            # columns are renamed by position (two may share a name) and rendered here.
            if fmt == "csv":
                yield _csv_line(names).encode()
                line = _csv_expression(types)
            else:
                line = _json_expression(names)
            columns = ", ".join(f"c{position}" for position in range(len(names)))
            lines = f"SELECT {line} AS line FROM ({sql}) AS q({columns})"  # noqa: S608
            with session.calling:
                reader = session.connection.sql(lines, params=bound).to_arrow_reader(BATCH_ROWS)
            remaining = limit
            while remaining > 0:
                if time.monotonic() > deadline:
                    raise _too_long(timeout)
                with session.calling:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                if batch.num_rows > remaining:
                    batch = batch.slice(0, remaining)
                remaining -= batch.num_rows
                if batch.num_rows:
                    yield _text_of(batch.column(0))
        except duckdb.Error as exc:
            raise session.error(exc) from None


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
    limit: int,
) -> Iterator[bytes]:
    deadline = time.monotonic() + timeout
    # A client that stops reading leaves the transaction idle: the server ends it at
    # the timeout (idle_in_transaction_session_timeout, see execute.postgres_session).
    with postgres_session(settings, role, timeout) as connection:
        if fmt == "csv":
            yield from _postgres_copy(connection, sql, params, limit, deadline, timeout)
            return
        cursor = connection.cursor(name="headwater_export")
        try:
            cursor.execute(sql, dict(params) if params else None)
            remaining = limit
            rows = cursor.fetchmany(min(BATCH_ROWS, remaining))
            names = [d.name for d in cursor.description or ()]
            while rows and remaining > 0:
                if time.monotonic() > deadline:
                    raise _too_long(timeout)
                remaining -= len(rows)
                buffer = io.StringIO()
                for row in rows:
                    buffer.write(json.dumps(dict(zip(names, row, strict=True)), default=str))
                    buffer.write("\n")
                yield buffer.getvalue().encode()
                rows = cursor.fetchmany(min(BATCH_ROWS, remaining)) if remaining > 0 else []
        finally:
            cursor.close()


class _Stopped(Exception):
    """The reader of a COPY went away: end it."""


def _postgres_copy(
    connection: Any,
    sql: str,
    params: Mapping[str, Any] | None,
    limit: int,
    deadline: float,
    timeout: float,
) -> Iterator[bytes]:
    """PostgreSQL's own CSV of the query (``COPY … TO STDOUT``: NULL apart from an empty
    string, every type in its own text), streamed. psycopg2 runs a COPY to the end in
    one call, so a thread runs it into a short queue: memory holds a few chunks
    however many rows there are, and a reader that stops stops the COPY."""
    with connection.cursor() as cursor:
        # COPY takes no bind parameters: psycopg2 quotes them into the text itself.
        statement = cursor.mogrify(sql, dict(params)).decode() if params else sql
    copy = (
        f"COPY (SELECT * FROM ({statement}) AS q LIMIT {int(limit)}) "  # noqa: S608 - checked SQL
        "TO STDOUT WITH (FORMAT csv, HEADER)"
    )
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=COPY_QUEUE_CHUNKS)
    stopped, finished = threading.Event(), threading.Event()

    def put(item: bytes | BaseException | None) -> bool:
        """Queue ``item`` for the reader; False once it has gone or the time is up."""
        while not stopped.is_set() and time.monotonic() < deadline + SLOT_GRACE_SECONDS:
            try:
                chunks.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    class Sink:
        """Where psycopg2 writes each row: gathered into chunks for the queue."""

        def __init__(self) -> None:
            self.pending = bytearray()

        def write(self, data: bytes) -> int:
            self.pending += data
            if len(self.pending) >= COPY_CHUNK_BYTES:
                self.flush()
            return len(data)

        def flush(self) -> None:
            if self.pending and not put(bytes(self.pending)):
                raise _Stopped
            self.pending.clear()

    def run() -> None:
        sink = Sink()
        outcome: BaseException | None = None
        try:
            with connection.cursor() as cursor:
                cursor.copy_expert(copy, sink)
            finished.set()
            sink.flush()
        except BaseException as exc:  # handed to the reader, raised there
            outcome = exc
        put(outcome)

    worker = threading.Thread(target=run, name="headwater-export-copy", daemon=True)
    worker.start()
    try:
        while True:
            wait = deadline + SLOT_GRACE_SECONDS - time.monotonic()
            try:
                chunk = chunks.get(timeout=max(wait, 0.01))
            except queue.Empty:
                raise _too_long(timeout) from None
            if chunk is None:
                return
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk
    finally:
        stopped.set()
        if not finished.is_set():
            connection.cancel()  # the COPY may still run on the server: stop it there
        worker.join()
