"""The catalog columns a query reads, resolved without sqlglot's optimizer.

sqlglot's ``qualify`` answers this for any query, at about 0.3 ms a query: several
times the cost of parsing it. Most ad hoc SQL has a plain shape: SELECTs over catalog
tables, CTEs and derived tables, joined ``ON`` or ``USING``, with aliases, windows,
stars and set operations. :func:`columns_used` resolves those by hand, one pass over
the columns the validator already collected.

It answers only when it is sure. Anything it does not model — a column it cannot
place, an ambiguous name, a correlated reference, a struct field, a lambda variable, a
NATURAL join, a star over a source whose columns it does not know — makes it answer
``None``, and the caller falls back to ``qualify``, which also words the errors. It is
there to make a query faster, never to accept one ``qualify`` refuses: the differential
tests (``tests/unit/catalog/test_query_fast_path.py``) hold it to that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from sqlglot import exp

from catalog.queries.policy import Engine

# Where the resolver lets a query use its own output names instead of columns (the
# engines allow more, with rules of their own: those queries go to qualify).
_ALIAS_CLAUSES = frozenset({"order"})

# Parts of a query the resolver does not model: any of them sends the query to qualify.
_UNMODELLED_SELECT = ("laterals", "pivots", "connect", "match", "prewhere", "exclude")
_UNMODELLED_JOIN = ("method", "global_", "match_condition", "nearest", "directed", "pivots")
_UNMODELLED_TABLE = ("joins", "laterals", "pivots", "rows_from")


class Unsure(Exception):
    """Raised inside the resolver when a query is outside the shapes it models."""


# What a FROM item offers: its columns by lookup key, each with its full catalog name
# (``schema.table.column``) when the item is a catalog relation, else ``None``.
Source = Mapping[str, str | None]


def key(identifier: exp.Expr | None, engine: Engine) -> str:
    """How ``engine`` compares a name: DuckDB ignores case; PostgreSQL folds unquoted
    names to lower case and keeps quoted ones as written."""
    if not isinstance(identifier, exp.Identifier):
        return ""
    name: str = identifier.this
    if engine == "duckdb" or not identifier.quoted:
        return name.lower()
    return name


def catalog_columns(
    qualified: str, names: tuple[str, ...], engine: Engine
) -> Mapping[str, str | None]:
    """A relation's columns by the key a written name is compared on, each with its
    full name (the catalog's exact spelling)."""
    return {(name.lower() if engine == "duckdb" else name): f"{qualified}.{name}" for name in names}


def columns_used(
    queries: Iterable[exp.Query],
    columns: Iterable[exp.Column],
    stars: Iterable[exp.Star],
    relations: Mapping[int, Mapping[str, str | None]],
    ctes: Mapping[int, exp.Expr],
    engine: Engine,
) -> tuple[str, ...] | None:
    """``schema.table.column`` for every catalog column the query reads, or ``None``.

    ``queries``, ``columns`` and ``stars`` are the query's SELECTs and set operations,
    Column and Star nodes; ``relations`` maps each Table node that reads the catalog
    (by ``id``) to its columns, as :func:`catalog_columns` gives them; ``ctes`` maps
    each Table node that names a CTE to that CTE.
    """
    resolver = _Resolver(relations, ctes, engine)
    try:
        for query in queries:  # every FROM, even one no column is read from
            if not isinstance(query, exp.Select):
                _check_positions(query, 0)  # ORDER BY 2 after a UNION: qualify checks it
                continue
            resolver.sources(query)
            starred = any(_is_star(p) for p in query.expressions)
            _check_positions(query, 0 if starred else len(query.expressions))
        for star in stars:
            resolver.star(star)
        for column in columns:
            resolver.column(column)
    except (Unsure, RecursionError):
        return None
    return tuple(resolver.used)


class _Resolver:
    def __init__(
        self,
        relations: Mapping[int, Mapping[str, str | None]],
        ctes: Mapping[int, exp.Expr],
        engine: Engine,
    ) -> None:
        self.relations = relations
        self.ctes = ctes
        self.engine = engine
        self.fold = engine == "duckdb"  # every name compared in lower case
        self.used: dict[str, None] = {}
        self._scopes: dict[int, tuple[dict[str, Source], dict[str, set[str]]]] = {}

    def star(self, star: exp.Star) -> None:
        """``SELECT *``: every column of every source. A ``*`` inside a call is not one."""
        select = star.parent
        if not isinstance(select, exp.Select) or star.arg_key != "expressions":
            if isinstance(select, exp.Column | exp.Func | exp.Window | exp.Filter):
                return  # count(*), or t.* (resolved as a column)
            raise Unsure
        if any(star.args.values()):  # EXCLUDE / REPLACE / RENAME
            raise Unsure
        for source in self.sources(select)[0].values():
            self.read_all(source)

    def column(self, column: exp.Column) -> None:
        args = column.args
        if args.get("db") or args.get("catalog"):
            raise Unsure
        select, clause = _scope_of(column)
        sources, using = self.sources(select)
        table = args.get("table")
        identifier = args.get("this")
        if isinstance(identifier, exp.Star):  # t.*
            source = sources.get(key(table, self.engine))
            if source is None:
                raise Unsure
            self.read_all(source)
            return
        if not isinstance(identifier, exp.Identifier):
            raise Unsure
        name = identifier.this
        if self.fold or not identifier.args.get("quoted"):
            name = name.lower()
        # ORDER BY a bare name: the query's own output column of that name comes first
        # (select -x as amount … order by amount sorts by the alias, reads no amount)
        ordered = column.parent
        bare_order = isinstance(ordered, exp.Ordered) and ordered.parent is select.args.get("order")
        if table is None and bare_order and name in _aliases(select, self.engine):
            return
        if table is not None:
            source = sources.get(key(table, self.engine))
            if source is None or name not in source:
                raise Unsure  # an outer reference, a struct field, or an unknown column
            full = source[name]
            if full is not None:
                self.used[full] = None
            return
        found = [alias for alias, source in sources.items() if name in source]
        if len(found) == 1 or (len(found) > 1 and set(found) <= using.get(name, set())):
            for alias in found:  # one source, or the sources one USING merges
                self.read(sources[alias], name)
        elif found or clause not in _ALIAS_CLAUSES:
            raise Unsure  # ambiguous, or unknown here (maybe an outer or lambda name)
        elif name not in _output_names(select, self.engine):
            raise Unsure

    def read(self, source: Source, name: str) -> None:
        full = source[name]
        if full is not None:
            self.used[full] = None

    def read_all(self, source: Source) -> None:
        for full in source.values():
            if full is not None:
                self.used[full] = None

    def sources(self, select: exp.Select) -> tuple[dict[str, Source], dict[str, set[str]]]:
        """The FROM items of ``select`` by alias, and for each name joined with USING
        the aliases of the sources it merges."""
        known = self._scopes.get(id(select))
        if known is not None:
            return known
        _model(select, _UNMODELLED_SELECT)
        sources: dict[str, Source] = {}
        using: dict[str, set[str]] = {}
        from_ = select.args.get("from_")
        if from_ is not None:
            self._add(sources, from_.this)
        for join in select.args.get("joins") or ():
            _model(join, _UNMODELLED_JOIN)  # not NATURAL, ASOF and friends
            previous = dict(sources)
            alias, added = self._add(sources, join.this)
            for identifier in join.args.get("using") or ():
                name = key(identifier, self.engine)
                merged = [a for a, source in previous.items() if name in source]
                if name not in added or len(merged) != 1:
                    raise Unsure  # an unknown or ambiguous USING name
                using[name] = using.get(name, set()) | {alias, *merged}
                self.read(added, name)
                self.read(previous[merged[0]], name)
        scope = (sources, using)
        self._scopes[id(select)] = scope
        return scope

    def _add(self, sources: dict[str, Source], item: exp.Expr) -> tuple[str, Source]:
        alias = item.args.get("alias")
        if isinstance(alias, exp.TableAlias) and alias.args.get("columns"):
            raise Unsure  # AS t(a, b): renamed columns
        if isinstance(item, exp.Table):
            _model(item, _UNMODELLED_TABLE)
            name = key(alias.this if alias else item.this, self.engine)
            relation = self.relations.get(id(item))
            cte = self.ctes.get(id(item))
            if relation is not None:
                source = relation
            elif cte is not None:
                cte_alias = cte.args.get("alias")
                if cte_alias is not None and cte_alias.args.get("columns"):
                    raise Unsure  # WITH t(a, b) AS (…): renamed columns
                source = _outputs(cte.this, self.engine)
            else:
                raise Unsure
        elif isinstance(item, exp.Subquery) and alias is not None:
            name = key(alias.this, self.engine)
            source = _outputs(item.this, self.engine)
        else:
            raise Unsure  # VALUES, LATERAL, a table function (refused earlier anyway)
        if not name or name in sources:
            raise Unsure
        sources[name] = source
        return name, source


def _check_positions(query: exp.Query, count: int) -> None:
    """GROUP BY 2 / ORDER BY 3 must name one of the ``count`` output columns."""
    for clause in ("group", "order"):
        node = query.args.get(clause)
        for item in node.expressions if node is not None else ():
            target = item.this if isinstance(item, exp.Ordered) else item
            if (
                isinstance(target, exp.Literal)
                and target.is_int
                and not 1 <= int(target.name) <= count
            ):
                raise Unsure


def _is_star(projection: exp.Expr) -> bool:
    """``*`` or ``t.*``: output columns the query does not name."""
    return isinstance(projection, exp.Star) or (
        isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
    )


def _model(node: exp.Expr, unmodelled: tuple[str, ...]) -> None:
    """Raise Unsure when ``node`` has any of the ``unmodelled`` parts."""
    args = node.args
    for arg in unmodelled:
        if args.get(arg):
            raise Unsure


def _scope_of(column: exp.Column) -> tuple[exp.Select, str]:
    """The SELECT whose FROM a column is resolved against, and the clause it is in."""
    child: exp.Expr = column
    node = column.parent
    while node is not None:
        bound = _BOUNDS.get(type(node))
        if bound is None:
            bound = _BOUNDS[type(node)] = _bound(type(node))
        if bound is _SCOPE:
            return node, child.arg_key or ""  # type: ignore[return-value]
        if bound is _UNSURE:
            raise Unsure  # a set operation's ORDER BY, a lambda's or a comprehension's
        child, node = node, node.parent
    raise Unsure


# (Final: the compiled build, headwater/native.py, inlines them.)
_SCOPE: Final = "scope"
_UNSURE: Final = "unsure"
_THROUGH: Final = "through"
_BOUNDS: Final[dict[type, str]] = {}


def _bound(node_type: type) -> str:
    if issubclass(node_type, exp.Select):
        return _SCOPE
    if issubclass(node_type, exp.SetOperation | exp.Lambda | exp.Comprehension):
        return _UNSURE
    return _THROUGH


def _output_names(query: exp.Expr, engine: Engine) -> dict[str, str | None]:
    """The names a query's output columns go by (each by its lookup key)."""
    if isinstance(query, exp.SetOperation):
        return _output_names(query.this, engine)
    if not isinstance(query, exp.Select):
        raise Unsure
    names: dict[str, str | None] = {}
    for projection in query.expressions:
        if _is_star(projection):
            raise Unsure  # the columns a star stands for are not named here
        if isinstance(projection, exp.Alias):
            identifier = projection.args.get("alias")
        elif isinstance(projection, exp.Column):
            identifier = projection.this
        else:
            continue  # an unnamed expression: the engine names it, nobody refers to it
        name = key(identifier, engine)
        if name:
            names[name] = None  # not a catalog column: the engine computes it
    return names


def _aliases(select: exp.Select, engine: Engine) -> set[str]:
    """The names a query gives its output columns with AS (by lookup key)."""
    return {
        key(projection.args.get("alias"), engine)
        for projection in select.expressions
        if isinstance(projection, exp.Alias)
    }


def _outputs(query: exp.Expr, engine: Engine) -> Mapping[str, str | None]:
    return _output_names(query.unnest() if isinstance(query, exp.Subquery) else query, engine)
