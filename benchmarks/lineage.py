"""Column lineage at scale, beside sqlglot's own ``lineage()`` measured in the same run.

A generated project: 20 raw tables and 1,000 models of 20 columns each, in the
import-CTE / logic / final shape, as chains (one parent), fan-in joins (two or
three parents) and aggregates (``group by`` with sums and counts), all compiled SQL
the way dbt-duckdb writes it.

- full column lineage of every model (``catalog.lineage.query_lineage``: each model
  qualified once) vs ``sqlglot.lineage.lineage()`` called once per column, as a
  caller without the cache would; the baseline is timed on a sample of models and
  reported per model (timing all 20,000 calls would take minutes), and the sampled
  models' upstream columns are checked to agree between the two;
- one model changed: fingerprint every model and re-analyse the one whose key moved;
- the whole catalog refresh over a real DuckDB warehouse holding those tables and a
  dbt manifest of those models: cold, then after one model's compiled SQL changed;
- ``GET /api/catalog/datasets/{id}/lineage`` (a mart column, up, depth 10) and
  ``/impact`` (a raw column) through the real API with its cache off, p99 over
  distinct columns, beside ``GET /api/users/me``.

    uv run python -m benchmarks.lineage [--models 1000] [--sample 25] [--no-refresh]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlglot import exp
from sqlglot.lineage import lineage
from sqlglot.schema import MappingSchema

from catalog.lineage import fingerprint, make_schema, query_lineage

COLUMNS = 20
RAW_TABLES = 20
DIALECT = "duckdb"
DATABASE = "warehouse"


@dataclass
class Model:
    name: str
    """``schema.table``."""
    sql: str
    columns: list[str]
    parents: list[str]


def generate(models: int, seed: int = 7) -> tuple[dict[str, dict[str, str]], list[Model]]:
    """The known schema (raw tables and every model's output) and the models, in build
    order."""
    rng = random.Random(seed)  # noqa: S311  # generated data, not secrets
    tables: dict[str, dict[str, str]] = {}
    for i in range(RAW_TABLES):
        columns = {"id": "bigint", **{f"c{j}": _type(j) for j in range(1, COLUMNS)}}
        tables[f"raw_src{i % 4}.t{i}"] = columns
    built: list[Model] = []
    for i in range(models):
        pool = list(tables)
        shape = ("chain", "join", "aggregate")[i % 3]
        recent = pool[-60:] if len(pool) > 60 else pool
        if shape == "chain":
            parents = [rng.choice(recent)]
        elif shape == "join":
            parents = rng.sample(recent, min(len(recent), rng.choice((2, 3))))
        else:
            parents = [rng.choice(recent)]
        layer = ("staging", "intermediate", "marts")[min(2, i * 3 // models)]
        name = f"{layer}.m{i}"
        sql, columns = _model_sql(shape, parents, tables, rng)
        tables[name] = {c: "varchar" for c in columns}
        built.append(Model(name, sql, columns, parents))
    return tables, built


def _type(j: int) -> str:
    return ("bigint", "varchar", "decimal(18,2)", "timestamp", "boolean")[j % 5]


def _ref(name: str) -> str:
    schema, table = name.split(".")
    return f'"{DATABASE}"."{schema}"."{table}"'


def _model_sql(
    shape: str, parents: list[str], tables: dict[str, dict[str, str]], rng: random.Random
) -> tuple[str, list[str]]:
    imports = ",\n".join(
        f"p{k} as (\n    select * from {_ref(parent)}\n)" for k, parent in enumerate(parents)
    )
    first = list(tables[parents[0]])
    picks: list[str] = []
    outputs: list[str] = []
    if shape == "aggregate":
        key = first[0]
        picks.append(f"p0.{key} as key_id")
        outputs.append("key_id")
        for j, column in enumerate(rng.sample(first[1:], COLUMNS - 1)):
            fn = ("sum(length(cast({c} as varchar)))", "count({c})", "max({c})")[j % 3]
            picks.append(f"{fn.format(c='p0.' + column)} as a{j}")
            outputs.append(f"a{j}")
        logic = "select\n        " + ",\n        ".join(picks) + "\n    from p0\n    group by 1"
        logic += f"\n    having count(*) > {rng.randint(0, 3)}"
    else:
        joins = "".join(
            f"\n    left join p{k} on p{k}.{next(iter(tables[parents[k]]))} = p0.{first[0]}"
            for k in range(1, len(parents))
        )
        for j in range(COLUMNS):
            k = j % len(parents)
            column = list(tables[parents[k]])[(j * 7 + k) % len(tables[parents[k]])]
            style = j % 4
            if style == 0:
                picks.append(f"p{k}.{column} as {column}_{j}" if j else f"p{k}.{column} as id")
            elif style == 1:
                picks.append(f"p{k}.{column} as r{j}")
            elif style == 2:
                picks.append(f"upper(cast(p{k}.{column} as varchar)) as u{j}")
            else:
                picks.append(f"case when p{k}.{column} is null then 'none' else 'some' end as f{j}")
            outputs.append(picks[-1].rsplit(" as ", 1)[1])
        logic = (
            "select\n        "
            + ",\n        ".join(picks)
            + f"\n    from p0{joins}\n    where p0.{first[0]} is not null"
        )
    sql = f"with {imports},\nlogic as (\n    {logic}\n),\nfinal as (\n    select * from logic\n)\n"
    return sql + "select * from final", outputs


def _table_name(table: exp.Table) -> str:
    return f"{table.db}.{table.name}"


def _leaves(node: object) -> set[tuple[str, str]]:
    """The physical ``(table, column)`` leaves of a sqlglot lineage node."""
    out: set[tuple[str, str]] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        children = current.downstream  # type: ignore[attr-defined]
        if not children and isinstance(current.source, exp.Table):  # type: ignore[attr-defined]
            out.add((_table_name(current.source), current.name.rsplit(".", 1)[-1]))  # type: ignore[attr-defined]
        stack.extend(children)
    return out


PROJECT = "bench"
LATENCY_REQUESTS = 300


def _unique_id(name: str, raw: bool) -> str:
    schema, table = name.split(".")
    return f"source.{PROJECT}.{schema}.{table}" if raw else f"model.{PROJECT}.{table}"


def write_project(home: Path, tables: dict[str, dict[str, str]], models: list[Model]) -> Any:
    """A real DuckDB warehouse holding every table, and a dbt manifest of the models;
    returns the settings of a migrated home over them."""
    import duckdb

    from headwater.migrate import upgrade
    from headwater.settings import Settings

    settings = Settings(_env_file=None, home=home, database_url=None, redis_url=None)
    home.mkdir(parents=True, exist_ok=True)
    upgrade(settings.metadata_url)
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        for schema in sorted({name.split(".")[0] for name in tables}):
            connection.execute(f"create schema if not exists {schema}")
        for name, columns in tables.items():
            body = ", ".join(f"{column} {data_type}" for column, data_type in columns.items())
            connection.execute(f"create table {name} ({body})")
    write_manifest(settings, tables, models)
    return settings


def write_manifest(settings: Any, tables: dict[str, dict[str, str]], models: list[Model]) -> None:
    is_model = {m.name for m in models}
    sources = {}
    for name in tables:
        if name not in is_model:
            schema, table = name.split(".")
            sources[_unique_id(name, True)] = {
                "unique_id": _unique_id(name, True),
                "resource_type": "source",
                "source_name": schema,
                "name": table,
                "identifier": table,
                "schema": schema,
                "database": DATABASE,
                "columns": {},
            }
    nodes = {}
    for model in models:
        schema, table = model.name.split(".")
        nodes[_unique_id(model.name, False)] = {
            "unique_id": _unique_id(model.name, False),
            "resource_type": "model",
            "name": table,
            "alias": table,
            "schema": schema,
            "database": DATABASE,
            "config": {"materialized": "table"},
            "depends_on": {"nodes": [_unique_id(p, p not in is_model) for p in model.parents]},
            "raw_code": model.sql,
            "compiled_code": model.sql,
            "checksum": {
                "name": "sha256",
                "checksum": hashlib.sha256(model.sql.encode()).hexdigest(),
            },
            "columns": {},
            "description": "",
            "tags": [],
        }
    manifest = {
        "metadata": {"generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z")},
        "nodes": nodes,
        "sources": sources,
    }
    target = settings.dbt_target_dir
    target.mkdir(parents=True, exist_ok=True)
    (target / "manifest.json").write_text(json.dumps(manifest))


def refresh_figures(
    tables: dict[str, dict[str, str]], models: list[Model], console: Console
) -> list[tuple[str, str, str, str, str]]:
    """The catalog refresh at scale and the lineage API over its result."""
    import httpx

    from benchmarks.api import REAL_APP, login, prepare_home, serve, server_environment
    from catalog.refresh import refresh

    work = Path(tempfile.mkdtemp(prefix="headwater-lineage-bench-"))
    rows = []
    try:
        home = work / "home"
        env = server_environment(home, HEADWATER_CACHE_TTL_SECONDS="0")
        prepare_home(home, env)
        settings = write_project(home, tables, models)
        started = time.perf_counter()
        cold = refresh(settings)
        cold_seconds = time.perf_counter() - started
        if cold.analysed != len(models) or cold.unresolved:
            raise RuntimeError(
                f"cold refresh analysed {cold.analysed}, {cold.unresolved} unresolved"
            )
        changed = models[len(models) // 2]
        changed.sql = changed.sql.replace("select * from final", "select * from final where true")
        write_manifest(settings, tables, models)
        started = time.perf_counter()
        again = refresh(settings)
        incremental = time.perf_counter() - started
        if again.analysed != 1:
            raise RuntimeError(f"the incremental refresh analysed {again.analysed} models")
        rows.append(
            (
                "catalog refresh, one model changed",
                f"{incremental:.2f} s (1 re-analysed)",
                f"cold refresh: {cold_seconds:.1f} s ({cold.column_edges:,} column edges)",
                f"{cold_seconds / incremental:.0f}x faster",
                "<= 2 s",
            )
        )

        from catalog.models import Dataset
        from headwater.db import session_scope

        with session_scope(settings.metadata_url) as session:
            ids = dict(session.execute(select(Dataset.name, Dataset.id)).all())
        picker = random.Random(5)  # noqa: S311  # which columns to ask about
        marts = [m for m in models if m.name.startswith("marts.")]
        raws = [name for name in tables if name.startswith("raw_")]
        lineage_paths = [
            f"/api/catalog/datasets/{ids[m.name]}/lineage?column={c}&depth=10"
            for m in picker.sample(marts, min(len(marts), 60))
            for c in picker.sample(m.columns, 5)
        ]
        impact_paths = [
            f"/api/catalog/datasets/{ids[name]}/impact?column={c}&depth=10"
            for name in raws
            for c in picker.sample(list(tables[name]), 10)
        ]
        with serve(REAL_APP, env, cwd=work, log=work / "api.log") as api:
            session = login(api.base_url)
            auth = {"Authorization": f"Bearer {session.token}"}
            client = httpx.Client(base_url=api.base_url, timeout=60)
            baseline = _p99(client, ["/api/users/me"], auth)
            for title, paths in (
                ("lineage of a mart column", lineage_paths),
                ("impact of a raw column", impact_paths),
            ):
                ours = _p99(client, paths, auth)
                rows.append(
                    (
                        f"GET {title} (uncached)",
                        f"p99 {ours:.1f} ms",
                        f"GET /api/users/me p99 {baseline:.1f} ms",
                        f"{ours / baseline:.1f}x",
                        "p99 <= 50 ms",
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    del console
    return rows


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _p99(client: Any, paths: list[str], headers: dict[str, str]) -> float:
    for path in paths[:10]:
        client.get(path, headers=headers)
    timings = []
    for i in range(LATENCY_REQUESTS):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    return statistics.quantiles(timings, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=25)
    parser.add_argument(
        "--no-refresh", action="store_true", help="only the analysis, no store, no API"
    )
    args = parser.parse_args()
    report(Console(), args.models, args.sample, with_refresh=not args.no_refresh)


def report(
    console: Console, model_count: int = 1000, sample_size: int = 25, *, with_refresh: bool = True
) -> None:
    """Generate the project, time everything, print the table."""
    tables, models = generate(model_count)
    started = time.perf_counter()
    schema = make_schema(tables, DIALECT)
    results = {m.name: query_lineage(m.sql, schema, DIALECT) for m in models}
    ours = time.perf_counter() - started
    unresolved = sum(bool(r.unresolved) for r in results.values())
    edges = sum(len(r.edges) for r in results.values())

    picker = random.Random(3)  # noqa: S311
    sample = picker.sample(models, min(sample_size, len(models)))
    # The same schema for lineage(), nested by database as dbt's compiled SQL names tables.
    nested: dict[str, dict[str, dict[str, str]]] = {}
    for name, columns in tables.items():
        schema_name, table_name = name.split(".")
        nested.setdefault(schema_name, {})[table_name] = columns
    known = {DATABASE: nested}
    # Fairest baseline: the schema object built once and shared, as ours is.
    shared = MappingSchema(known, dialect=DIALECT, normalize=False)
    started = time.perf_counter()
    baseline_leaves: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for model in sample:
        for column in model.columns:
            node = lineage(column, model.sql, schema=shared, dialect=DIALECT)
            baseline_leaves[(model.name, column)] = _leaves(node)
    baseline_per_model = (time.perf_counter() - started) / len(sample)
    # As a caller passing the schema as a dict does (rebuilt on each call): fewer models.
    few = sample[: max(1, len(sample) // 5)]
    started = time.perf_counter()
    for model in few:
        for column in model.columns:
            lineage(column, model.sql, schema=known, dialect=DIALECT)
    naive_per_model = (time.perf_counter() - started) / len(few)
    disagreements = [
        key
        for key, leaves in baseline_leaves.items()
        if leaves
        != {(e.upstream, e.upstream_column) for e in results[key[0]].edges if e.column == key[1]}
    ]

    # One model changes: every key is recomputed, only the changed model re-analysed.
    keys = {m.name: fingerprint(m.sql, [(p, tables[p]) for p in m.parents]) for m in models}
    changed = models[len(models) // 2]
    changed.sql = changed.sql.replace("select * from final", "select * from final where true")
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        schema = make_schema(tables, DIALECT)
        moved = [
            m
            for m in models
            if fingerprint(m.sql, [(p, tables[p]) for p in m.parents]) != keys[m.name]
        ]
        for model in moved:
            query_lineage(model.sql, schema, DIALECT)
        timings.append(time.perf_counter() - started)
    incremental = statistics.median(timings)

    ours_per_model = ours / len(models)
    table = Table(title=f"column lineage: {len(models):,} models x {COLUMNS} columns")
    for heading in ("path", "ours", "baseline", "ratio", "target"):
        table.add_column(heading)
    table.add_row(
        "full column lineage",
        f"{ours:.1f} s ({ours_per_model * 1000:.1f} ms/model)",
        f"lineage() per column: {baseline_per_model * 1000:.0f} ms/model "
        f"(≈ {baseline_per_model * len(models):.0f} s for all; timed on {len(sample)})",
        f"{baseline_per_model / ours_per_model:.1f}x faster",
        "≤ 30 s, ≥ 5x",
    )
    table.add_row(
        "",
        "",
        f"lineage() per column, schema as a dict: {naive_per_model * 1000:.0f} ms/model "
        f"(timed on {len(few)})",
        f"{naive_per_model / ours_per_model:.0f}x faster",
        "",
    )
    table.add_row(
        "one model changed (analysis)",
        f"{incremental:.2f} s ({len(moved)} re-analysed)",
        f"full: {ours:.1f} s",
        f"{ours / incremental:.0f}x faster",
        "≤ 2 s",
    )
    if with_refresh:
        for row in refresh_figures(tables, models, console):
            table.add_row(*row)
    console.print(table)
    console.print(
        f"{edges:,} column edges; {unresolved} models with unresolved columns; "
        f"{len(disagreements)} of {len(baseline_leaves)} sampled columns disagree with "
        "lineage()" + (f": {disagreements[:5]}" if disagreements else "")
    )


if __name__ == "__main__":
    main()
