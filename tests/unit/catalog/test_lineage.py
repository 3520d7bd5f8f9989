"""Column lineage (catalog.lineage) against SQL fixture files, input and expected side by side.

Each ``tests/fixtures/lineage/<dialect>/<case>.sql`` is traced against
``tests/fixtures/lineage/schema.yml`` and compared, exactly, with ``<case>.expected``
(format in ``tests/fixtures/lineage/README.md``). The expectations are written from
the SQL's meaning; a case the engine gets wrong is listed in ``ENGINE_BUGS`` and runs
as a strict xfail, so it turns into a failure the day the engine is fixed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from sqlglot.schema import MappingSchema

from catalog.lineage import (
    FILTER,
    KINDS,
    ColumnEdge,
    QueryLineage,
    Tables,
    fingerprint,
    make_schema,
    query_lineage,
)

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "lineage"
DIALECTS = ("duckdb", "postgres")


ENGINE_BUGS: dict[str, str] = {}
"""``dialect/case`` → why the engine's answer is wrong (the case runs as a strict xfail)."""

_EDGE = re.compile(
    r"^(?P<column>\S+) <- (?P<upstream>\S+)\.(?P<upstream_column>[^.\s]+) (?P<kind>\w+)$"
)
_NOTE = re.compile(r"^! (?P<column>[^:]+): (?P<reason>.+)$")


@dataclass
class Expected:
    """What one ``.expected`` file says the engine must answer."""

    columns: list[str] | None = None
    edges: set[ColumnEdge] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)
    """Unresolved column (``*``: the whole query) → a substring of the reason."""


def parse_expected(path: Path) -> Expected:
    """Read an ``.expected`` file; any line it cannot read is an error, never skipped."""
    expected = Expected()
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        where = f"{path.name}:{number}"
        if not line:
            continue
        if line.startswith("columns:"):
            listed = line.removeprefix("columns:").strip()
            expected.columns = [c.strip() for c in listed.split(",")] if listed else []
        elif note := _NOTE.match(line):
            column = note["column"].strip()
            assert column not in expected.notes, f"{where}: second note for {column!r}"
            expected.notes[column] = note["reason"].strip()
        elif edge := _EDGE.match(line):
            kind = edge["kind"]
            assert kind in KINDS, f"{where}: unknown kind {kind!r}"
            column = None if edge["column"] == "*" else edge["column"]
            assert (column is None) == (kind == FILTER), f"{where}: only filters feed '*'"
            parsed = ColumnEdge(column, edge["upstream"], edge["upstream_column"], kind)
            assert parsed not in expected.edges, f"{where}: duplicate edge"
            expected.edges.add(parsed)
        else:
            raise AssertionError(f"{where}: cannot read {raw!r}")
    return expected


def show(edges: set[ColumnEdge]) -> list[str]:
    """Edges in the fixture files' own notation, for readable assertion diffs."""
    return sorted(f"{e.column or '*'} <- {e.upstream}.{e.upstream_column} {e.kind}" for e in edges)


@cache
def fixture_tables() -> Tables:
    tables: Tables = yaml.safe_load((FIXTURES / "schema.yml").read_text())
    return tables


@cache
def fixture_schema(dialect: str) -> MappingSchema:
    return make_schema(fixture_tables(), dialect)


def fixture_files() -> list[tuple[str, Path]]:
    return [(d, sql) for d in DIALECTS for sql in sorted((FIXTURES / d).glob("*.sql"))]


def case_id(dialect: str, sql: Path) -> str:
    return f"{dialect}/{sql.stem}"


def cases() -> list[object]:
    params: list[object] = []
    for dialect, sql in fixture_files():
        bug = ENGINE_BUGS.get(case_id(dialect, sql))
        marks = [pytest.mark.xfail(strict=True, reason=bug)] if bug else []
        params.append(pytest.param(dialect, sql, id=case_id(dialect, sql), marks=marks))
    return params


@pytest.mark.parametrize(("dialect", "sql_path"), cases())
def test_fixture(dialect: str, sql_path: Path) -> None:
    expected_path = sql_path.with_suffix(".expected")
    assert expected_path.is_file(), f"{sql_path.name} has no {expected_path.name} beside it"
    expected = parse_expected(expected_path)

    result = query_lineage(sql_path.read_text(), fixture_schema(dialect), dialect)

    if expected.columns is not None:
        assert result.columns == expected.columns
    assert show(set(result.edges)) == show(expected.edges)
    assert len(result.edges) == len(set(result.edges)), "an edge is listed twice"
    assert sorted(result.unresolved) == sorted(expected.notes), result.unresolved
    for column, reason in expected.notes.items():
        assert reason.lower() in result.unresolved[column].lower(), (column, result.unresolved)


@pytest.mark.parametrize(
    ("dialect", "sql_path"), fixture_files(), ids=[case_id(*f) for f in fixture_files()]
)
def test_fixture_result_is_well_formed(dialect: str, sql_path: Path) -> None:
    """Also for the cases the engine gets wrong: no exception, and a result that holds together."""
    result = query_lineage(sql_path.read_text(), fixture_schema(dialect), dialect)

    for edge in result.edges:
        assert edge.kind in KINDS
        assert (edge.column is None) == (edge.kind == FILTER), edge
        assert edge.column is None or edge.column in result.columns, edge
    for column, reason in result.unresolved.items():
        assert column == "*" or column in result.columns, (column, reason)
        assert reason.strip(), column


def test_every_fixture_is_collected_and_every_known_bug_names_one() -> None:
    sql = {case_id(d, p) for d, p in fixture_files()}
    expected = {case_id(d, p) for d in DIALECTS for p in (FIXTURES / d).glob("*.expected")}
    assert sql == expected, "every .sql needs its .expected and the other way round"
    assert set(ENGINE_BUGS) <= sql, "ENGINE_BUGS names a case that does not exist"
    assert len(sql) >= 40


# ---------------------------------------------------------------- direct tests

JOINED = """
select
    o.id as order_id,
    p.amount,
    p.amount * 2 as double_amount,
    coalesce(p.method, o.status) as how
from "warehouse"."raw_shop"."orders" as o
left join "warehouse"."raw_shop"."payments" as p on p.order_id = o.id
"""


def test_upstream_of_groups_one_columns_direct_upstream_by_dataset() -> None:
    result = query_lineage(JOINED, fixture_schema("duckdb"), "duckdb")

    assert result.upstream_of("order_id") == {"raw_shop.orders": {"id"}}
    assert result.upstream_of("how") == {
        "raw_shop.payments": {"method"},
        "raw_shop.orders": {"status"},
    }
    # The join's filter edges (p.order_id, o.id) shape every column but are no column's upstream.
    assert result.upstream_of("double_amount") == {"raw_shop.payments": {"amount"}}
    assert result.upstream_of("no_such_column") == {}


def test_upstream_of_on_a_hand_built_result() -> None:
    result = QueryLineage(
        columns=["a"],
        edges=[
            ColumnEdge("a", "s.t", "x", "copy"),
            ColumnEdge("a", "s.t", "x", "transform"),
            ColumnEdge("a", "s.u", "y", "aggregate"),
            ColumnEdge(None, "s.t", "z", "filter"),
        ],
    )
    assert result.upstream_of("a") == {"s.t": {"x"}, "s.u": {"y"}}


def test_fingerprint_changes_with_the_sql_or_an_upstream_schema_and_only_then() -> None:
    orders = dict(fixture_tables()["raw_shop.orders"])
    payments = dict(fixture_tables()["raw_shop.payments"])
    upstream = [("raw_shop.orders", orders), ("raw_shop.payments", payments)]
    base = fingerprint(JOINED, upstream)

    # The same inputs, rebuilt and listed in another order: the same key.
    assert fingerprint(JOINED, list(reversed(upstream))) == base
    assert fingerprint(JOINED, [(n, dict(c)) for n, c in upstream]) == base

    # The SQL changes.
    assert fingerprint(JOINED.replace("* 2", "* 3"), upstream) != base
    # An upstream table gains a column, loses one, or a column changes type.
    added = [("raw_shop.orders", {**orders, "discount_code": "varchar"}), upstream[1]]
    assert fingerprint(JOINED, added) != base
    removed = [("raw_shop.orders", {k: v for k, v in orders.items() if k != "status"}), upstream[1]]
    assert fingerprint(JOINED, removed) != base
    retyped = [("raw_shop.orders", {**orders, "status": "integer"}), upstream[1]]
    assert fingerprint(JOINED, retyped) != base
    # The query reads one table more.
    more = [*upstream, ("raw_shop.customers", dict(fixture_tables()["raw_shop.customers"]))]
    assert fingerprint(JOINED, more) != base
    # A column moves from one table to the other: the same names and types overall.
    moved = [
        ("raw_shop.orders", {**orders, "method": "varchar"}),
        ("raw_shop.payments", {k: v for k, v in payments.items() if k != "method"}),
    ]
    assert fingerprint(JOINED, moved) != base


def test_duckdb_schema_is_case_insensitive() -> None:
    schema = make_schema(
        {"RAW_SHOP.Orders": {"ID": "integer", "Status": "varchar", "ordered_at": "timestamp"}},
        "duckdb",
    )
    sql = 'select id as order_id, STATUS, "Ordered_At" from "warehouse"."raw_shop"."orders"'

    result = query_lineage(sql, schema, "duckdb")

    assert result.unresolved == {}
    # DuckDB folds every identifier, quoted or not; how the output is spelled is not
    # the point, that every column resolves to the schema's (upper-case) column is.
    assert {
        ((e.column or "").lower(), e.upstream, e.upstream_column, e.kind) for e in result.edges
    } == {
        ("order_id", "raw_shop.orders", "id", "rename"),
        ("status", "raw_shop.orders", "status", "copy"),
        ("ordered_at", "raw_shop.orders", "ordered_at", "copy"),
    }


def test_duckdb_select_star_over_an_upper_case_schema_expands() -> None:
    schema = make_schema({"raw_shop.orders": {"ID": "integer", "Status": "varchar"}}, "duckdb")

    result = query_lineage('select * from "warehouse"."raw_shop"."orders"', schema, "duckdb")

    assert result.unresolved == {}
    assert {(e.upstream, e.upstream_column, e.kind) for e in result.edges} == {
        ("raw_shop.orders", "id", "copy"),
        ("raw_shop.orders", "status", "copy"),
    }


def test_postgres_schema_keeps_case() -> None:
    schema = make_schema({"raw_shop.orders": {"id": "integer", "Status": "varchar"}}, "postgres")
    quoted = 'select "Status" from "headwater"."raw_shop"."orders"'
    folded = 'select o.id, status from "headwater"."raw_shop"."orders" as o'

    resolved = query_lineage(quoted, schema, "postgres")
    assert resolved.unresolved == {}
    assert show(set(resolved.edges)) == ["Status <- raw_shop.orders.Status copy"]

    # Unquoted, status folds to lower case: PostgreSQL has no such column.
    unresolved = query_lineage(folded, schema, "postgres")
    assert show(set(unresolved.edges)) == ["id <- raw_shop.orders.id copy"]
    assert list(unresolved.unresolved) == ["status"]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "",
        "   ",
        "insert into raw_shop.orders (id) values (1)",
        "with x as (select 1) ",
        "select * from",
    ],
    ids=["empty", "blank", "insert", "with-only", "from-nothing"],
)
def test_never_raises_and_always_explains(dialect: str, sql: str) -> None:
    result = query_lineage(sql, fixture_schema(dialect), dialect)

    assert result.edges == []
    assert set(result.unresolved) == {"*"} and result.unresolved["*"]


def test_a_query_too_deep_for_the_tracer_is_a_note_not_a_crash() -> None:
    schema = make_schema({"raw.t": {"a": "int"}}, "duckdb")
    sql = " union all ".join("select a from raw.t" for _ in range(600))
    lineage = query_lineage(sql, schema, "duckdb")
    assert lineage.edges == []
    assert lineage.unresolved["*"].startswith("cannot trace: RecursionError")
