"""The first filter: one read-only query over readable tables, with a row limit.

:func:`validate` is pure: SQL text and what the catalog knows go in; the SQL that will
run comes out, with every table qualified, the row limit applied and the placeholders
ready to bind — or :class:`QueryRejected` with a reason, and the line and column when
the parser knows them. The engine enforces the same rules again when the query runs
(:mod:`catalog.queries.execute`).

A query seen for the first time costs little more than parsing it: one walk over the
tree checks every node and collects what the later steps need; the catalog columns it
reads are resolved by hand for the common shapes (:mod:`catalog.queries.resolve`,
sqlglot's ``qualify`` for the rest and for the wording of an unknown column); and the
SQL that runs is written back from the tokens sqlglot read when they are all plain
(:mod:`catalog.queries.splice`), regenerated from the tree otherwise.
"""

from __future__ import annotations

import bisect
import difflib
import itertools
import logging
import re
import secrets
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any, Final

from sqlglot import Dialect, TokenType, exp
from sqlglot.errors import OptimizeError, ParseError, SqlglotError, TokenError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.parser import Parser
from sqlglot.schema import MappingSchema
from sqlglot.tokens import Tokenizer

from catalog.queries import splice
from catalog.queries.errors import QueryRejected
from catalog.queries.policy import (
    ALLOWED_FUNCTIONS,
    CALLS_AS_WRITTEN,
    Engine,
    is_denied,
    may_name_denied,
)
from catalog.queries.resolve import catalog_columns, columns_used, key

DIALECTS = ("duckdb", "postgres")
MEMO_SIZE = 2048
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_PARAM_SENTINEL = "hw_{}_{}"

# sqlglot falls back to an opaque command for statements it does not model; it says
# so on its logger. The validator refuses those, so the warning is only noise.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# What a top-level statement or a node inside the query is, in words.
_STATEMENT_WORDS: dict[type[exp.Expr], str] = {
    exp.Insert: "an INSERT (a data change)",
    exp.Update: "an UPDATE (a data change)",
    exp.Delete: "a DELETE (a data change)",
    exp.Merge: "a MERGE (a data change)",
    exp.Copy: "a COPY (a file read or write)",
    exp.Create: "a CREATE (a schema change)",
    exp.Drop: "a DROP (a schema change)",
    exp.Alter: "an ALTER (a schema change)",
    exp.TruncateTable: "a TRUNCATE (a data change)",
    exp.Grant: "a GRANT (a permission change)",
    exp.Revoke: "a REVOKE (a permission change)",
    exp.Comment: "a COMMENT (a schema change)",
    exp.Attach: "an ATTACH (another database)",
    exp.Detach: "a DETACH (another database)",
    exp.Install: "an INSTALL (an extension)",
    exp.Pragma: "a PRAGMA (an engine setting)",
    exp.Set: "a SET (a session setting)",
    exp.Transaction: "transaction control",
    exp.Commit: "transaction control",
    exp.Rollback: "transaction control",
    exp.Use: "a USE (a session setting)",
    exp.Describe: "a DESCRIBE",
    exp.Summarize: "a SUMMARIZE",
    exp.Show: "a SHOW",
    exp.Analyze: "an ANALYZE",
    exp.Pivot: "a PIVOT statement",
}


@dataclass(frozen=True)
class Relation:
    """A table or view the catalog knows: warehouse schema, name and columns."""

    schema: str
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...] = ()  # the warehouse's type names, when known
    # What validation works out per engine, once per catalog snapshot.
    _memo: dict[tuple[str, Engine], Any] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    def keyed(self, engine: Engine) -> Mapping[str, str | None]:
        """The columns by the key a written name is compared on, with full names."""
        found = self._memo.get(("keyed", engine))
        if found is None:
            found = self._memo["keyed", engine] = catalog_columns(
                self.qualified, self.columns, engine
            )
        return found

    def written(self, engine: Engine) -> str:
        """The qualified name as SQL text in ``engine``'s dialect."""
        found = self._memo.get(("written", engine))
        if found is None:
            reserved = _reserved(engine)
            found = self._memo["written", engine] = (
                f"{splice.quoted(self.schema, reserved)}.{splice.quoted(self.name, reserved)}"
            )
        return found


def _type_name(kind: str) -> str:
    """A type sqlglot can read (nested types help it resolve struct fields), else UNKNOWN."""
    if not kind:
        return "UNKNOWN"
    try:
        exp.DataType.build(kind, dialect="duckdb")
    except Exception:
        return "UNKNOWN"
    return kind


@dataclass(frozen=True)
class KnownTables:
    """The relations a caller may read (and, for better errors, those it may not)."""

    readable: tuple[Relation, ...]
    hidden: frozenset[str] = field(default_factory=frozenset)  # lower-case schema.name
    # Schema names as users write them -> warehouse schemas (``marts`` -> ``t1_marts``
    # when a schema prefix is configured), lower case.
    aliases: Mapping[str, str] = field(default_factory=dict)
    # Queries validated against these tables (see :func:`validate`).
    memo: dict[tuple[Any, ...], ValidatedQuery] = field(
        default_factory=dict, compare=False, repr=False
    )
    _schemas: dict[str, MappingSchema] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def _by_qualified(self) -> dict[str, Relation]:
        return {r.qualified.lower(): r for r in self.readable}

    @cached_property
    def _by_name(self) -> dict[str, list[Relation]]:
        index: dict[str, list[Relation]] = {}
        for relation in self.readable:
            index.setdefault(relation.name.lower(), []).append(relation)
        return index

    @cached_property
    def mapping(self) -> dict[str, object]:
        """The readable relations as sqlglot's schema mapping."""
        schemas: dict[str, Any] = {}
        for relation in self.readable:
            types = relation.types or ("",) * len(relation.columns)
            schemas.setdefault(relation.schema, {})[relation.name] = {
                column: _type_name(kind)
                for column, kind in zip(relation.columns, types, strict=False)
            }
        return schemas

    def schema(self, engine: Engine) -> MappingSchema:
        """sqlglot's schema of the readable relations, built once per engine."""
        built = self._schemas.get(engine)
        if built is None:
            built = self._schemas[engine] = MappingSchema(self.mapping, dialect=engine)
        return built

    def find(self, schema: str | None, name: str) -> list[Relation]:
        if schema is not None:
            schema = self.aliases.get(schema.lower(), schema)
            found = self._by_qualified.get(f"{schema}.{name}".lower())
            return [found] if found else []
        return list(self._by_name.get(name.lower(), []))

    def suggest(self, written: str) -> str | None:
        names = [r.qualified for r in self.readable] + [r.name for r in self.readable]
        close = difflib.get_close_matches(written, names, n=1, cutoff=0.6)
        if not close:
            lowered = {n.lower(): n for n in names}
            close = [lowered[m] for m in difflib.get_close_matches(written.lower(), lowered, 1)]
        return close[0] if close else None


@dataclass(frozen=True)
class ValidatedQuery:
    """A query that passed the first filter, ready for the engine."""

    engine: Engine
    sql: str  # as it will run: tables qualified, LIMIT applied, placeholders named
    canonical: str  # sqlglot's normalised form: the same for whitespace and case changes
    limit: int  # rows returned at most (the SQL fetches one more to tell truncation)
    tables: tuple[str, ...]
    columns: tuple[str, ...]
    parameters: tuple[str, ...]
    bind_sql: str  # ``sql`` in the driver's placeholder syntax (psycopg2's escapes %)


def validate(
    sql: str,
    known: KnownTables,
    *,
    engine: Engine,
    dialect: str | None = None,
    limit: int | None = None,
    cap: int = 10_000,
    max_chars: int = 20_000,
    params: Mapping[str, Any] | None = None,
) -> ValidatedQuery:
    """Check ``sql`` and return it as it will run on ``engine``, or raise QueryRejected.

    A query validated before against the same ``known`` tables (the same catalog
    version and role) is answered from memory: only its parameter values are checked.
    """
    key = memo_key(sql, engine, dialect, limit, cap, max_chars, params)
    remembered = known.memo.get(key)
    if remembered is not None:
        _check_values(params or {})
        return remembered
    try:
        validated = _validate(sql, known, engine, dialect, limit, cap, max_chars, params)
    except RecursionError:
        raise QueryRejected("The SQL is nested too deeply to check") from None
    if len(known.memo) >= MEMO_SIZE:
        known.memo.clear()
    known.memo[key] = validated
    return validated


def memo_key(
    sql: str,
    engine: Engine,
    dialect: str | None,
    limit: int | None,
    cap: int,
    max_chars: int,
    params: Mapping[str, Any] | None,
) -> tuple[Any, ...]:
    """What makes two validations the same (parameter names count, not their values)."""
    return (sql, engine, dialect, limit, cap, max_chars, frozenset(params or ()))


def _validate(
    sql: str,
    known: KnownTables,
    engine: Engine,
    dialect: str | None,
    limit: int | None,
    cap: int,
    max_chars: int,
    params: Mapping[str, Any] | None,
) -> ValidatedQuery:
    read = dialect or engine
    if read not in DIALECTS:
        raise QueryRejected(f"Unknown dialect {read!r}", hint=f"use one of: {', '.join(DIALECTS)}")
    if len(sql) > max_chars:
        raise QueryRejected(f"The SQL is {len(sql):,} characters long; the most is {max_chars:,}")
    if "\x00" in sql:
        raise QueryRejected("The SQL contains a NUL character")
    tokens = _tokens(sql, read)
    if may_name_denied(sql):
        _check_written_names(tokens)
    tree = _one_statement(sql, read, tokens)
    _check_statement(tree, sql)
    found = _inspect(tree, engine)
    names = _parameters(found.placeholders, params)
    tables = _qualify_tables(found.tables, known, engine, found.ctes)
    rows = min(limit, cap) if limit is not None else cap
    columns = columns_used(
        found.queries, found.columns, found.stars, tables.relations, tables.ctes, engine
    )
    shown = None
    if read == engine and not names:
        shown = _spliced(tokens, tree, found, tables, rows, engine)
    if shown is not None:
        canonical = bindable = shown
    else:
        tables.write_into_tree()
        tree, shown, bindable, canonical = _written_by_sqlglot(tree, engine, names, rows)
    if columns is None:  # a shape the resolver does not model: sqlglot's qualify
        tables.write_into_tree()
        columns = _columns_used(tree, known, engine)  # (changes the tree in place)
    return ValidatedQuery(
        engine=engine,
        sql=shown,
        canonical=canonical,
        limit=rows,
        tables=tables.names,
        columns=columns,
        parameters=tuple(sorted(names)) if names else (),
        bind_sql=bindable,
    )


def _written_by_sqlglot(
    tree: exp.Expr, engine: Engine, names: Collection[str], rows: int
) -> tuple[exp.Expr, str, str, str]:
    """The limited tree, and sqlglot's writing of it: shown, bindable and canonical."""
    try:
        tree = _limited(tree, rows, engine)
        shown, bindable = _render(tree, engine, names)
        # The cache key: sqlglot's writing of the statement (whitespace, keyword case
        # and comments gone). PostgreSQL folds unquoted names, so they are folded here
        # too; DuckDB keeps their spelling as result column names, so it is kept.
        canonical = (
            normalize_identifiers(tree.copy(), dialect=engine).sql(
                dialect=engine, comments=False, copy=False
            )
            if engine == "postgres"
            else shown
        )
    except QueryRejected:
        raise
    except Exception as exc:  # sqlglot's generator fails on a few shapes it parses
        raise QueryRejected(
            f"The query cannot be written for {engine}: {_first_line(exc)}",
            hint="rewrite the call or construct it names",
        ) from None
    return tree, shown, bindable, canonical


@cache
def _dialect(name: str) -> Dialect:
    return Dialect.get_or_raise(name)


class _Readers(threading.local):
    """A tokenizer and a parser per dialect and thread: building them costs about a
    tenth of reading a query, and neither may be shared between threads."""

    def __init__(self) -> None:
        self.tokenizers: dict[str, Tokenizer] = {}
        self.parsers: dict[str, Parser] = {}

    def tokenizer(self, dialect: str) -> Tokenizer:
        found = self.tokenizers.get(dialect)
        if found is None:
            found = self.tokenizers[dialect] = _dialect(dialect).tokenizer()
        return found

    def parser(self, dialect: str) -> Parser:
        found = self.parsers.get(dialect)
        if found is None:
            found = self.parsers[dialect] = _dialect(dialect).parser()
        return found


_readers = _Readers()


def _tokens(sql: str, dialect: str) -> list[Any]:
    try:
        return _readers.tokenizer(dialect).tokenize(sql)
    except (TokenError, SqlglotError, RecursionError) as exc:
        raise QueryRejected(f"The SQL cannot be read: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_written_names(tokens: list[Any]) -> None:
    """Refuse a dangerous function by the name as written: quoted, qualified, any case."""
    for token, after in itertools.pairwise(tokens):
        if after.token_type != TokenType.L_PAREN:
            continue
        if token.token_type in (TokenType.STRING, TokenType.NUMBER, TokenType.R_PAREN):
            continue
        if is_denied(token.text):
            raise QueryRejected(
                f"Function {token.text!r} is not allowed: it reads files, URLs, the "
                "environment or server state, or waits",
                line=token.line,
                column=token.col,
            )


# Statements sqlglot cannot parse, named when refused (``found EXPORT DATABASE``).
_VERBS = """ABORT ALTER ANALYZE ATTACH BEGIN CALL CHECKPOINT CLOSE CLUSTER COMMENT COMMIT COPY
    CREATE DEALLOCATE DECLARE DELETE DETACH DISCARD DO DROP END EXECUTE EXPLAIN EXPORT FETCH
    FORCE GRANT IMPORT INSERT INSTALL LISTEN LOAD LOCK MERGE MOVE NOTIFY PRAGMA PREPARE
    REASSIGN REFRESH REINDEX RELEASE RESET REVOKE ROLLBACK SAVEPOINT SECURITY SET SHOW START
    SUMMARIZE TRUNCATE UNLISTEN UPDATE USE VACUUM"""
STATEMENT_VERBS = frozenset(_VERBS.split())


def _one_statement(sql: str, dialect: str, tokens: list[Any]) -> exp.Expr:
    try:
        parsed = _readers.parser(dialect).parse(tokens, sql)
        statements = [s for s in parsed if s is not None and not isinstance(s, exp.Semicolon)]
    except ParseError as exc:
        if tokens and tokens[0].text.upper() in STATEMENT_VERBS:
            words = " ".join(t.text.upper() for t in tokens[:2] if t.text)
            raise QueryRejected(
                f"Only a SELECT query may run; found {words}",
                hint="one SELECT, a UNION/INTERSECT/EXCEPT of SELECTs, or WITH … SELECT",
            ) from None
        first = exc.errors[0] if exc.errors else {}
        description = str(first.get("description") or exc).split("\n")[0]
        raise QueryRejected(
            f"The SQL cannot be parsed: {description}",
            line=first.get("line"),
            column=first.get("col"),
        ) from None
    except (TokenError, SqlglotError, RecursionError) as exc:
        raise QueryRejected(f"The SQL cannot be read: {_first_line(exc)}") from None
    if not statements:
        raise QueryRejected("The SQL holds no statement")
    if len(statements) > 1:
        raise QueryRejected(
            f"Exactly one statement is allowed; found {len(statements)}",
            hint="remove the ';' between statements",
        )
    return statements[0]


def _describe(node: exp.Expr, sql: str) -> str:
    for cls in type(node).__mro__:
        words = _STATEMENT_WORDS.get(cls)
        if words:
            return words
    if isinstance(node, exp.Command):
        return f"the statement {str(node.this).upper()}"
    first = sql.strip().split(None, 1)[0] if sql.strip() else "nothing"
    return f"{first!r}, which is not a query"


def _check_statement(tree: exp.Expr, sql: str) -> None:
    query = tree.unnest() if isinstance(tree, exp.Subquery) else tree
    if not isinstance(query, exp.Select | exp.SetOperation):
        raise QueryRejected(
            f"Only a SELECT query may run; found {_describe(query, sql)}",
            hint="one SELECT, a UNION/INTERSECT/EXCEPT of SELECTs, or WITH … SELECT",
        )


@dataclass(slots=True)
class _Found:
    """What one walk over the checked tree collected for the steps after it."""

    queries: list[exp.Query]  # every SELECT and set operation
    tables: list[exp.Table]
    columns: list[exp.Column]
    stars: list[exp.Star]
    placeholders: list[exp.Expr]
    identifiers: set[int]  # where each name (not keyword) starts in the SQL text
    ctes: bool  # whether the query has a WITH


# What the walk does with a node, by its type (worked out once per type). Final: the
# compiled build (headwater/native.py) inlines them.
_REFUSE: Final = 0
_QUERY: Final = 1
_TABLE: Final = 2
_UNNEST: Final = 3
_FUNC: Final = 4
_COLUMN: Final = 5
_STAR: Final = 6
_PLACEHOLDER: Final = 7
_NAME: Final = 8
_WITH: Final = 9
_LATERAL: Final = 10
_OPERATOR: Final = 11
_OTHER: Final = 12
_KINDS: Final[dict[type, int]] = {}


def _kind(node_type: type) -> int:
    if node_type in _STATEMENT_WORDS or issubclass(node_type, exp.Command | exp.DML | exp.DDL):
        return _REFUSE
    for kind, types in (
        (_QUERY, exp.Select | exp.SetOperation),
        (_TABLE, exp.Table),
        (_UNNEST, exp.Unnest),
        (_COLUMN, exp.Column),
        (_STAR, exp.Star),
        (_PLACEHOLDER, exp.Placeholder | exp.Parameter),
        (_NAME, exp.Identifier),
        (_WITH, exp.With),
        (_LATERAL, exp.Lateral),
        (_OPERATOR, exp.Operator),
    ):
        if issubclass(node_type, types):
            return kind
    if issubclass(node_type, exp.Func) and not issubclass(node_type, exp.Connector):
        return _FUNC
    return _OTHER


def _inspect(tree: exp.Expr, engine: Engine) -> _Found:
    """Refuse what a read-only query may not contain, collecting what later steps use."""
    allowed, kinds = ALLOWED_FUNCTIONS[engine], _KINDS
    found = _Found([], [], [], [], [], set(), False)
    identifiers = found.identifiers
    node: Any  # typed by its kind, without a cast per node
    for node in tree.walk():
        kind: int = kinds.get(type(node), -1)
        if kind < 0:
            kind = kinds[type(node)] = _kind(type(node))
        if kind == _NAME:  # the most common node
            meta: dict[str, Any] | None = node._meta  # set when parsed from a token
            if meta:
                start = meta.get("start")
                if start is not None:
                    identifiers.add(start)
        elif kind == _OTHER:
            continue
        elif kind == _COLUMN:
            found.columns.append(node)
        elif kind == _TABLE:
            if not isinstance(node.this, exp.Identifier):
                raise QueryRejected("Table functions are not allowed; read tables by name")
            found.tables.append(node)
        elif kind == _STAR:
            found.stars.append(node)
        elif kind == _PLACEHOLDER:
            found.placeholders.append(node)
        elif kind == _WITH:
            found.ctes = True
        elif kind == _QUERY:
            found.queries.append(node)
            if node.args.get("into"):
                raise QueryRejected("SELECT … INTO creates a table; only reading is allowed")
            if node.args.get("locks"):
                raise QueryRejected("Locking clauses (FOR UPDATE / FOR SHARE) are not allowed")
        elif kind == _REFUSE:
            raise QueryRejected(
                f"Only reading is allowed; the query contains {_describe(node, '')}"
            )
        elif kind == _LATERAL:  # over a name, sqlglot reads no table: nothing checks it
            if isinstance(node.this, exp.Column | exp.Dot | exp.Identifier | exp.Table):
                raise QueryRejected("LATERAL may only join a subquery; read tables by name")
        elif kind == _OPERATOR:
            raise QueryRejected(
                "OPERATOR(…) is not allowed: it may name any schema's operator",
                hint="write the operator itself, such as + or =",
            )
        else:  # a function call
            if kind == _UNNEST and isinstance(node.parent, exp.From | exp.Join):
                raise QueryRejected("Table functions are not allowed; read tables by name")
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            if isinstance(node.parent, exp.Dot) and node.parent.expression is node:
                raise QueryRejected(
                    f"Function {name!r} is qualified with a schema; call functions "
                    "by their plain name"
                )
            if is_denied(name) or name.lower() not in allowed:
                raise QueryRejected(
                    f"Function {name.lower()!r} is not on the list of functions ad hoc "
                    f"queries may call on {engine}"
                )
    return found


def _parameters(nodes: list[exp.Expr], params: Mapping[str, Any] | None) -> set[str]:
    if not nodes and not params:  # most queries
        return set()
    given = dict(params or {})
    used: set[str] = set()
    for node in nodes:
        name = _parameter_name(node)
        if name is None:
            raise QueryRejected(
                "Positional parameters are not supported; name them "
                "(:name in PostgreSQL SQL, $name in DuckDB SQL) and send params as an object"
            )
        if name not in given:
            raise QueryRejected(f"No value given for parameter {name!r}")
        used.add(name)
        node.replace(exp.Placeholder(this=name))
    unused = sorted(set(given) - used)
    if unused:
        raise QueryRejected(f"Parameter {unused[0]!r} is not used in the SQL")
    _check_values(given)
    return used


def _check_values(given: Mapping[str, Any]) -> None:
    for name, value in given.items():
        if not PARAMETER_NAME.match(name):
            raise QueryRejected(f"Parameter name {name!r} is not a plain identifier")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise QueryRejected(f"Parameter {name!r} must be a string, number, boolean or null")


def _parameter_name(node: exp.Expr) -> str | None:
    value = node.this
    if isinstance(value, exp.Identifier | exp.Var):
        value = value.name
    if isinstance(value, str) and value and not value.isdigit():
        return value
    return None


def _visible_ctes(table: exp.Table, engine: Engine) -> dict[str, exp.Expr]:
    """The CTEs ``table`` can refer to where it stands, by name: those of every
    enclosing WITH whose body holds it, and within a WITH only the CTEs defined before
    the one it is in (the innermost of a name wins). A RECURSIVE CTE sees its own name
    only in the recursive term (the right of its UNION): anywhere else the engine reads
    a real table of that name."""
    names: dict[str, exp.Expr] = {}
    child: exp.Expr = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            for cte in node.expressions:
                if cte is child:
                    if node.args.get("recursive") and _in_recursive_term(table, cte):
                        names.setdefault(_cte_name(cte, engine), cte)
                    break
                names.setdefault(_cte_name(cte, engine), cte)
        else:
            with_ = node.args.get("with_")
            if isinstance(with_, exp.With) and child is not with_:
                for cte in with_.expressions:
                    names.setdefault(_cte_name(cte, engine), cte)
        child, node = node, node.parent
    names.pop("", None)
    return names


def _cte_name(cte: exp.Expr, engine: Engine) -> str:
    alias = cte.args.get("alias")
    return key(alias.this if alias else None, engine)


def _in_recursive_term(table: exp.Table, cte: exp.Expr) -> bool:
    body = cte.this
    if not isinstance(body, exp.Union):
        return False
    recursive_term = body.expression
    node: exp.Expr | None = table
    while node is not None and node is not cte:
        if node is recursive_term:
            return True
        node = node.parent
    return False


@dataclass
class _Tables:
    """The tables a query reads, and how each reference was resolved."""

    names: tuple[str, ...]  # schema.table of each catalog relation, in order
    relations: dict[int, Mapping[str, str | None]]  # Table node id -> its columns
    ctes: dict[int, exp.Expr]  # Table node id -> the CTE it names
    edits: dict[int, splice.Edit] | None  # the text of each reference, qualified
    unwritten: list[tuple[exp.Table, Relation]]  # references not yet qualified in the tree

    def write_into_tree(self) -> None:
        """Name each relation in full in the tree itself (for sqlglot to write or
        qualify the query), once."""
        for table, relation in self.unwritten:
            table.set("db", exp.to_identifier(relation.schema))
            table.set("this", exp.to_identifier(relation.name))
        self.unwritten = []


def _qualify_tables(
    tables: Iterable[exp.Table], known: KnownTables, engine: Engine, ctes: bool
) -> _Tables:
    """Each table reference resolved: to a CTE in scope (when the query has ``ctes``) or
    to one readable relation, else refused with the reason."""
    used: dict[str, None] = {}
    resolved = _Tables((), {}, {}, {}, [])
    for table in tables:
        args = table.args
        identifier, db = args["this"], args.get("db")
        if args.get("catalog"):
            raise QueryRejected(
                f"Name tables as schema.table; {table.sql()!r} names a database too"
            )
        if db is None and ctes:
            cte = _visible_ctes(table, engine).get(key(identifier, engine))
            if cte is not None:
                resolved.ctes[id(table)] = cte
                continue
        name, schema = identifier.this, db.name if db is not None else None
        found = known.find(schema, name)
        if not found:
            raise _unknown_table(schema, name, known)
        if len(found) > 1:
            options = " or ".join(r.qualified for r in found)
            raise QueryRejected(f"Table {name!r} is in several schemas; write {options}")
        relation = found[0]
        resolved.relations[id(table)] = relation.keyed(engine)
        resolved.unwritten.append((table, relation))
        edits = resolved.edits
        if edits is not None:
            start = (db or identifier)._meta
            end = identifier._meta
            if start and end and "start" in start and "end" in end:
                edits[start["start"]] = (end["end"], relation.written(engine))
            else:  # not read from the SQL text
                resolved.edits = None
        used[relation.qualified] = None
    resolved.names = tuple(used)
    return resolved


@cache
def _reserved(engine: Engine) -> frozenset[str]:
    """Words read as keywords in ``engine``'s SQL, by sqlglot or the engine: a schema or
    table spelled so is written quoted."""
    keywords = _dialect(engine).tokenizer_class.KEYWORDS
    return frozenset(word for key in keywords for word in key.split()) | _ENGINE_RESERVED


# PostgreSQL's reserved key words (DuckDB's grammar derives from it), and DuckDB's own.
_ENGINE_RESERVED = frozenset(
    re.findall(
        r"\S+",
        """ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC AUTHORIZATION BINARY BOTH CASE
        CAST CHECK COLLATE COLLATION COLUMN COLUMNS CONCURRENTLY CONSTRAINT CREATE CROSS
        CURRENT_CATALOG CURRENT_DATE CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME
        CURRENT_TIMESTAMP CURRENT_USER DEFAULT DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT
        FALSE FETCH FOR FOREIGN FREEZE FROM FULL GRANT GROUP HAVING ILIKE IN INITIALLY INNER
        INTERSECT INTO IS ISNULL JOIN LATERAL LEADING LEFT LIKE LIMIT LOCALTIME
        LOCALTIMESTAMP NATURAL NOT NOTNULL NULL OFFSET ON ONLY OR ORDER OUTER OVERLAPS
        PLACING PRIMARY QUALIFY REFERENCES RETURNING RIGHT SELECT SESSION_USER SIMILAR SOME
        SYMMETRIC TABLE TABLESAMPLE THEN TO TRAILING TRUE UNION UNIQUE USER USING VARIADIC
        VERBOSE WHEN WHERE WINDOW WITH PIVOT UNPIVOT ASOF POSITIONAL SEMI ANTI LAMBDA""",
    )
)


def _spliced(
    tokens: list[Any],
    tree: exp.Expr,
    found: _Found,
    tables: _Tables,
    rows: int,
    engine: Engine,
) -> str | None:
    """The SQL as it will run, written from the tokens sqlglot read (see :mod:`.splice`),
    or ``None`` when sqlglot must write it from the tree."""
    if tables.edits is None or not isinstance(tree, exp.Select | exp.SetOperation):
        return None
    for query in found.queries:
        if isinstance(query, exp.SetOperation) and any(
            isinstance(side, exp.Select) and any(side.args.get(k) for k in _OWN_ROWS)
            for side in (query.this, query.expression)
        ):
            return None  # select … limit 5 union select …: sqlglot adds the parentheses
    edits = dict(tables.edits)
    suffix, wrap = f" LIMIT {rows + 1}", False
    limit = tree.args.get("limit")
    if limit is not None:
        written = _plain_limit(limit)
        meta = limit.expression._meta if written is not None else None
        if meta and "start" in meta:
            at = bisect.bisect_left(tokens, meta["start"], key=_token_start)
            if at == 0 or tokens[at - 1].token_type is not TokenType.LIMIT:
                return None  # LIMIT 2, 5: not every engine reads it, sqlglot writes it
        if written is not None and meta and "start" in meta:
            edits[meta["start"]] = (meta["end"], str(min(written, rows + 1)))
            suffix = ""
        elif limit.args.get("offset"):
            return None  # LIMIT 2, 5 in any form: sqlglot writes it
        else:  # LIMIT ALL, a percent, an expression, FETCH …: the engine's, then ours
            wrap = True
    return splice.render(
        tokens,
        engine=engine,
        identifiers=found.identifiers,
        edits=edits,
        calls=CALLS_AS_WRITTEN[engine],
        suffix=suffix,
        wrap=wrap,
    )


def _unknown_table(schema: str | None, name: str, known: KnownTables) -> QueryRejected:
    written = f"{schema}.{name}" if schema else name
    actual = known.aliases.get(schema.lower(), schema) if schema else None
    if (actual and f"{actual}.{name}".lower() in known.hidden) or (
        not schema and any(name.lower() == h.split(".", 1)[1] for h in known.hidden)
    ):
        return QueryRejected(
            f"Table {written!r} is not readable with your role",
            hint="ask an admin, or query a schema your role may read",
        )
    if "/" in written or "\\" in written or re.search(r"\.(csv|parquet|json|txt)$", written):
        return QueryRejected(
            f"{written!r} looks like a file; ad hoc queries read warehouse tables only"
        )
    suggestion = known.suggest(written)
    return QueryRejected(
        f"Unknown table {written!r}",
        hint=f"did you mean {suggestion}?" if suggestion else "see GET /api/catalog/datasets",
    )


def _columns_used(tree: exp.Expr, known: KnownTables, engine: Engine) -> tuple[str, ...]:
    """Qualify the query (in place) against the catalog; an unknown column is refused."""
    try:
        qualified = qualify(
            tree,
            schema=known.schema(engine),
            dialect=engine,
            validate_qualify_columns=True,
            quote_identifiers=False,
            expand_stars=True,
        )
    except OptimizeError as exc:
        raise _unknown_column(str(exc), tree, known) from None
    except Exception:  # sqlglot cannot model every engine feature; the engine decides
        return ()
    sources: dict[str, tuple[str, Mapping[str, str | None]]] = {}
    for table in qualified.find_all(exp.Table):
        if table.db:
            found = known.find(table.db, table.name)
            keyed = found[0].keyed(engine) if len(found) == 1 else {}
            sources[table.alias_or_name.lower()] = (f"{table.db}.{table.name}", keyed)
    used: dict[str, None] = {}
    for column in qualified.find_all(exp.Column):
        source = sources.get(column.table.lower())
        if source and column.name:
            # The catalog's spelling: qualify folds every DuckDB name to lower case.
            qualified_table, keyed = source
            key = column.name.lower() if engine == "duckdb" else column.name
            used[keyed.get(key) or f"{qualified_table}.{column.name}"] = None
    return tuple(used)


def _unknown_column(message: str, tree: exp.Expr, known: KnownTables) -> QueryRejected:
    match = re.search(r"Column '(.+?)' could not be resolved", message) or re.search(
        r"Unknown column: (\S+)", message
    )
    if not match:
        return QueryRejected(f"The query cannot be resolved against the catalog: {message}")
    written = match.group(1).strip('"')
    candidates: list[str] = []
    for table in tree.find_all(exp.Table):
        for relation in known.find(table.db or None, table.name):
            candidates += relation.columns
    close = difflib.get_close_matches(written, candidates, n=1, cutoff=0.6) or (
        difflib.get_close_matches(written.lower(), [c.lower() for c in candidates], n=1)
    )
    return QueryRejected(
        f"Unknown column {written!r}",
        hint=f"did you mean {close[0]}?" if close else None,
    )


def _limited(tree: exp.Expr, rows: int, engine: Engine) -> exp.Expr:
    """The query returning at most ``rows + 1`` rows (the extra one tells truncation)."""
    query = tree
    if isinstance(tree, exp.Subquery):  # (SELECT …) ORDER BY … LIMIT …: the same, spelled
        query = exp.select("*").from_(  # as a query over the parenthesised one
            exp.Subquery(this=tree.this, alias=exp.TableAlias(this=exp.to_identifier("q")))
        )
        for key in ("order", "limit", "offset"):
            if tree.args.get(key) is not None:
                query.set(key, tree.args[key])
    if not isinstance(query, exp.Query):  # _check_statement let only queries through
        raise QueryRejected("Only a SELECT query may run")
    limit = query.args.get("limit")
    if limit is None:
        return _as_expr(query.limit(rows + 1, copy=False))
    written = _plain_limit(limit)
    if written is not None:
        return _as_expr(query.limit(min(written, rows + 1), copy=False))
    outer = exp.select("*").from_(query.subquery("q", copy=False))
    return _as_expr(outer.limit(rows + 1, copy=False))


_OWN_ROWS = ("order", "limit", "offset")


def _token_start(token: Any) -> int:
    start: int = token.start
    return start


def _plain_limit(limit: exp.Expr) -> int | None:
    """The row count of a plain ``LIMIT n``: not a percent, WITH TIES, ALL, an
    expression or FETCH, and no ``LIMIT offset, n``. ``None`` for anything else."""
    if not isinstance(limit, exp.Limit):
        return None
    written = limit.expression
    if not isinstance(written, exp.Literal) or not written.is_int:
        return None
    if any(value for key, value in limit.args.items() if key != "expression"):
        return None
    return int(written.name)


def _as_expr(node: Any) -> exp.Expr:
    if not isinstance(node, exp.Expr):  # pragma: no cover - sqlglot returns expressions
        raise TypeError(f"not an expression: {node!r}")
    return node


def _render(tree: exp.Expr, engine: Engine, names: Collection[str]) -> tuple[str, str]:
    """The SQL to show, and the same SQL in the driver's placeholder syntax.

    Without comments: the SQL that runs is exactly the statement that was checked, and
    it can be wrapped (an export's ``SELECT … FROM (<sql>) AS q``) as it is.
    """
    if engine == "duckdb" or not names:
        shown = tree.sql(dialect=engine, comments=False, copy=False)
        return shown, shown
    # A fresh random marker per query: text written in the SQL (a string, a comment)
    # cannot guess it, so only real placeholders become bound parameters.
    token = secrets.token_hex(8)
    sentinels = {}
    copy = tree.copy()
    for index, node in enumerate(list(copy.find_all(exp.Placeholder))):
        sentinel = _PARAM_SENTINEL.format(token, index)
        sentinels[sentinel] = str(node.this)
        node.replace(exp.Placeholder(this=exp.to_identifier(sentinel)))
    rendered = copy.sql(dialect=engine, comments=False, copy=False)
    shown, bindable = rendered, rendered.replace("%", "%%")
    for sentinel, name in sentinels.items():
        if rendered.count(sentinel) != 1:  # pragma: no cover - a 64-bit random collision
            raise QueryRejected("The SQL cannot be prepared; send it again")
        shown = shown.replace(f"%({sentinel})s", f":{name}")
        bindable = bindable.replace(f"%%({sentinel})s", f"%({name})s")
    return shown, bindable


def relations(rows: Iterable[tuple[str, str, str, str]]) -> list[Relation]:
    """Relations from ``(schema, table, column, type)`` rows in column order."""
    grouped: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for schema, table, column, kind in rows:
        grouped.setdefault((schema, table), []).append((column, kind))
    return [
        Relation(s, t, tuple(c for c, _ in cols), tuple(k for _, k in cols))
        for (s, t), cols in grouped.items()
    ]
