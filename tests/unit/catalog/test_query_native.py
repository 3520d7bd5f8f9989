"""The validator's compiled build (headwater/native.py): built by ``make install`` where a C
compiler is, and answering exactly as its source does."""

from __future__ import annotations

import dataclasses
import shutil
from typing import Any

import pytest

import catalog.queries
import catalog.queries.validate
from benchmarks.queries import QUERIES
from benchmarks.queries import known_tables as benchmark_tables
from catalog.queries.errors import QueryRejected
from catalog.queries.policy import Engine
from headwater.native import source_twin
from tests.unit.catalog.test_query_validation import CAP, ENGINES, KNOWN, Case, corpus

pytestmark = pytest.mark.unit

source = source_twin(catalog.queries.validate)


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the sources run")
def test_the_validator_runs_compiled_where_a_compiler_is() -> None:
    assert catalog.queries.COMPILED, "the compiled validator is missing or stale: make install"
    assert not catalog.queries.validate.__file__.endswith(".py")
    assert source.__file__.endswith("validate.py")


def answer(module: Any, case: Case, engine: Engine) -> dict[str, Any] | tuple[Any, ...]:
    """What ``module.validate`` makes of a corpus case: the query, or the refusal."""
    known = module.KnownTables(readable=KNOWN.readable, hidden=KNOWN.hidden, aliases=KNOWN.aliases)
    options: dict[str, Any] = {"dialect": case.dialect, "params": case.params, "cap": CAP}
    if "max_chars" in case.options:
        options["max_chars"] = int(case.options["max_chars"])
    try:
        query = module.validate(case.sql, known, engine=engine, **options)
    except QueryRejected as refused:
        return (str(refused), refused.hint, refused.line, refused.column)
    return dataclasses.asdict(query)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["legitimate", "hostile"])
def test_the_compiled_validator_answers_as_its_source(kind: str, engine: Engine) -> None:
    cases = corpus(kind, engine)
    assert len(cases) > 20
    for case in cases:
        compiled = answer(catalog.queries.validate, case, engine)
        assert compiled == answer(source, case, engine), case.name


def test_the_benchmark_queries_validate_alike_compiled_and_from_source() -> None:
    compiled_known, source_known = benchmark_tables(), benchmark_tables()
    for sql in QUERIES:
        compiled = catalog.queries.validate.validate(sql, compiled_known, engine="duckdb")
        reference = source.validate(sql, source_known, engine="duckdb")
        assert dataclasses.asdict(compiled) == dataclasses.asdict(reference)


def _texts() -> list[str]:
    """The SQL of the fast-path tests: shapes the splicer and the resolver take or refuse."""
    from tests.unit.catalog.test_query_fast_path import COLUMN_QUERIES, PLAIN, ROW_QUERIES

    texts = [*COLUMN_QUERIES, *PLAIN]
    texts += [p.values[0] if hasattr(p, "values") else p[0] for p in ROW_QUERIES]
    return [t.values[0] if hasattr(t, "values") else t for t in texts]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_fast_path_shapes_validate_alike_compiled_and_from_source(engine: Engine) -> None:
    texts = _texts()
    assert len(texts) > 50
    for sql in texts:
        case = Case(name=sql[:40], sql=sql, options={})
        assert answer(catalog.queries.validate, case, engine) == answer(source, case, engine), sql
