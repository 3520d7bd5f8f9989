"""``query:`` tables of database sources: one read-only SELECT, checked by sqlglot in the
source's own dialect, and the incremental filter wrapped around it."""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlglot import exp
from sqlglot.errors import ParseError

DIALECTS = {"postgresql": "postgres", "mysql": "mysql", "sqlite": "sqlite"}
WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Into,
    exp.Lock,
)


def dialect_of(connection: str | None) -> str | None:
    try:
        backend = make_url(connection or "").get_backend_name()
    except ArgumentError:
        return None
    return DIALECTS.get(backend)


def query_problem(query: str, connection: str | None) -> str | None:
    """Why ``query`` is refused (None when it is one read-only SELECT)."""
    dialect = dialect_of(connection)
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first else ""
        return f"not valid {dialect or 'SQL'}{where}: {str(exc).splitlines()[0][:200]}"
    if len(statements) != 1:
        return f"one SELECT statement expected, found {len(statements)} statements"
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return f"a SELECT is expected, found {statement.key.upper()}"
    found = next((node for node in statement.walk() if isinstance(node, WRITES)), None)
    if found is not None:
        return f"only reads are allowed, found {found.key.upper()}"
    return None


def _wrapped(query: str, dialect: str | None) -> exp.Select:
    inner = sqlglot.parse_one(query, read=dialect)
    return exp.select("*").from_(
        exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("q")))
    )


def probe_sql(query: str, connection: str | None) -> str:
    """``query`` answering no rows: its columns only."""
    dialect = dialect_of(connection)
    return _wrapped(query, dialect).limit(0).sql(dialect=dialect)


def incremental_sql(query: str, connection: str | None, cursor: str, last_value: Any) -> str:
    """``query`` with only the rows at or past ``last_value`` of ``cursor``, in order."""
    dialect = dialect_of(connection)
    value = last_value.isoformat(sep=" ") if hasattr(last_value, "isoformat") else last_value
    literal = (
        exp.Literal.number(value)
        if isinstance(value, int | float)
        else exp.Literal.string(str(value))
    )
    column = exp.column(cursor, table="q", quoted=True)
    wrapped = _wrapped(query, dialect).where(exp.GTE(this=column, expression=literal))
    return wrapped.order_by(column).sql(dialect=dialect)
