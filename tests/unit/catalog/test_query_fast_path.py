"""The ad hoc query validator's fast path, proved against its slow path (differential tests).

:func:`catalog.queries.validate.validate` has two ways to finish a query it has checked:

- the fast path: :func:`catalog.queries.resolve.columns_used` works out by hand which
  catalog columns the query reads, and :func:`catalog.queries.splice.render` (through
  ``_spliced``) writes the SQL that will run from the tokens sqlglot read, with the tables
  qualified and the row limit spliced in;
- the slow path: sqlglot's ``qualify`` (``_columns_used``) resolves the columns, and the
  SQL is regenerated from the checked tree (``_limited`` + ``_render``).

The fast path exists only to be fast: wherever it answers, it must agree with the slow
path. Each test here validates the same SQL both ways, the slow way by making
``columns_used`` and ``_spliced`` answer ``None`` (as they do for shapes they do not
model), and compares: the tables and columns reported, the refusals and their messages,
the canonical form (the cache key), and, on an in-process DuckDB, the result column
names and rows of the SQL each path produces. Tests that spy on ``_render`` prove the
fast path really runs for plain queries (a silent fallback would make every comparison
pass trivially), and that SQL outside the lexemes the splicer trusts really falls back.

Every validation here uses a fresh copy of the test catalog: ``validate`` remembers what
it validated per :class:`KnownTables`, and a remembered fast answer would otherwise be
handed back to the slow validation (which is also why the corpus module's ``run`` is not
used). Known disagreements are strict xfails whose reason says what differs and which
side is right; the day one is fixed, its xfail fails and asks to be removed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NoReturn, Protocol

import duckdb
import pytest
import sqlglot
from sqlglot import exp

import catalog.queries.validate
from catalog.queries.errors import QueryRejected
from catalog.queries.policy import Engine
from catalog.queries.resolve import columns_used
from catalog.queries.validate import KnownTables, ValidatedQuery
from headwater.native import source_twin
from tests.unit.catalog.test_query_validation import (
    CAP,
    ENGINES,
    KNOWN,
    Case,
    corpus,
    create_known_tables,
    outer_limit,
    parse_output,
)

pytestmark = pytest.mark.unit

# The tests patch validate's own functions, which its compiled build (headwater/native.py)
# calls directly, past any patch: they run its source. test_query_native.py checks that
# the compiled build answers as the source does.
validation = source_twin(catalog.queries.validate)
validate = validation.validate

# ---------------------------------------------------------------------------------------
# Known disagreements (each one a strict xfail below)
# ---------------------------------------------------------------------------------------

SLOW_PATH_RENAMES = (
    "DuckDB names an unaliased result column after its expression; the slow path "
    "regenerates string_agg(order_id::varchar, ',') as listagg(CAST(order_id AS TEXT), "
    "','), so its result column names differ from the fast path's, which keeps the "
    "user's spelling (the fast path is the faithful one)"
)
ORDER_BY_EXPRESSION = (
    "ORDER BY an expression over a name that is both an output alias and a source "
    "column (order by amount + 0) reads the column on DuckDB and PostgreSQL; the fast "
    "path reports marts.orders.amount, the slow path (qualify binds the name to the "
    "alias) does not (the fast path is right)"
)
GROUP_COMMENT_BY = (
    "Not a fast/slow disagreement: sqlglot's tokenizer reads GROUP BY as one two-word "
    "keyword and does not match it across a comment, so GROUP /* ... */ BY is refused as "
    "unparsable by both paths, though DuckDB and PostgreSQL accept it"
)


def disagreement(reason: str) -> pytest.MarkDecorator:
    """A comparison known to fail: both paths ran, and what they gave differs."""
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)


# ---------------------------------------------------------------------------------------
# The two paths
# ---------------------------------------------------------------------------------------


class Validator(Protocol):
    """``validate`` with the test catalog: the SQL, the engine, and its other options."""

    def __call__(self, sql: str, engine: Engine, **options: Any) -> ValidatedQuery: ...


def fresh_known() -> KnownTables:
    """The test catalog with nothing remembered (``validate`` memoises per instance)."""
    known: KnownTables = validation.KnownTables(
        readable=KNOWN.readable, hidden=KNOWN.hidden, aliases=KNOWN.aliases
    )
    return known


def fast(sql: str, engine: Engine, **options: Any) -> ValidatedQuery:
    """Validate as production does: the fast path wherever it answers."""
    return validate(sql, fresh_known(), engine=engine, **{"cap": CAP, **options})


def _unsure(*args: Any, **kwargs: Any) -> None:
    """What ``columns_used`` and ``_spliced`` answer for a shape they do not model."""
    return None


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Validator:
    """Validate by the slow path only: qualify for the columns, the SQL regenerated."""

    def validate_slowly(sql: str, engine: Engine, **options: Any) -> ValidatedQuery:
        with monkeypatch.context() as patch:
            patch.setattr(validation, "columns_used", _unsure)
            patch.setattr(validation, "_spliced", _unsure)
            return fast(sql, engine, **options)

    return validate_slowly


@pytest.fixture
def slow_path_forbidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if validation regenerates the SQL or falls back to qualify."""

    def forbidden(name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> NoReturn:
            pytest.fail(f"the slow path ran: validate called {name}")

        return fail

    monkeypatch.setattr(validation, "_render", forbidden("_render"))
    monkeypatch.setattr(validation, "_columns_used", forbidden("_columns_used"))


@pytest.fixture
def spliced(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """What each call of ``_spliced`` answered (``None``: the SQL is regenerated)."""
    answers: list[str | None] = []
    original = validation._spliced

    def spy(*args: Any, **kwargs: Any) -> str | None:
        answer = original(*args, **kwargs)
        answers.append(answer)
        return answer

    monkeypatch.setattr(validation, "_spliced", spy)
    return answers


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SQL each call of ``_render`` (the regeneration from the tree) produced."""
    shown: list[str] = []
    original = validation._render

    def spy(*args: Any, **kwargs: Any) -> tuple[str, str]:
        answer = original(*args, **kwargs)
        shown.append(answer[0])
        return answer

    monkeypatch.setattr(validation, "_render", spy)
    return shown


Refusal = tuple[str, str | None, int | None, int | None]


def refusal(validator: Validator, sql: str, engine: Engine, **options: Any) -> Refusal:
    """How ``validator`` refuses ``sql``: message, hint, line and column."""
    with pytest.raises(QueryRejected) as refused:
        validator(sql, engine, **options)
    error = refused.value
    return error.message, error.hint, error.line, error.column


def case_options(case: Case) -> dict[str, Any]:
    """The options a corpus case is validated with (as the corpus module's ``run``)."""
    options: dict[str, Any] = {"dialect": case.dialect, "params": case.params}
    if "max_chars" in case.options:
        options["max_chars"] = int(case.options["max_chars"])
    return options


def corpus_params(
    kind: str, skip: frozenset[str], known: Mapping[tuple[str, str], str] | None = None
) -> list[Any]:
    """One pytest param per (engine, case), without the cases marked with ``skip``;
    ``known`` maps (engine, case name) to the reason of a known disagreement."""
    params = []
    for engine in ENGINES:
        for case in corpus(kind, engine):
            if skip & case.options.keys():
                continue
            reason = (known or {}).get((engine, case.name))
            marks = [disagreement(reason)] if reason else []
            params.append(pytest.param(engine, case, id=f"{engine}/{case.name}", marks=marks))
    return params


# ---------------------------------------------------------------------------------------
# Running the SQL on DuckDB
# ---------------------------------------------------------------------------------------

Result = tuple[tuple[str, ...], list[tuple[Any, ...]]] | str
"""What running a query gave: result column names and rows, or the engine's error."""


def execute(
    connection: duckdb.DuckDBPyConnection,
    query: ValidatedQuery,
    params: Mapping[str, Any] | None = None,
) -> Result:
    """Run the SQL a path produced (on DuckDB ``bind_sql`` is ``sql``)."""
    try:
        cursor = connection.execute(query.bind_sql, dict(params) if params else None)
        names = tuple(column[0] for column in cursor.description or ())
        return names, cursor.fetchall()
    except duckdb.Error as exc:
        return f"{type(exc).__name__}: {exc}"


ROWS: dict[str, list[str]] = {
    "marts.orders": [
        "(1, 10, 'paid', 12.50, '2024-01-02 10:00')",
        "(2, 10, 'open', 3.00, '2024-02-03 11:30')",
        "(3, 11, 'paid', 100.00, '2024-03-01 09:15')",
        "(4, 12, 'refunded', 0.50, '2024-03-05 17:45')",
        "(5, 11, 'it''s -- odd; /* x */', 7.25, '2024-03-06 08:00')",
    ],
    "marts.customers": [
        "(10, 'Ann', 'ann@x.io', 'NL', '2023-01-01', 'ads')",
        "(11, 'Bob', 'bob@y.io', 'DE', '2023-05-01', 'Organic')",
        "(12, 'Cé', 'ce@z.io', 'FR', '2023-06-01', NULL)",
        "(13, 'Dan', 'dan@x.io', 'NL', '2023-07-01', 'ads')",
    ],
    "marts.daily_revenue": [
        "('2024-01-02', 12.50, 1)",
        "('2024-02-03', 3.00, 1)",
        "('2024-03-01', 100.00, 1)",
    ],
    "marts.order_items": ["(1, 'A-1', 2, 6.25)", "(3, 'B-2', 1, 100.00)"],
    "staging.stg_orders": [
        "(1, 10, 'paid', 1250, '2024-01-02 10:00')",
        "(6, 13, 'open', 999, '2024-04-01 12:00')",
    ],
    "staging.stg_payments": [
        "(100, 1, 'card', 1250, '2024-01-02 10:05')",
        "(101, 3, 'bank', 10000, '2024-03-01 10:00')",
    ],
}
BULK_ROWS = 1000
"""Rows in staging.order_items: enough for a percentage of them to pass a small cap."""


def build_warehouse(with_rows: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with tables shaped like :data:`KNOWN` (as the corpus module's
    ``warehouse`` fixture builds them), empty or holding :data:`ROWS`."""
    connection = duckdb.connect(":memory:")
    create_known_tables(connection)
    if with_rows:
        for table, rows in ROWS.items():
            connection.execute(f"insert into {table} values {', '.join(rows)}")
        connection.execute(
            "insert into staging.order_items select i, 'S-' || i, 1, 100 "
            f"from range({BULK_ROWS}) as t(i)"
        )
    connection.execute("set enable_external_access = false")
    return connection


@pytest.fixture(scope="module")
def empty_warehouse() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = build_warehouse(with_rows=False)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def warehouse() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = build_warehouse(with_rows=True)
    yield connection
    connection.close()


# ---------------------------------------------------------------------------------------
# The corpora, both ways
# ---------------------------------------------------------------------------------------

LEGITIMATE = corpus_params(
    "legitimate",
    skip=frozenset({"refused"}),
)
HOSTILE = corpus_params("hostile", skip=frozenset({"bypass", "unclear"}))
LEGITIMATE_DUCKDB_RUNS = [
    pytest.param(
        case,
        id=case.name,
        marks=[disagreement(SLOW_PATH_RENAMES)] if case.name == "aggregates" else [],
    )
    for case in corpus("legitimate", "duckdb")
    if "refused" not in case.options and not case.params
]


@pytest.mark.parametrize(("engine", "case"), LEGITIMATE)
def test_legitimate_sql_gets_the_same_answer_both_ways(
    engine: Engine, case: Case, slow: Validator
) -> None:
    options = case_options(case)
    quick = fast(case.sql, engine, **options)  # raises QueryRejected if refused
    reference = slow(case.sql, engine, **options)
    assert quick.tables == reference.tables
    assert set(quick.columns) == set(reference.columns), (quick.columns, reference.columns)
    assert (quick.limit, quick.parameters) == (reference.limit, reference.parameters)


@pytest.mark.parametrize(("engine", "case"), HOSTILE)
def test_hostile_sql_is_refused_alike_both_ways(
    engine: Engine, case: Case, slow: Validator
) -> None:
    options = case_options(case)
    refused = refusal(fast, case.sql, engine, **options)
    assert refused == refusal(slow, case.sql, engine, **options)
    assert case.options["expect"] in refused[0]


@pytest.mark.parametrize("case", LEGITIMATE_DUCKDB_RUNS)
def test_legitimate_duckdb_sql_runs_alike_both_ways(
    case: Case, slow: Validator, empty_warehouse: duckdb.DuckDBPyConnection
) -> None:
    options = case_options(case)
    quick = execute(empty_warehouse, fast(case.sql, "duckdb", **options))
    reference = execute(empty_warehouse, slow(case.sql, "duckdb", **options))
    assert not isinstance(quick, str), quick
    assert not isinstance(reference, str), reference
    assert quick[0] == reference[0]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_corpus_exercises_the_fast_path(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most legitimate cases are spliced and resolved by hand: otherwise the comparisons
    above would compare the slow path with itself."""
    answers: dict[str, list[object]] = {"spliced": [], "resolved": []}
    splice, resolve = validation._spliced, columns_used  # validate's own names

    def record_splice(*args: Any, **kwargs: Any) -> str | None:
        answer = splice(*args, **kwargs)
        answers["spliced"].append(answer)
        return answer

    def record_resolve(*args: Any, **kwargs: Any) -> tuple[str, ...] | None:
        answer = resolve(*args, **kwargs)
        answers["resolved"].append(answer)
        return answer

    monkeypatch.setattr(validation, "_spliced", record_splice)
    monkeypatch.setattr(validation, "columns_used", record_resolve)
    cases = [c for c in corpus("legitimate", engine) if "refused" not in c.options]
    for case in cases:
        fast(case.sql, engine, **case_options(case))
    for step, seen in answers.items():
        answered = sum(answer is not None for answer in seen)
        assert answered >= len(cases) // 2, f"{step}: {answered} of {len(cases)} cases"


# ---------------------------------------------------------------------------------------
# Analyst queries on real rows: both paths' SQL must give the same answer
# ---------------------------------------------------------------------------------------

ROW_QUERIES = [
    pytest.param(
        'select o.order_id as id, o.status as "Status", c.name as customer '
        "from marts.orders as o join marts.customers as c on c.customer_id = o.customer_id "
        "order by id",
        {},
        id="aliases",
    ),
    pytest.param(
        "select count(*), sum(amount), min(status), max(ordered_at), avg(amount), "
        "count(distinct customer_id) from marts.orders",
        {},
        id="unaliased_aggregates",
    ),
    pytest.param(
        "select status, count(*), sum(amount) from marts.orders group by status order by status",
        {},
        id="group_by_unaliased",
    ),
    pytest.param(
        "select amount * 2, -amount, amount::integer, status || '!', order_id = 1, "
        "case when amount > 10 then 'big' else 'small' end from marts.orders order by order_id",
        {},
        id="unaliased_expressions",
    ),
    pytest.param(
        "select day, day as date, revenue as value, order_count as year, "
        'revenue as "select" from marts.daily_revenue order by day desc',
        {},
        id="keyword_named_columns",
    ),
    pytest.param(
        "SELECT Order_Id, STATUS, Amount FROM Marts.Orders WHERE Status = 'paid' ORDER BY Order_Id",
        {},
        id="mixed_case_identifiers",
    ),
    pytest.param(
        'select c."Signup Source", "Signup Source" as "Signup ""Source""", '
        'count(*) as "how many; really" from marts.customers as c '
        'group by "Signup Source" order by 1 nulls first',
        {},
        id="quoted_identifiers_with_spaces",
    ),
    pytest.param(
        "with paid as (select customer_id, sum(amount) as total from marts.orders "
        "where status = 'paid' group by customer_id), "
        "named as (select customer_id, name from marts.customers) "
        "select n.name, p.total from paid as p join named as n using (customer_id) "
        "order by n.name",
        {},
        id="ctes",
    ),
    pytest.param(
        "select customer_id, o.order_id, c.country from marts.orders o "
        "left join marts.customers c using (customer_id) order by 2",
        {},
        id="using_join",
    ),
    pytest.param(
        "select customer_id, status as label from marts.orders "
        "union select customer_id, country from marts.customers order by 1, 2",
        {},
        id="union_order_by",
    ),
    pytest.param(
        "select customer_id from marts.customers except select customer_id from marts.orders "
        "union all select customer_id from staging.stg_orders intersect "
        "select customer_id from marts.customers order by customer_id desc limit 3",
        {},
        id="set_operations_limit",
    ),
    pytest.param(
        "select order_id from marts.orders order by order_id limit 2 offset 1",
        {},
        id="limit_offset",
    ),
    pytest.param("select order_id from marts.orders order by order_id offset 3", {}, id="offset"),
    pytest.param(
        "select order_id, amount from marts.orders order by amount desc fetch first 2 rows only",
        {},
        id="fetch_first",
    ),
    pytest.param(
        "select order_id from marts.orders order by order_id", {"cap": 2}, id="cap_applies"
    ),
    pytest.param(
        "select order_id from marts.orders order by order_id limit 100 offset 1",
        {"cap": 2},
        id="cap_applies_over_offset",
    ),
    pytest.param(
        "select name from marts.customers where customer_id in (select customer_id "
        "from marts.orders where amount > (select avg(amount) from marts.orders)) order by name",
        {},
        id="nested_subqueries",
    ),
    pytest.param(
        "select s.status, s.n from (select status, count(*) as n from marts.orders "
        "group by status) as s where s.n >= 1 order by s.n desc, s.status",
        {},
        id="derived_table",
    ),
    pytest.param(
        "select o.order_id from marts.orders as o where exists (select 1 from "
        "marts.customers as c where c.customer_id = o.customer_id and c.country = 'NL') "
        "order by 1",
        {},
        id="correlated_exists",
    ),
    pytest.param(
        "select order_id, row_number() over (partition by customer_id order by ordered_at) "
        "as nth, sum(amount) over (partition by customer_id order by ordered_at rows between "
        "unbounded preceding and current row) as running, lag(status) over (order by order_id), "
        "rank() over w as r from marts.orders window w as (order by amount desc) order by order_id",
        {},
        id="window_functions",
    ),
    pytest.param(
        "select customer_id, order_id from marts.orders qualify row_number() over "
        "(partition by customer_id order by amount desc) = 1 order by 1",
        {},
        id="qualify",
    ),
    pytest.param(
        "select order_id, '--' as a, '/* x */' as b, ';' as c, 'it''s' as d, '''' as e, "
        "'\"q\"' as f from marts.orders where status <> 'a;b--c/*d*/' order by 1 limit 2",
        {},
        id="strings_with_comment_markers_and_quotes",
    ),
    pytest.param(
        "select order_id from marts.orders where status = 'it''s -- odd; /* x */' -- a comment",
        {},
        id="string_matching_a_row_with_markers",
    ),
    pytest.param(
        "from marts.orders select order_id, status where amount > 5 order by order_id",
        {},
        id="from_first",
    ),
    pytest.param(
        "select date_trunc('month', ordered_at) as month, count(*) from marts.orders "
        "group by 1 order by 1",
        {},
        id="date_trunc",
    ),
    pytest.param(
        "select order_id, extract(year from ordered_at) as y, ordered_at + interval 1 day "
        "as next, ordered_at::date as d from marts.orders order by 1",
        {},
        id="extract_and_interval",
    ),
    pytest.param(
        "select distinct country from marts.customers where name between 'A' and 'D' "
        "and email like '%@x.io' and \"Signup Source\" is not null order by country",
        {},
        id="distinct_between_like",
    ),
    pytest.param(
        "select customer_id, count(*) as n from marts.orders group by customer_id "
        "having count(*) > 1 order by n desc, customer_id",
        {},
        id="having",
    ),
    pytest.param(
        "select s.order_id, p.method, s.amount_cents / 100.0 as paid from staging.stg_orders s "
        "join staging.stg_payments p on p.order_id = s.order_id order by 1",
        {},
        id="staging",
    ),
    pytest.param(
        "select order_id from marts.orders order by order_id limit 40%",
        {},
        id="percent_limit",
    ),
    pytest.param(
        "select order_id::varchar, string_agg(status, ',') from marts.orders "
        "group by order_id order by order_id",
        {},
        id="unaliased_cast_and_string_agg",
        marks=disagreement(SLOW_PATH_RENAMES),
    ),
]


@pytest.mark.parametrize(("sql", "options"), ROW_QUERIES)
def test_both_paths_return_the_same_rows(
    sql: str,
    options: dict[str, Any],
    slow: Validator,
    spliced: list[str | None],
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    quick = fast(sql, "duckdb", **options)
    assert spliced and spliced[-1] == quick.sql, "the fast path was not taken"
    assert outer_limit(parse_output(quick)) <= quick.limit + 1
    reference = slow(sql, "duckdb", **options)
    quick_result = execute(warehouse, quick)
    assert quick_result == execute(warehouse, reference), (quick.sql, reference.sql)
    assert not isinstance(quick_result, str), quick_result
    assert quick_result[1], "a comparison over no rows proves little"
    assert len(quick_result[1]) <= quick.limit + 1


def test_a_percent_limit_is_kept_under_the_cap(
    slow: Validator, warehouse: duckdb.DuckDBPyConnection
) -> None:
    sql = "select order_id from staging.order_items limit 3%"
    reference = execute(warehouse, slow(sql, "duckdb", cap=2))
    assert not isinstance(reference, str) and len(reference[1]) <= 3, reference
    quick = execute(warehouse, fast(sql, "duckdb", cap=2))
    assert not isinstance(quick, str), quick
    assert len(quick[1]) <= 3, f"{len(quick[1])} of {BULK_ROWS} rows with a cap of 2"


# ---------------------------------------------------------------------------------------
# Columns read: the resolver against qualify, beyond the corpus
# ---------------------------------------------------------------------------------------

COLUMN_QUERIES = [
    pytest.param(
        "select customer_id, o.status, c.email from marts.orders o "
        "join marts.customers c using (customer_id)",
        id="using",
    ),
    pytest.param(
        "with t as (select customer_id as who, amount from marts.orders) "
        "select who, sum(amount) from t group by who",
        id="cte_alias",
    ),
    pytest.param(
        "select s.n from (select status, count(*) as n from marts.orders group by status) as s",
        id="derived_table",
    ),
    pytest.param(
        "select o.*, c.name from marts.orders o join marts.customers c "
        "on c.customer_id = o.customer_id",
        id="table_star",
    ),
    pytest.param(
        "select * from staging.stg_orders join staging.stg_payments using (order_id)",
        id="star_using",
    ),
    pytest.param("select status as s, count(*) from marts.orders group by s", id="group_by_alias"),
    pytest.param("select amount as a from marts.orders order by a", id="order_by_alias"),
    pytest.param(
        "select order_id, sum(amount) over (partition by customer_id order by ordered_at) "
        "from marts.orders",
        id="window",
    ),
    pytest.param(
        "select order_id from marts.orders o where exists (select 1 from marts.customers c "
        "where customer_id = o.customer_id)",
        id="exists",
    ),
    pytest.param(
        "select order_id from marts.orders union select order_id from staging.stg_orders",
        id="union",
    ),
    pytest.param(
        "select -order_id as amount, order_id from marts.orders order by amount",
        id="order_by_alias_shadowing_a_column",
    ),
    pytest.param(
        "select -order_id as amount, order_id from marts.orders order by amount + 0",
        id="order_by_expression_over_a_shadowed_column",
        marks=disagreement(ORDER_BY_EXPRESSION),
    ),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sql", COLUMN_QUERIES)
def test_both_paths_report_the_same_columns(engine: Engine, sql: str, slow: Validator) -> None:
    quick = fast(sql, engine)
    reference = slow(sql, engine)
    assert quick.tables == reference.tables
    assert set(quick.columns) == set(reference.columns), (quick.columns, reference.columns)


def test_order_by_a_shadowing_alias_sorts_by_the_alias_on_duckdb(
    slow: Validator, warehouse: duckdb.DuckDBPyConnection
) -> None:
    """The engine behaviour the two ORDER BY disagreements above are judged by: a bare
    name sorts by the output alias, an expression over it by the source column."""
    bare = execute(
        warehouse,
        slow("select -order_id as amount, order_id from marts.orders order by amount", "duckdb"),
    )
    expression = execute(
        warehouse,
        slow(
            "select -order_id as amount, order_id from marts.orders order by amount + 0", "duckdb"
        ),
    )
    assert not isinstance(bare, str) and not isinstance(expression, str)
    assert [row[1] for row in bare[1]] == [5, 4, 3, 2, 1]  # by -order_id
    assert [row[1] for row in expression[1]] == [4, 2, 5, 1, 3]  # by amount


# ---------------------------------------------------------------------------------------
# The fast path is really taken
# ---------------------------------------------------------------------------------------

PLAIN = [
    "select order_id, status from marts.orders",
    "select * from marts.orders where amount > 10 order by ordered_at desc limit 20",
    "select status, count(*) as n, sum(amount) from marts.orders group by status order by n desc",
    "select o.order_id, c.email from orders as o join customers as c using (customer_id)",
    "select c.name, count(o.order_id) as orders from marts.customers c "
    "left join marts.orders o on o.customer_id = c.customer_id group by c.name",
    "select order_id from marts.orders union all select order_id from staging.stg_orders",
    "select order_id, row_number() over (partition by customer_id order by amount) as n "
    "from marts.orders",
    "select day, revenue from marts.daily_revenue where day >= date '2024-01-01' order by day",
    'select "Signup Source", count(*) from marts.customers group by 1',
    "select order_id from marts.orders where status in ('paid', 'shipped') and amount "
    "between 1 and 100 offset 5",
    "select order_id from marts.orders order by order_id fetch first 10 rows only",
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sql", PLAIN)
@pytest.mark.usefixtures("slow_path_forbidden")
def test_plain_queries_take_the_fast_path(engine: Engine, sql: str) -> None:
    query = fast(sql, engine)
    assert query.tables and query.columns
    assert query.canonical == query.sql == query.bind_sql
    assert outer_limit(parse_output(query)) <= CAP + 1


# ---------------------------------------------------------------------------------------
# The canonical form (the cache key) and idempotence
# ---------------------------------------------------------------------------------------

VARIANTS = [
    pytest.param(
        (
            "select order_id, status from marts.orders where amount > 10 order by order_id",
            "SELECT order_id ,  status\nFROM   marts.orders\n"
            "\tWHERE amount>10   ORDER  BY order_id",
            "select /* ids */ order_id, status -- and the status\nfrom marts.orders "
            "where amount > 10 order by order_id;",
            "SeLeCt order_id, status FrOm MARTS.ORDERS wHeRe amount > 10 OrDeR bY order_id",
        ),
        id="select",
    ),
    pytest.param(
        (
            "with c as (select customer_id, count(*) as n from marts.orders group by 1) "
            "select c.n, x.email from c join marts.customers x using (customer_id)",
            "WITH c AS (\n  SELECT customer_id, COUNT(*) AS n\n  FROM marts.orders\n  GROUP BY 1\n"
            ")\nSELECT c.n, x.email\nFROM c\nJOIN marts.customers x USING (customer_id)",
            "with c as (select customer_id, count(*) as n from marts.orders group\n  by 1) "
            "/* joined */ select c.n, x.email from c join customers x using(customer_id)",
        ),
        id="cte_using",
    ),
    pytest.param(
        (
            "select order_id from marts.orders where status = '--not /* a */ comment;'",
            "-- leading\nselect order_id from marts.orders where status='--not /* a */ comment;'"
            " -- trailing",
        ),
        id="comment_markers_in_a_string",
    ),
]
VAR_WORD_VARIANTS: dict[str, tuple[str, str]] = {
    "extract": (
        "select extract(year from ordered_at) as y from marts.orders",
        "SELECT EXTRACT(YEAR FROM ordered_at) AS y FROM marts.orders",
    ),
    "nulls_last": (
        "select order_id from marts.orders order by amount desc nulls last",
        "SELECT order_id FROM marts.orders ORDER BY amount DESC NULLS LAST",
    ),
    "interval": (
        "select ordered_at + interval 1 day as d from marts.orders",
        "SELECT ordered_at + INTERVAL 1 DAY AS d FROM marts.orders",
    ),
    "using_sample": (  # DuckDB only
        "select * from marts.orders using sample 10 rows",
        "SELECT * FROM marts.orders USING SAMPLE 10 ROWS",
    ),
}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("variants", VARIANTS)
@pytest.mark.usefixtures("slow_path_forbidden")
def test_variants_of_one_query_share_one_canonical_form(
    engine: Engine, variants: tuple[str, ...]
) -> None:
    forms = {fast(sql, engine).canonical for sql in variants}
    assert len(forms) == 1, forms


@pytest.mark.parametrize(
    ("engine", "variants"),
    [
        pytest.param(
            engine,
            variants,
            id=f"{engine}/{name}",
        )
        for engine in ENGINES
        for name, variants in VAR_WORD_VARIANTS.items()
        if engine == "duckdb" or name != "using_sample"
    ],
)
def test_keyword_case_of_var_words_does_not_change_the_canonical_form(
    engine: Engine, variants: tuple[str, str], slow: Validator, spliced: list[str | None]
) -> None:
    assert len({slow(sql, engine).canonical for sql in variants}) == 1  # the slow path's
    forms = {fast(sql, engine).canonical for sql in variants}
    assert all(spliced), "the fast path was not taken"
    assert len(forms) == 1, forms


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.usefixtures("slow_path_forbidden")
def test_different_queries_get_different_canonical_forms(engine: Engine) -> None:
    base = "select order_id as id from marts.orders where status = "
    literals = [base + "'a'", base + "'A'", base + "'a '", base + "'a'''", base + "'a--'"]
    assert len({fast(sql, engine).canonical for sql in literals}) == len(literals)

    limited = [base + "'a'", base + "'a' limit 5", base + "'a' limit 6", base + "'a' offset 1"]
    assert len({fast(sql, engine).canonical for sql in limited}) == len(limited)

    # DuckDB keeps a name's spelling as the result column name; PostgreSQL folds it.
    lower = fast("select order_id from marts.orders", engine).canonical
    upper = fast("select ORDER_ID from marts.orders", engine).canonical
    assert (lower == upper) == (engine == "postgres")
    quoted = {
        fast(f'select order_id as "{n}" from marts.orders', engine).canonical
        for n in ("Id", "id", "ID")
    }
    assert len(quoted) == 3


IDEMPOTENT = (
    [
        pytest.param(engine, case.sql, {}, id=f"{engine}/corpus/{case.name}")
        for engine in ENGINES
        for case in corpus("legitimate", engine)
        if not (case.options.keys() & {"refused", "params", "dialect"})
    ]
    + [
        pytest.param(engine, sql, {}, id=f"{engine}/plain/{index}")
        for engine in ENGINES
        for index, sql in enumerate(PLAIN)
    ]
    + [pytest.param("duckdb", *query.values, id=f"duckdb/rows/{query.id}") for query in ROW_QUERIES]
)


@pytest.mark.parametrize(("engine", "sql", "options"), IDEMPOTENT)
def test_the_fast_paths_sql_validates_to_itself(
    engine: Engine, sql: str, options: dict[str, Any], spliced: list[str | None]
) -> None:
    first = fast(sql, engine, **options)
    again = fast(first.sql, engine, **options)
    assert again.sql == first.sql
    assert (again.canonical, again.tables, again.limit) == (
        first.canonical,
        first.tables,
        first.limit,
    )
    if spliced[0] is not None:  # spliced once, spliced again
        assert spliced[-1] == again.sql


# ---------------------------------------------------------------------------------------
# SQL the splicer does not trust: regenerated, and still right
# ---------------------------------------------------------------------------------------

UNSPLICED: dict[str, tuple[Engine, str, dict[str, Any], Any]] = {
    # name: (engine, SQL, options, the rows DuckDB returns / the string values PostgreSQL reads)
    "duckdb/backslash_in_string": (
        "duckdb",
        r"select order_id, 'a\b' as s from marts.orders where status <> 'x\y' "
        "order by 1 limit 2",
        {},
        [(1, "a\\b"), (2, "a\\b")],
    ),
    "duckdb/dollar_quoted_string": (
        "duckdb",
        "select $$it's; -- not a comment$$ as s",
        {},
        [("it's; -- not a comment",)],
    ),
    "duckdb/leading_dot_decimal": (  # read as "." and "5": written apart, ". 5" fails
        "duckdb",
        "select order_id from marts.orders where amount > .5 order by order_id limit 2",
        {},
        [(1,), (2,)],
    ),
    "duckdb/adjacent_string_literals": (  # one string across a newline: 'paid'
        "duckdb",
        "select order_id from marts.orders where status = 'pa'\n'id' order by order_id",
        {},
        [(1,), (3,)],
    ),
    "duckdb/strings_whose_text_looks_like_a_word": (  # a string, never the name paid
        "duckdb",
        "select $$paid$$ as a, e'paid' as b",
        {},
        [("paid", "paid")],
    ),
    "duckdb/params": (
        "duckdb",
        "select order_id from marts.orders where status = $s order by 1",
        {"params": {"s": "paid"}},
        [(1,), (3,)],
    ),
    "duckdb/postgres_dialect": (
        "duckdb",
        "select order_id::text as id, status ilike 'PAID' as p from marts.orders "
        "where ordered_at < now() - interval '1 day' order by 1 limit 3",
        {"dialect": "postgres"},
        [("1", True), ("2", False), ("3", True)],
    ),
    "duckdb/json_arrow": (
        "duckdb",
        "select '{\"a\": {\"b\": 7}}'::json ->> 'a' as a, order_id from marts.orders "
        "order by 2 limit 1",
        {},
        [('{"b":7}', 1)],
    ),
    "postgres/backslash_in_string": (
        "postgres",
        r"select order_id, 'a\b' as s from marts.orders where status <> 'x\y'",
        {},
        ["a\\b", "x\\y"],
    ),
    "postgres/e_string": (
        "postgres",
        r"select order_id, E'it\'s; \\fine' as note from marts.orders",
        {},
        ["it's; \\fine"],
    ),
    "postgres/dollar_quoted_strings": (
        "postgres",
        "select order_id, $$it's; --$$ as s, $t$a $$ b$t$ as t from marts.orders",
        {},
        ["it's; --", "a $$ b"],
    ),
    "postgres/strings_whose_text_looks_like_a_word": (  # strings, never the name paid
        "postgres",
        "select E'paid' as a, $$paid$$ as b",
        {},
        ["paid", "paid"],
    ),
    "postgres/params": (
        "postgres",
        "select order_id from marts.orders where status = :s",
        {"params": {"s": "paid"}},
        [],
    ),
    "postgres/duckdb_dialect": (
        "postgres",
        "select order_id, list_value(1, 2) as pair from marts.orders where status = 'x'",
        {"dialect": "duckdb"},
        ["x"],
    ),
    "postgres/json_arrow": (
        "postgres",
        "select doc ->> 'k' as k from (select jsonb_build_object('k', status) as doc "
        "from marts.orders) as d",
        {},
        ["k"],  # the key after ->> is read as a JSON path, not a string
    ),
}


def unspliced(engine: Engine | None = None) -> list[Any]:
    """The UNSPLICED cases as pytest params: all of them, or one engine's without it."""
    return [
        pytest.param(*(case if engine is None else case[1:]), id=name)
        for name, case in UNSPLICED.items()
        if engine is None or case[0] == engine
    ]


@pytest.mark.parametrize(("engine", "sql", "options", "expected"), unspliced())
def test_sql_the_splicer_does_not_trust_is_regenerated(
    engine: Engine,
    sql: str,
    options: dict[str, Any],
    expected: Any,
    slow: Validator,
    spliced: list[str | None],
    rendered: list[str],
) -> None:
    quick = fast(sql, engine, **options)
    assert not any(spliced), "the splicer wrote this SQL"
    assert rendered == [quick.sql], "the SQL was not regenerated"
    reference = slow(sql, engine, **options)
    same = ("sql", "canonical", "bind_sql", "tables", "limit", "parameters")
    assert {k: getattr(quick, k) for k in same} == {k: getattr(reference, k) for k in same}
    assert set(quick.columns) == set(reference.columns)


@pytest.mark.parametrize(("sql", "options", "expected"), unspliced("duckdb"))
def test_regenerated_duckdb_sql_gives_the_right_rows(
    sql: str,
    options: dict[str, Any],
    expected: list[tuple[Any, ...]],
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    query = fast(sql, "duckdb", **options)
    result = execute(warehouse, query, options.get("params"))
    assert not isinstance(result, str), result
    assert result[1] == expected


@pytest.mark.parametrize(("sql", "options", "expected"), unspliced("postgres"))
def test_regenerated_postgres_sql_keeps_its_string_values(
    sql: str, options: dict[str, Any], expected: list[str]
) -> None:
    """No server here: the string values PostgreSQL would read from the regenerated SQL."""
    query = fast(sql, "postgres", **options)
    tree = sqlglot.parse_one(query.sql, read="postgres")
    strings = [
        node.this  # sqlglot reads E'…' back as a ByteString, other strings as literals
        for node in tree.find_all(exp.Literal, exp.ByteString)
        if not isinstance(node, exp.Literal) or node.is_string
    ]
    assert strings == expected
    if options.get("params"):
        assert query.parameters == tuple(sorted(options["params"]))
        assert all(f"%({name})s" in query.bind_sql for name in query.parameters)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.usefixtures("slow_path_forbidden")
def test_whitespace_inside_group_by_is_spliced(engine: Engine) -> None:
    spaced = fast("select status, count(*) from marts.orders group \n\t by status", engine)
    assert "GROUP BY status" in spaced.sql
    assert (
        spaced.canonical
        == fast("select status, count(*) from marts.orders group by status", engine).canonical
    )


@pytest.mark.xfail(strict=True, raises=QueryRejected, reason=GROUP_COMMENT_BY)
@pytest.mark.parametrize("engine", ENGINES)
def test_a_comment_between_group_and_by_is_regenerated(
    engine: Engine,
    slow: Validator,
    spliced: list[str | None],
    rendered: list[str],
    warehouse: duckdb.DuckDBPyConnection,
) -> None:
    sql = "select status, count(*) from marts.orders group /* by what */ by status order by 1"
    quick = fast(sql, engine)
    assert not any(spliced) and rendered == [quick.sql]
    assert quick.sql == slow(sql, engine).sql
    if engine == "duckdb":
        result = execute(warehouse, quick)
        assert not isinstance(result, str), result
        assert [row[0] for row in result[1]] == sorted(
            ["open", "paid", "refunded", "it's -- odd; /* x */"]
        )


@pytest.mark.parametrize(
    ("engine", "literal"),
    [
        ("postgres", "E'paid'"),
        ("postgres", "N'paid'"),
        ("postgres", "U&'paid'"),
        ("postgres", "$$paid$$"),
        ("postgres", "$q$paid$q$"),
        ("duckdb", "e'paid'"),
        ("duckdb", "$$paid$$"),
    ],
)
def test_a_string_whose_text_looks_like_a_word_stays_a_string(engine: Engine, literal: str) -> None:
    """The splicer writes words back as words: a string of another kind than '…' whose
    text is a plain word must never come out as that word (a column name)."""
    query = fast(f"select {literal} as s from marts.orders", engine)
    tree = sqlglot.parse_one(query.sql, read=engine)
    assert not [c for c in tree.find_all(exp.Column) if c.name.lower() == "paid"], query.sql
    assert "paid" in query.sql.lower(), query.sql


@pytest.mark.parametrize("engine", ENGINES)
def test_a_quoted_call_is_written_by_sqlglot(engine: Engine) -> None:
    """A quoted call is looked up by that exact name ("coalesce"(x) in PostgreSQL is a
    user function, not COALESCE): sqlglot writes it, in the engine's own name."""
    query = fast('select "LEN"(status) as n from marts.orders', engine)
    assert "LENGTH(" in query.sql.upper() and '"LEN"' not in query.sql, query.sql
    again = fast("select \"coalesce\"(status, 'x') as c from marts.orders", engine)
    assert '"coalesce"' not in again.sql and "COALESCE(" in again.sql, again.sql


@pytest.mark.parametrize(
    ("engine", "sql", "absent", "present"),
    [
        # Names only sqlglot knows: the engine would look them up as user functions.
        ("postgres", "select group_concat(status) from marts.orders", "GROUP_CONCAT", "STRING_AGG"),
        ("postgres", "select if(amount > 1, 1, 2) as x from marts.orders", "IF(", "CASE WHEN"),
        ("duckdb", "select explode([order_id]) as x from marts.orders", "EXPLODE", "UNNEST"),
        ("duckdb", "select day_of_week(ordered_at) as d from marts.orders", "DAY_OF_WEEK", "("),
        # Syntax only sqlglot reads: the engine would refuse it.
        ("duckdb", "select 7 div 2 as x from marts.orders", " DIV ", "//"),
        ("duckdb", "select status rlike 'p' as x from marts.orders", "RLIKE", "REGEXP"),
        ("duckdb", "select order_id from marts.orders limit 2, 5", "LIMIT 2,", "OFFSET"),
        (
            "duckdb",
            "select o.order_id from marts.orders o left semi join marts.customers c "
            "using (customer_id)",
            "LEFT SEMI",
            "SEMI JOIN",
        ),
        (
            "postgres",
            "select order_id from marts.orders where order_id in "
            "(from marts.orders select order_id)",
            "(FROM",
            "(SELECT",
        ),
        ("postgres", "select array[1, 2][1] as x from marts.orders", "][", "(ARRAY[1, 2])[1]"),
        (
            "duckdb",
            "select order_id from marts.orders limit 5 union all select order_id from marts.orders",
            "SELECT ORDER_ID FROM MARTS.ORDERS LIMIT 5 UNION",
            "LIMIT 5) UNION",
        ),
    ],
)
def test_what_only_sqlglot_reads_is_written_in_the_engines_own_terms(
    engine: Engine, sql: str, absent: str, present: str
) -> None:
    query = fast(sql, engine)
    assert absent not in query.sql.upper() and present in query.sql.upper(), query.sql


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "sql",
    [
        "select count(*) from marts.orders o join marts.customers c using (nope)",
        "select order_id from marts.orders order by 2",
        "select status, count(*) from marts.orders group by 3",
        "select count(*) as n from marts.orders group by n",
    ],
)
def test_what_the_slow_path_refuses_the_fast_path_refuses(
    engine: Engine, sql: str, slow: Validator
) -> None:
    with pytest.raises(QueryRejected) as refused:
        slow(sql, engine)
    with pytest.raises(QueryRejected) as also:
        fast(sql, engine)
    assert also.value.message == refused.value.message


@pytest.mark.parametrize(
    ("engine", "sql", "read", "not_read"),
    [
        (  # a USING join reads its key from both sides, even with no other column
            "postgres",
            "select count(*) from marts.orders o join marts.customers c using (customer_id)",
            {"marts.orders.customer_id", "marts.customers.customer_id"},
            set(),
        ),
        (  # ORDER BY inside a window reads the column, not the output alias
            "duckdb",
            "select -order_id as amount from marts.orders "
            "order by row_number() over (order by amount)",
            {"marts.orders.order_id", "marts.orders.amount"},
            set(),
        ),
        (  # a comprehension's variable is no column
            "duckdb",
            "select [amount for amount in [1, 2]] as l from marts.orders",
            set(),
            {"marts.orders.amount"},
        ),
        (  # the USING key of orders and customers, not stg_orders' column of that name
            "duckdb",
            "select customer_id from marts.orders o join marts.customers c using (customer_id) "
            "join staging.stg_orders s on s.order_id = o.order_id",
            {"marts.orders.customer_id", "marts.customers.customer_id"},
            {"staging.stg_orders.customer_id"},
        ),
    ],
)
def test_the_columns_a_query_reads_are_the_ones_reported(
    engine: Engine, sql: str, read: set[str], not_read: set[str]
) -> None:
    columns = set(fast(sql, engine).columns)
    assert read <= columns and not (not_read & columns), columns


@pytest.mark.parametrize("engine", ENGINES)
def test_a_schema_named_like_a_reserved_word_is_written_quoted(engine: Engine) -> None:
    known = validation.KnownTables(
        (*KNOWN.readable, validation.Relation("group", "order", ("a",), ("BIGINT",))), KNOWN.hidden
    )
    query = validate('select a from "group"."order"', known, engine=engine)
    assert '"group"."order"' in query.sql, query.sql
