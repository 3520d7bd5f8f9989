"""Column lineage: pure functions over sqlglot.

Each model's compiled SQL is parsed and qualified once against the known schema
(every ``select *`` expanded, every column tied to its table), then every output
column is traced through CTEs, subqueries, joins and set operations down to the
physical tables it reads, with one memo per query: what sqlglot's ``lineage()``
does per column, done once for all of them.

An edge says how a column reaches the output:

- ``copy``: the very column, same name;
- ``rename``: the very column under another name;
- ``transform``: an expression of it (cast, arithmetic, ``case``, functions);
- ``aggregate``: through an aggregate or window function;
- ``filter``: it decides which rows arrive (``where``, ``join … on``, ``group by``,
  ``having``, ``qualify``); such edges feed the whole dataset, so their ``column``
  is None.

What cannot be resolved is never dropped silently: it is a note naming the column
(``*`` for the whole query) and why.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, build_scope, find_all_in_scope
from sqlglot.schema import MappingSchema

COPY, RENAME, TRANSFORM, AGGREGATE, FILTER = "copy", "rename", "transform", "aggregate", "filter"
KINDS = (COPY, RENAME, TRANSFORM, AGGREGATE, FILTER)

_PASS, _TRANSFORM, _AGGREGATE = 0, 1, 2
"""How one step treats a column: passed as is, computed from it, aggregated."""

_FILTER_ARGS = ("where", "having", "qualify", "group")


@dataclass(frozen=True, order=True)
class ColumnEdge:
    """``upstream.upstream_column`` feeds ``column`` of the analysed query."""

    column: str | None
    """The output column; None for a ``filter`` edge (it shapes every column)."""
    upstream: str
    """The upstream dataset, ``schema.table`` as the warehouse names it."""
    upstream_column: str
    kind: str


@dataclass
class QueryLineage:
    """What one query's output columns come from."""

    columns: list[str] = field(default_factory=list)
    """Output columns, in order."""
    edges: list[ColumnEdge] = field(default_factory=list)
    unresolved: dict[str, str] = field(default_factory=dict)
    """Output column (``*``: the whole query) → why its lineage is incomplete."""

    def upstream_of(self, column: str) -> dict[str, set[str]]:
        """``{upstream dataset: {columns}}`` feeding ``column`` directly."""
        out: dict[str, set[str]] = {}
        for edge in self.edges:
            if edge.column == column:
                out.setdefault(edge.upstream, set()).add(edge.upstream_column)
        return out


Tables = Mapping[str, Mapping[str, str]]
"""``{"schema.table": {column: type}}``: what the warehouse holds."""


def make_schema(tables: Tables, dialect: str) -> MappingSchema:
    """The known schema, built once and shared by every query of a refresh."""
    fold = dialect == "duckdb"  # DuckDB resolves every identifier case-insensitively

    def key(name: str) -> str:
        return name.lower() if fold else name

    nested: dict[str, dict[str, dict[str, str]]] = {}
    for name, columns in tables.items():
        schema, _, table = name.rpartition(".")
        nested.setdefault(key(schema), {})[key(table)] = {
            key(c): (t or "unknown") for c, t in columns.items()
        }
    known: dict[str, object] = dict(nested)
    return MappingSchema(known, dialect=dialect, normalize=False)


ENGINE_VERSION = f"2/{version('sqlglot')}"
"""Part of every fingerprint: a new engine (or sqlglot) analyses every model again."""


def fingerprint(sql: str, upstream: Iterable[tuple[str, Mapping[str, str]]]) -> str:
    """A key that changes when the SQL, the schema of any table it reads, or the engine
    changes."""
    digest = hashlib.sha256(ENGINE_VERSION.encode() + b"\0" + sql.encode())
    for name, columns in sorted(upstream):
        digest.update(b"\0" + name.encode())
        for column, data_type in columns.items():
            digest.update(b"\1" + column.encode() + b"\2" + (data_type or "").encode())
    return digest.hexdigest()


def query_lineage(sql: str, schema: MappingSchema, dialect: str) -> QueryLineage:
    """Trace every output column of ``sql`` to the physical columns it reads.

    Never raises for a query it cannot read: the result then carries a note instead.
    """
    try:
        return _query_lineage(sql, schema, dialect)
    except Exception as exc:  # e.g. RecursionError on a union of 500 tables
        return QueryLineage(
            unresolved={"*": f"cannot trace: {type(exc).__name__}: {_first_line(exc)}"}
        )


def _query_lineage(sql: str, schema: MappingSchema, dialect: str) -> QueryLineage:
    try:
        parsed = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError as exc:
        return QueryLineage(unresolved={"*": f"cannot parse: {_first_line(exc)}"})
    if not isinstance(parsed, exp.Query):
        return QueryLineage(unresolved={"*": f"not a query: {parsed.key.upper()} statement"})
    for table in parsed.find_all(exp.Table):
        table.set("catalog", None)  # the database part: the schema is ``schema.table``
    try:
        qualified = qualify(
            parsed,
            dialect=dialect,
            schema=schema,
            validate_qualify_columns=False,
            allow_partial_qualification=True,  # an unknown column is a note, not a failure
            quote_identifiers=False,
            identify=False,
        )
        root = build_scope(qualified)
    except (SqlglotError, ValueError, KeyError) as exc:
        return QueryLineage(unresolved={"*": f"cannot qualify: {_first_line(exc)}"})
    if root is None:
        return QueryLineage(unresolved={"*": "no SELECT to trace"})
    return _Tracer(schema, root).run(root)


class _Tracer:
    def __init__(self, schema: MappingSchema, root: Scope) -> None:
        self.schema = schema
        # A recursive CTE's reference to itself points at a scope of its anchor that
        # sqlglot never traversed (no sources): trace the traversed one instead.
        self.scopes = {id(scope.expression): scope for scope in root.traverse()}
        self.memo: dict[tuple[int, str | int], frozenset[tuple[str, str, int]]] = {}
        self.notes: dict[str, str] = {}
        self.filters: set[tuple[str, str]] = set()
        self.seen_scopes: set[int] = set()

    def run(self, root: Scope) -> QueryLineage:
        result = QueryLineage()
        names = _output_names(root)
        result.columns = names
        edges: set[ColumnEdge] = set()
        self.current = "*"
        for index, name in enumerate(names):
            self.current = name
            for upstream, column, level in self.trace(root, index):
                edges.add(ColumnEdge(name, upstream, column, _kind(name, column, level)))
        self.current = "*"
        edges |= {ColumnEdge(None, table, column, FILTER) for table, column in self.filters}
        result.edges = sorted(edges, key=_edge_order)
        result.unresolved = self.notes
        return result

    def trace(self, scope: Scope, column: str | int) -> frozenset[tuple[str, str, int]]:
        """``(table, column, level)`` for every physical column output ``column`` reads
        (by name, or by position inside a set operation)."""
        key = (id(scope), column)
        cached = self.memo.get(key)
        if cached is not None:
            return cached
        self.memo[key] = frozenset()  # a recursive CTE refers to itself: stop there
        found = self._trace(scope, column)
        self.memo[key] = found
        return found

    def _trace(self, scope: Scope, column: str | int) -> frozenset[tuple[str, str, int]]:
        expression = scope.expression
        if isinstance(expression, exp.SetOperation):
            index = column if isinstance(column, int) else _index_of(expression, column)
            if index is None:
                self._note(f"no column {column!r} in a set operation")
                return frozenset()
            out: set[tuple[str, str, int]] = set()
            for branch in scope.set_operation_scopes:
                out |= self.trace(branch, index)
            return frozenset(out)
        if isinstance(expression, exp.Subquery):
            return frozenset().union(
                *(self.trace(inner, column) for inner in scope.subquery_scopes)
            )
        if not isinstance(expression, exp.Select):
            self._note(f"cannot trace through {expression.key.upper()}")
            return frozenset()
        self._collect_filters(scope)
        select = _select_of(expression, column)
        if select is None:
            if isinstance(column, str) and expression.is_star:
                self._note(f"select * over a table whose columns are unknown ({column!r})")
            else:
                self._note(f"no column {column!r} in the query")
            return frozenset()
        level = _level(select)
        out = set()
        parts = [select, *_named_windows(expression, select)]
        for reference in (c for part in parts for c in find_all_in_scope(part, exp.Column)):
            out |= self._column(scope, reference, level)
        for star in find_all_in_scope(select, exp.Star):
            if not isinstance(star.parent, exp.Count):
                self._note("select * over a table whose columns are unknown")
        subqueries = {id(s.expression): s for s in scope.subquery_scopes}
        for query in find_all_in_scope(select, *exp.UNWRAPPED_QUERIES):
            inner = subqueries.get(id(query))
            if inner is not None:
                for name in range(len(query.selects)):
                    out |= {
                        (t, c, max(level, _TRANSFORM, lvl)) for t, c, lvl in self.trace(inner, name)
                    }
        return frozenset(out)

    def _column(self, scope: Scope, reference: exp.Column, level: int) -> set[tuple[str, str, int]]:
        source = scope.sources.get(reference.table)
        outer = scope.parent
        while source is None and outer is not None:  # a correlated subquery's reference
            source, scope, outer = outer.sources.get(reference.table), outer, outer.parent
        if isinstance(source, exp.Table):
            if source.this and isinstance(source.this, exp.Identifier):
                known = self.schema.column_names(source) if self._knows(source) else None
                if known is not None and reference.name not in known:
                    self._note(f"column {reference.name!r} is not in {_table_name(source)}")
                    return set()
                return {(_table_name(source), reference.name, level)}
            self._note(f"{reference.name!r} comes from a table function")
            return set()
        if isinstance(source, Scope):
            source = self.scopes.get(id(source.expression), source)
            return {(t, c, max(level, lvl)) for t, c, lvl in self.trace(source, reference.name)}
        if isinstance(reference.this, exp.Star):
            return set()
        # Not tied to any source: unknown column (or a lateral alias sqlglot kept).
        self._note(f"column {reference.name!r} is not in any table the query reads")
        return set()

    def _knows(self, table: exp.Table) -> bool:
        try:
            return bool(self.schema.find(table, raise_on_missing=False))
        except SqlglotError:
            return False

    def _collect_filters(self, scope: Scope) -> None:
        if id(scope) in self.seen_scopes:
            return
        self.seen_scopes.add(id(scope))
        select = scope.expression
        assert isinstance(select, exp.Select)  # noqa: S101  # only called for a SELECT
        parts: list[exp.Expr] = [
            node for arg in _FILTER_ARGS if (node := select.args.get(arg)) is not None
        ]
        parts += [j.args["on"] for j in select.args.get("joins") or [] if j.args.get("on")]
        distinct = select.args.get("distinct")
        on = distinct.args.get("on") if distinct is not None else None
        distinct_on = on is not None
        if on is not None:
            parts.append(on)
        limited = any(select.args.get(arg) for arg in ("limit", "offset", "fetch"))
        if select.args.get("order") is not None and (limited or distinct_on):
            parts.append(select.args["order"])  # which rows make the cut (or the first of each)
        group = select.args.get("group")
        if group is not None and group.args.get("all"):
            parts += [s for s in select.selects if _level(s) != _AGGREGATE]
        subqueries = {id(s.expression): s for s in scope.subquery_scopes}
        aliases = {s.alias_or_name for s in select.selects}
        saved = self.current
        self.current = "*"
        for part in parts:
            for reference in find_all_in_scope(part, exp.Column):
                if not reference.table and reference.name in aliases:  # order by an alias
                    self.filters |= {(t, c) for t, c, _ in self.trace(scope, reference.name)}
                    continue
                for table, column, _ in self._column(scope, reference, _PASS):
                    self.filters.add((table, column))
            for query in find_all_in_scope(part, *exp.UNWRAPPED_QUERIES):
                inner = subqueries.get(id(query))
                if inner is not None:  # exists (…), in (select …): what it reads decides
                    for index in range(len(query.selects)):
                        self.filters |= {(t, c) for t, c, _ in self.trace(inner, index)}
        self.current = saved

    def _note(self, reason: str) -> None:
        self.notes.setdefault(self.current, reason)


def _named_windows(select: exp.Select, expression: exp.Expr) -> list[exp.Expr]:
    """The definitions (``window w as (…)``) of the named windows ``expression`` uses."""
    names = {
        window.args["alias"].name
        for window in find_all_in_scope(expression, exp.Window)
        if window.args.get("alias") is not None
    }
    if not names:
        return []
    return [w for w in select.args.get("windows") or [] if w.name in names]


def _output_names(scope: Scope) -> list[str]:
    expression = scope.expression
    while isinstance(expression, exp.SetOperation):
        expression = expression.left
    if isinstance(expression, exp.Subquery):
        expression = expression.unnest()
    return (
        [s.alias_or_name for s in expression.selects] if isinstance(expression, exp.Query) else []
    )


def _index_of(expression: exp.SetOperation, column: str) -> int | None:
    names = [s.alias_or_name for s in expression.selects]
    return names.index(column) if column in names else None


def _select_of(select: exp.Select, column: str | int) -> exp.Expr | None:
    selects = select.selects
    if isinstance(column, int):
        return selects[column] if column < len(selects) else None
    for candidate in selects:
        if candidate.alias_or_name == column:
            return candidate
    return None


def _level(select: exp.Expr) -> int:
    inner = select.unalias()
    if isinstance(inner, exp.Column):
        return _PASS
    if any(True for _ in find_all_in_scope(inner, exp.AggFunc, exp.Window)):
        return _AGGREGATE
    return _TRANSFORM


def _kind(output: str, upstream: str, level: int) -> str:
    if level == _AGGREGATE:
        return AGGREGATE
    if level == _TRANSFORM:
        return TRANSFORM
    return COPY if output.lower() == upstream.lower() else RENAME


def _table_name(table: exp.Table) -> str:
    return f"{table.db}.{table.name}" if table.db else table.name


def _edge_order(edge: ColumnEdge) -> tuple[str, str, str, str]:
    return (edge.column or "", edge.upstream, edge.upstream_column, edge.kind)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
