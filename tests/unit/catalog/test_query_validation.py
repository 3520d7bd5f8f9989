"""Ad hoc SQL validation (catalog.queries.validate): hostile and legitimate corpora, per engine.

The corpora are SQL fixture files, ``tests/fixtures/queries/{hostile,legitimate}_<engine>.sql``
(their format is documented at the top of each file), validated against :data:`KNOWN`: a
small catalog where ``marts`` and ``staging`` are readable and ``raw_shop`` is hidden from
the role. Every hostile case must be refused with the reason it names; every legitimate case
must pass and come out qualified, limited and bound. Known gaps are marked in the fixture
(``bypass``: a hostile case the validator lets through; ``unclear``: refused without saying
what was found; ``refused``: a legitimate case the validator refuses) and run as strict
xfails, so the day the validator is fixed they fail and ask for the marker to go.

The DuckDB engine runs in process, so legitimate DuckDB output is also executed against empty
tables of the same shape (no server): what the validator lets through must actually run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from psycopg2.extensions import adapt
from sqlglot import exp

from catalog.queries.errors import QueryRejected
from catalog.queries.policy import (
    CALL_FORMS,
    CALLS_AS_WRITTEN,
    DENIED_NAME,
    Engine,
    is_denied,
    may_name_denied,
)
from catalog.queries.validate import KnownTables, Relation, ValidatedQuery, validate

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "queries"
ENGINES: tuple[Engine, ...] = ("duckdb", "postgres")
CAP = 10_000
"""The row cap the tests validate with (the validator's default)."""

KNOWN = KnownTables(
    readable=(
        Relation(
            "marts",
            "orders",
            ("order_id", "customer_id", "status", "amount", "ordered_at"),
            ("BIGINT", "BIGINT", "VARCHAR", "DECIMAL(12,2)", "TIMESTAMP"),
        ),
        Relation(
            "marts",
            "customers",
            ("customer_id", "name", "email", "country", "created_at", "Signup Source"),
            ("BIGINT", "VARCHAR", "VARCHAR", "VARCHAR", "TIMESTAMP", "VARCHAR"),
        ),
        Relation(
            "marts",
            "daily_revenue",
            ("day", "revenue", "order_count"),
            ("DATE", "DECIMAL(14,2)", "BIGINT"),
        ),
        Relation(
            "marts",
            "order_items",
            ("order_id", "sku", "quantity", "unit_price"),
            ("BIGINT", "VARCHAR", "INTEGER", "DECIMAL(12,2)"),
        ),
        Relation(
            "staging",
            "stg_orders",
            ("order_id", "customer_id", "status", "amount_cents", "ordered_at"),
            ("BIGINT", "BIGINT", "VARCHAR", "BIGINT", "TIMESTAMP"),
        ),
        Relation(
            "staging",
            "stg_payments",
            ("payment_id", "order_id", "method", "amount_cents", "paid_at"),
            ("BIGINT", "BIGINT", "VARCHAR", "BIGINT", "TIMESTAMP"),
        ),
        Relation(
            "staging",
            "order_items",
            ("order_id", "sku", "quantity", "unit_price_cents"),
            ("BIGINT", "VARCHAR", "INTEGER", "BIGINT"),
        ),
    ),
    hidden=frozenset({"raw_shop.orders", "raw_shop.customers", "raw_shop.payments"}),
)
READABLE = {r.qualified for r in KNOWN.readable}

# ---------------------------------------------------------------------------------------
# The fixture format
# ---------------------------------------------------------------------------------------

_HEADER = re.compile(r"^-- case: (?P<name>[a-z0-9_]+)(?P<options>(?:\s*\|\s*[a-z_]+:[^|]*)*)$")
_OPTION = re.compile(r"\|\s*(?P<key>[a-z_]+):(?P<value>[^|]*)")
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_GAPS = ("bypass", "unclear", "refused")
"""Options that mark a known gap of the validator: the case runs as a strict xfail."""
_KEYS = {
    "hostile": {"expect", "hint", "dialect", "params", "max_chars", "escapes", "bypass", "unclear"},
    "legitimate": {"tables", "dialect", "params", "escapes", "refused"},
}


@dataclass(frozen=True)
class Case:
    """One case of a corpus file: its name, its SQL and the options on its header line."""

    name: str
    sql: str
    options: Mapping[str, str]

    @property
    def params(self) -> dict[str, Any] | None:
        raw = self.options.get("params")
        if raw is None:
            return None
        value = json.loads(raw)
        assert isinstance(value, dict), f"params of {self.name} must be a JSON object"
        return value

    @property
    def dialect(self) -> str | None:
        return self.options.get("dialect")


def load_cases(path: Path, kind: str) -> list[Case]:
    """The cases of one corpus file; a malformed header or a duplicate name is an error."""
    cases: list[Case] = []
    header: tuple[str, dict[str, str], int] | None = None
    body: list[str] = []

    def close() -> None:
        if header is None:
            return
        name, options, line = header
        sql = "\n".join(body).strip("\n")
        if options.get("escapes") == "yes":
            sql = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), sql)
        assert sql.strip(), f"{path.name}:{line}: case {name} has no SQL"
        cases.append(Case(name, sql, options))

    # Split on "\n" only: a case may hold \r, \v or \f, which str.splitlines() breaks on.
    for number, raw in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if raw.startswith("-- case:"):
            match = _HEADER.match(raw)
            assert match, f"{path.name}:{number}: malformed case header {raw!r}"
            close()
            options = {
                m.group("key"): m.group("value").strip()
                for m in _OPTION.finditer(match.group("options"))
            }
            unknown = set(options) - _KEYS[kind]
            assert not unknown, f"{path.name}:{number}: unknown options {sorted(unknown)}"
            if kind == "hostile":
                assert options.get("expect"), f"{path.name}:{number}: a hostile case needs expect"
            header, body = (match.group("name"), options, number), []
        elif header is not None:
            body.append(raw)
    close()
    names = [c.name for c in cases]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"{path.name}: duplicate case names {duplicates}"
    return cases


@cache
def corpus(kind: str, engine: str) -> tuple[Case, ...]:
    return tuple(load_cases(FIXTURES / f"{kind}_{engine}.sql", kind))


def corpus_params(kind: str) -> Iterator[Any]:
    """One pytest param per case and engine; known gaps run as strict xfails."""
    for engine in ENGINES:
        for case in corpus(kind, engine):
            reason = next((case.options[k] for k in _GAPS if k in case.options), None)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(engine, case, id=f"{engine}/{case.name}", marks=marks)


def run(case: Case, engine: Engine) -> ValidatedQuery:
    options: dict[str, Any] = {"dialect": case.dialect, "params": case.params, "cap": CAP}
    if "max_chars" in case.options:
        options["max_chars"] = int(case.options["max_chars"])
    return validate(case.sql, KNOWN, engine=engine, **options)


# ---------------------------------------------------------------------------------------
# Helpers: what the SQL that will run looks like
# ---------------------------------------------------------------------------------------


def parse_output(query: ValidatedQuery) -> exp.Expr:
    """``query.sql`` read back in the engine's dialect: it must be one statement."""
    statements = [s for s in sqlglot.parse(query.sql, read=query.engine) if s is not None]
    assert len(statements) == 1, query.sql
    return statements[0]


def outer_limit(tree: exp.Expr) -> int:
    """The row limit of the outermost query, which must be a plain integer."""
    limit = tree.args.get("limit")
    assert isinstance(limit, exp.Limit), f"no LIMIT on the outer query: {tree.sql()}"
    value = limit.expression
    assert isinstance(value, exp.Literal) and value.is_int, f"LIMIT is not a number: {tree.sql()}"
    return int(value.name)


def cte_names(tree: exp.Expr) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def interpolate_like_psycopg2(bind_sql: str, params: Mapping[str, Any]) -> str:
    """What psycopg2 sends for ``cursor.execute(bind_sql, params)``: pyformat, quoted values.

    (Without a connection psycopg2 quotes backslashes for non-standard strings, so the
    values used here hold none.)
    """
    quoted = {name: adapt(value).getquoted().decode() for name, value in params.items()}
    return bind_sql % quoted


def create_known_tables(connection: duckdb.DuckDBPyConnection) -> None:
    """Empty tables shaped like :data:`KNOWN` in ``connection``."""
    for relation in KNOWN.readable:
        connection.execute(f'create schema if not exists "{relation.schema}"')
        columns = ", ".join(
            f'"{column}" {kind}'
            for column, kind in zip(relation.columns, relation.types, strict=True)
        )
        connection.execute(f'create table "{relation.schema}"."{relation.name}" ({columns})')


@pytest.fixture(scope="module")
def warehouse() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with empty tables shaped like :data:`KNOWN` (no server)."""
    connection = duckdb.connect(":memory:")
    create_known_tables(connection)
    connection.execute("set enable_external_access = false")
    yield connection
    connection.close()


# ---------------------------------------------------------------------------------------
# The corpora
# ---------------------------------------------------------------------------------------


def test_every_corpus_file_has_cases() -> None:
    for kind in _KEYS:
        for engine in ENGINES:
            assert len(corpus(kind, engine)) >= 20, f"{kind}_{engine}.sql looks truncated"


@pytest.mark.parametrize(("engine", "case"), list(corpus_params("hostile")))
def test_hostile_sql_is_refused_with_its_reason(engine: Engine, case: Case) -> None:
    with pytest.raises(QueryRejected) as refused:
        run(case, engine)
    error = refused.value
    assert case.options["expect"] in error.message
    if "hint" in case.options:
        assert case.options["hint"] in (error.hint or "")


@pytest.mark.parametrize(("engine", "case"), list(corpus_params("legitimate")))
def test_legitimate_sql_passes(engine: Engine, case: Case) -> None:
    query = run(case, engine)
    tree = parse_output(query)

    # The row limit is always there, and never above the cap (+1 to tell truncation).
    assert query.limit <= CAP
    assert outer_limit(tree) <= CAP + 1

    # Every table is qualified with a readable schema, in .tables and in the SQL itself.
    assert set(query.tables) <= READABLE
    ctes = cte_names(tree)
    for table in tree.find_all(exp.Table):
        if not table.db and table.name.lower() in ctes:
            continue
        assert f"{table.db}.{table.name}" in READABLE, f"{table.sql()} in {query.sql}"
    if "tables" in case.options:
        expected = {t.strip() for t in case.options["tables"].split(",") if t.strip()}
        assert set(query.tables) == expected

    # Parameters become placeholders; their values never reach the SQL text.
    params = case.params or {}
    assert set(query.parameters) == set(params)
    for value in params.values():
        if isinstance(value, str) and len(value) > 2:
            assert value not in query.sql
            assert value not in query.bind_sql

    # The SQL as it will run (shown by /api/queries/validate, kept in the history) is
    # itself accepted, unchanged.
    again = validate(query.sql, KNOWN, engine=engine, params=case.params, cap=CAP)
    assert (again.sql, again.tables) == (query.sql, query.tables)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.name)
        for c in corpus("legitimate", "duckdb")
        if "refused" not in c.options
    ],
)
def test_legitimate_duckdb_sql_runs_on_duckdb(
    case: Case, warehouse: duckdb.DuckDBPyConnection
) -> None:
    query = run(case, "duckdb")
    statements = warehouse.extract_statements(query.sql)
    assert [s.type for s in statements] == [duckdb.StatementType.SELECT]
    warehouse.execute(query.bind_sql, case.params or None).fetchall()


# ---------------------------------------------------------------------------------------
# The row limit
# ---------------------------------------------------------------------------------------

LIMITS: list[tuple[str, int]] = [
    # (sql, the outer LIMIT expected in the SQL that runs)
    ("select order_id from marts.orders", CAP + 1),
    ("select order_id from marts.orders limit 5", 5),
    ("select order_id from marts.orders limit 9999999", CAP + 1),
    ("select order_id from marts.orders order by order_id limit 9999999", CAP + 1),
    ("select order_id from marts.orders limit 10 offset 5", 10),
    ("select order_id from marts.orders limit 9999999 offset 5", CAP + 1),
    ("select order_id from marts.orders offset 5", CAP + 1),
    ("select order_id from marts.orders limit all", CAP + 1),
    ("select order_id from marts.orders limit null", CAP + 1),
    ("select order_id from marts.orders limit '9999999'", CAP + 1),
    ("select order_id from marts.orders limit 9999999::int", CAP + 1),
    ("select order_id from marts.orders limit (select 9999999)", CAP + 1),
    ("select order_id from marts.orders limit 1e9", CAP + 1),
    ("select order_id from marts.orders fetch first 9999999 rows only", CAP + 1),
    ("select 1 as a union all select 2 limit 9999999", CAP + 1),
    ("with o as (select order_id from marts.orders) select * from o limit 9999999", CAP + 1),
    ("((select order_id from marts.orders limit 9999999))", CAP + 1),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("sql", "expected"), LIMITS)
def test_a_row_limit_always_applies(engine: Engine, sql: str, expected: int) -> None:
    query = validate(sql, KNOWN, engine=engine, cap=CAP)
    assert query.limit == CAP
    assert outer_limit(parse_output(query)) == expected


@pytest.mark.parametrize(
    ("engine", "sql", "expected"),
    [
        ("duckdb", "select order_id from marts.orders limit $n", CAP + 1),
        ("duckdb", "select order_id from marts.orders limit 9999999 offset $n", CAP + 1),
        ("duckdb", "select order_id from marts.orders limit 5 offset $n", 5),
        ("postgres", "select order_id from marts.orders limit :n", CAP + 1),
        ("postgres", "select order_id from marts.orders limit 9999999 offset :n", CAP + 1),
        ("postgres", "select order_id from marts.orders limit 5 offset :n", 5),
    ],
)
def test_a_parameterised_limit_or_offset_is_still_capped(
    engine: Engine, sql: str, expected: int
) -> None:
    query = validate(sql, KNOWN, engine=engine, params={"n": 1_234_567}, cap=CAP)
    assert outer_limit(parse_output(query)) == expected
    assert query.parameters == ("n",)
    assert "1234567" not in query.sql


@pytest.mark.parametrize("engine", ENGINES)
def test_the_callers_limit_is_lowered_to_the_cap(engine: Engine) -> None:
    sql = "select order_id from marts.orders"
    assert validate(sql, KNOWN, engine=engine, limit=50, cap=100).limit == 50
    lowered = validate(sql, KNOWN, engine=engine, limit=5_000, cap=100)
    assert lowered.limit == 100
    assert outer_limit(parse_output(lowered)) == 101
    written = validate(sql + " limit 500", KNOWN, engine=engine, limit=20, cap=100)
    assert outer_limit(parse_output(written)) == 21


@pytest.mark.parametrize("engine", ENGINES)
def test_a_parenthesised_query_keeps_its_order_and_limit(engine: Engine) -> None:
    sql = "(select order_id from marts.orders) order by order_id desc limit 5"
    query = validate(sql, KNOWN, engine=engine, cap=CAP)
    tree = parse_output(query)
    assert outer_limit(tree) == 5
    assert tree.args.get("order") is not None, query.sql


# ---------------------------------------------------------------------------------------
# Tables, parameters, canonical form, dialects, errors, schema prefix
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_tables_come_out_qualified(engine: Engine) -> None:
    sql = (
        "select o.order_id, c.email, p.method from orders o "
        "join customers c using (customer_id) join stg_payments p on p.order_id = o.order_id"
    )
    query = validate(sql, KNOWN, engine=engine, cap=CAP)
    assert query.tables == ("marts.orders", "marts.customers", "staging.stg_payments")
    rendered = {f"{t.db}.{t.name}" for t in parse_output(query).find_all(exp.Table)}
    assert rendered == set(query.tables)
    assert "marts.orders.order_id" in query.columns
    assert "staging.stg_payments.method" in query.columns


HOSTILE_VALUE = "x' or '1'='1"


@pytest.mark.parametrize(
    ("engine", "dialect", "sql", "shown", "bound"),
    [
        ("duckdb", None, "select order_id from marts.orders where status = $s", "$s", "$s"),
        ("duckdb", "postgres", "select order_id from marts.orders where status = :s", "$s", "$s"),
        ("postgres", None, "select order_id from marts.orders where status = :s", ":s", "%(s)s"),
        (
            "postgres",
            "duckdb",
            "select order_id from marts.orders where status = $s",
            ":s",
            "%(s)s",
        ),
    ],
)
def test_params_become_placeholders_never_text(
    engine: Engine, dialect: str | None, sql: str, shown: str, bound: str
) -> None:
    query = validate(sql, KNOWN, engine=engine, dialect=dialect, params={"s": HOSTILE_VALUE})
    assert query.parameters == ("s",)
    assert f"status = {shown}" in query.sql
    assert f"status = {bound}" in query.bind_sql
    for text in (query.sql, query.bind_sql, query.canonical):
        assert HOSTILE_VALUE not in text
        assert "1'='1" not in text


def test_duckdb_binds_a_hostile_value_as_a_value(warehouse: duckdb.DuckDBPyConnection) -> None:
    warehouse.execute("insert into marts.orders values (1, 1, 'paid', 9.5, now())")
    try:
        query = validate(
            "select order_id from marts.orders where status = $s",
            KNOWN,
            engine="duckdb",
            params={"s": HOSTILE_VALUE},
        )
        assert warehouse.execute(query.bind_sql, {"s": HOSTILE_VALUE}).fetchall() == []
        assert warehouse.execute(query.bind_sql, {"s": "paid"}).fetchall() == [(1,)]
    finally:
        warehouse.execute("delete from marts.orders")


def _same_after_binding(query: ValidatedQuery, params: Mapping[str, Any]) -> None:
    """psycopg2's interpolation of ``bind_sql`` is the query with each value as a literal."""
    sent = interpolate_like_psycopg2(query.bind_sql, params)
    expected = sqlglot.parse_one(query.sql, read="postgres")
    for node in list(expected.find_all(exp.Placeholder)):
        value = params[str(node.name)]
        node.replace(exp.convert(value))
    statements = [s for s in sqlglot.parse(sent, read="postgres") if s is not None]
    assert len(statements) == 1, sent
    assert statements[0].sql("postgres") == expected.sql("postgres"), sent


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("select order_id from marts.orders where status = :s", {"s": HOSTILE_VALUE}),
        ("select order_id from marts.orders where status like '%a%' and status = :s", {"s": "5%"}),
        (
            "select order_id, :label as label from marts.orders where amount > :min",
            {"label": "it's; drop table marts.orders --", "min": 10},
        ),
        ("select '%(s)s' as written, :s as bound from marts.orders", {"s": "' or 1=1 --"}),
    ],
)
def test_postgres_binding_keeps_values_values(sql: str, params: dict[str, Any]) -> None:
    _same_after_binding(validate(sql, KNOWN, engine="postgres", params=params), params)


@pytest.mark.parametrize(
    ("sql", "value"),
    [
        (
            "select '%(hw_param_0_)s' as a, :p as b from marts.orders",
            "||(select string_agg(email, chr(44)) from raw_shop.customers)||",
        ),
        (
            "select status /* %(hw_param_0_)s */, :p as b from marts.orders",
            "*/ (select count(*) from raw_shop.customers) as leaked, /*",
        ),
    ],
)
def test_a_sentinel_in_the_sql_cannot_smuggle_a_value_into_code(sql: str, value: str) -> None:
    try:
        query = validate(sql, KNOWN, engine="postgres", params={"p": value})
    except QueryRejected:
        return
    _same_after_binding(query, {"p": value})


VARIANTS = [
    (
        "select order_id, status from marts.orders where amount > 10 order by order_id",
        "SELECT order_id ,  status\nFROM   marts.orders\n\tWHERE amount>10   ORDER  BY order_id",
        "SELECT order_id, status FROM marts.orders WHERE amount > 10 ORDER BY order_id",
        "select order_id, status from marts.orders where amount > 10 order by order_id;",
        "select order_id,status from marts.orders where amount>10 order by order_id",
    ),
    (
        "with c as (select customer_id, count(*) as n from marts.orders group by 1) "
        "select * from c where n > 1",
        "WITH c AS (\n  SELECT customer_id, COUNT(*) AS n\n  FROM marts.orders\n  GROUP BY 1\n)\n"
        "SELECT *\nFROM c\nWHERE n > 1",
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variants", VARIANTS, ids=["select", "cte"])
def test_canonical_form_ignores_whitespace_and_keyword_case(
    engine: Engine, variants: tuple[str, ...]
) -> None:
    forms = {validate(sql, KNOWN, engine=engine).canonical for sql in variants}
    assert len(forms) == 1, forms


@pytest.mark.parametrize("engine", ENGINES)
def test_identifier_case_is_one_entry_only_where_the_engine_ignores_it(engine: Engine) -> None:
    """PostgreSQL folds unquoted names: ``Order_Id`` is ``order_id``, down to the result's
    column name. DuckDB keeps the spelling as the column name, so there the two answers
    differ and must not share a cache entry."""
    lower = validate("select order_id from marts.orders", KNOWN, engine=engine).canonical
    mixed = validate("Select Order_Id From MARTS.ORDERS", KNOWN, engine=engine).canonical
    assert (lower == mixed) == (engine == "postgres")
    quoted = validate('select order_id as "Id" from marts.orders', KNOWN, engine=engine)
    other = validate('select order_id as "id" from marts.orders', KNOWN, engine=engine)
    assert quoted.canonical != other.canonical


@pytest.mark.parametrize("engine", ENGINES)
def test_canonical_form_tells_different_queries_apart(engine: Engine) -> None:
    a = validate("select order_id from marts.orders where status = 'a'", KNOWN, engine=engine)
    b = validate("select order_id from marts.orders where status = 'A'", KNOWN, engine=engine)
    c = validate(
        "select order_id from marts.orders where status = 'a' limit 5", KNOWN, engine=engine
    )
    assert len({a.canonical, b.canonical, c.canonical}) == 3


def test_postgres_sql_transpiles_for_duckdb(warehouse: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "select order_id::text as id, date_trunc('month', ordered_at) as month, "
        "status ilike 'paid%' as paid, string_agg(status, ',') over () as statuses "
        "from marts.orders where ordered_at > now() - interval '30 days' "
        "and status = any(array['paid', 'shipped']) and status = :s"
    )
    query = validate(sql, KNOWN, engine="duckdb", dialect="postgres", params={"s": "paid"})
    assert "CAST(order_id AS TEXT)" in query.sql
    assert "$s" in query.sql and ":s" not in query.sql
    assert query.tables == ("marts.orders",)
    warehouse.execute(query.bind_sql, {"s": "paid"}).fetchall()


def test_duckdb_sql_transpiles_for_postgres() -> None:
    sql = (
        "select order_id, list_value(1, 2) as pair, strftime(ordered_at, '%Y-%m') as ym, "
        "ordered_at::date as day from marts.orders where status = $s"
    )
    query = validate(sql, KNOWN, engine="postgres", dialect="duckdb", params={"s": "paid"})
    assert "ARRAY[1, 2]" in query.sql
    assert "TO_CHAR(ordered_at, 'YYYY-MM')" in query.sql
    assert "CAST(ordered_at AS DATE)" in query.sql
    assert "status = :s" in query.sql and "status = %(s)s" in query.bind_sql
    tree = sqlglot.parse_one(query.sql, read="postgres")
    assert isinstance(tree, exp.Select)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_parse_error_names_line_and_column(engine: Engine) -> None:
    sql = "select order_id,\n  status\nfrom marts.orders\nwhere (status = 'paid'"
    with pytest.raises(QueryRejected) as refused:
        validate(sql, KNOWN, engine=engine)
    assert "cannot be parsed" in refused.value.message
    assert refused.value.line == 4
    assert refused.value.column is not None and refused.value.column > 0


@pytest.mark.parametrize("engine", ENGINES)
def test_a_refused_function_names_line_and_column(engine: Engine) -> None:
    sql = "select order_id,\n       pg_sleep(1)\nfrom marts.orders"
    with pytest.raises(QueryRejected) as refused:
        validate(sql, KNOWN, engine=engine)
    assert (refused.value.line, refused.value.column) == (2, len("       pg_sleep"))


@pytest.mark.parametrize("engine", ENGINES)
def test_sql_longer_than_the_cap_is_refused(engine: Engine) -> None:
    sql = "select order_id from marts.orders where status in (" + "'x', " * 5_000 + "'y')"
    assert len(sql) > 20_000
    with pytest.raises(QueryRejected, match="characters long; the most is 20,000"):
        validate(sql, KNOWN, engine=engine)


PREFIXED = KnownTables(
    readable=(
        Relation("t1_marts", "orders", ("order_id", "status"), ("BIGINT", "VARCHAR")),
        Relation("t1_staging", "stg_orders", ("order_id", "status"), ("BIGINT", "VARCHAR")),
    ),
    hidden=frozenset({"t1_raw_shop.orders"}),
    aliases={"marts": "t1_marts", "staging": "t1_staging", "raw_shop": "t1_raw_shop"},
)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_schema_prefix_alias_resolves(engine: Engine) -> None:
    query = validate(
        "select o.order_id from MARTS.orders o join staging.stg_orders s using (order_id)",
        PREFIXED,
        engine=engine,
    )
    assert query.tables == ("t1_marts.orders", "t1_staging.stg_orders")
    assert "FROM t1_marts.orders o JOIN t1_staging.stg_orders s" in query.sql
    assert validate("select * from t1_marts.orders", PREFIXED, engine=engine).tables == (
        "t1_marts.orders",
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_schema_prefix_alias_does_not_open_hidden_schemas(engine: Engine) -> None:
    with pytest.raises(QueryRejected, match="not readable with your role"):
        validate("select * from raw_shop.orders", PREFIXED, engine=engine)
    with pytest.raises(QueryRejected, match=r"Unknown table 'marts\.ordrs'"):
        validate("select * from marts.ordrs", PREFIXED, engine=engine)


def _denied_examples() -> list[str]:
    """Names the deny-list matches, one or two per alternative of its pattern."""
    names = []
    for alternative in re.sub(r"\s+", "", DENIED_NAME.pattern)[4:-2].split("|"):
        for fill in ("", "abc"):
            name = alternative.replace(r"\w*", fill).replace("s?", "s")
            names += [name, alternative.replace(r"\w*", fill).replace("s?", "")]
    return sorted({n for n in names if n and is_denied(n)})


def test_the_whole_text_look_finds_every_denied_name() -> None:
    """The validator skips its token-by-token look for denied names when a first look
    over the whole SQL finds none: that look must find every name the deny-list has."""
    examples = _denied_examples()
    assert len(examples) > 40
    for name in examples:
        for written in (name, name.upper(), name.title(), f'"{name}"'):
            assert may_name_denied(f"select {written}(1) from marts.orders"), written
    assert not may_name_denied("select customer_id, sum(amount) from marts.orders group by 1")
    assert may_name_denied('select U&"\\0072ead_csv"(1)')  # an escape: look token by token
    with pytest.raises(QueryRejected, match="not allowed: it reads files"):
        validate("select \"READ_CSV\"('x') from marts.orders", KNOWN, engine="duckdb")


def test_every_call_run_as_written_on_duckdb_is_a_built_in() -> None:
    """The splicer lets DuckDB call these by the name as written: each must be DuckDB's
    own function (or a grammar form such as COALESCE), not a name only sqlglot knows."""
    connection = duckdb.connect()
    built_in = {
        name
        for (name,) in connection.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE internal"
        ).fetchall()
    }
    assert CALLS_AS_WRITTEN["duckdb"] - CALL_FORMS["duckdb"] <= built_in
    for form in CALL_FORMS["duckdb"]:  # grammar forms: DuckDB reads them, no lookup
        call = f"{form}(0.5) WITHIN GROUP (ORDER BY x)" if "percentile" in form else f"{form}(1)"
        connection.execute(f"SELECT {call} FROM range(3) AS t(x)").fetchall()
