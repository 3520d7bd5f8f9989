"""Wire types of ad hoc queries (camelCase)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from api.schemas import NO_NUL

Sql = Annotated[str, msgspec.Meta(min_length=1, max_length=1_000_000, pattern=NO_NUL)]
QueryDialect = Literal["duckdb", "postgres"]
ParamName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
ParamValue = (
    Annotated[str, msgspec.Meta(max_length=10_000, pattern=NO_NUL)] | int | float | bool | None
)
Outcome = Literal["success", "rejected", "failed", "timeout", "busy"]


class QueryIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    sql: Sql
    """One SELECT (or a set operation of SELECTs, or WITH … SELECT) over tables your role
    may read. At most ``HEADWATER_QUERY_MAX_SQL_CHARS`` characters."""
    dialect: QueryDialect | None = None
    """The SQL dialect ``sql`` is written in (default: the warehouse's); transpiled."""
    limit: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None
    """Most rows to return; lowered to ``HEADWATER_QUERY_ROW_CAP``."""
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] | None = None
    """Stop the query after this long; lowered to ``HEADWATER_QUERY_TIMEOUT_SECONDS``."""
    params: Annotated[dict[ParamName, ParamValue], msgspec.Meta(max_length=100)] | None = None
    """Values bound to named placeholders (``:name`` in PostgreSQL SQL, ``$name`` in DuckDB
    SQL); never pasted into the text."""


class ColumnOut(msgspec.Struct, rename="camel"):
    name: str
    type: str


class QueryResultOut(msgspec.Struct, rename="camel"):
    columns: list[ColumnOut]
    rows: list[list[Any]]
    """Row values in column order: numbers, strings, booleans, null; decimals as strings,
    times in RFC 3339, lists and structs as JSON arrays and objects."""
    row_count: int
    truncated: bool
    """More rows matched than were returned (the limit or the cap cut them)."""
    elapsed_ms: float
    cached: bool
    """Served from the result cache."""
    sql: str
    """The SQL as it ran: tables qualified, the row limit applied."""


class Problem(msgspec.Struct, rename="camel", omit_defaults=True):
    message: str
    line: int | None = None
    column: int | None = None
    hint: str | None = None


class ValidationOut(msgspec.Struct, rename="camel"):
    valid: bool
    errors: list[Problem]
    sql: str | None
    """The SQL as it would run, when valid."""
    tables: list[str]
    columns: list[str]
    parameters: list[str]


class HistoryOut(msgspec.Struct, rename="camel"):
    id: int
    user_id: int | None
    sql: str
    dialect: str | None
    params: dict[str, Any] | None
    outcome: Outcome
    row_count: int | None
    elapsed_ms: float | None
    error: str | None
    created_at: datetime
