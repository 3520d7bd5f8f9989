"""Ad hoc SQL, beside the bare tools measured in the same run.

- validation + qualification (``catalog.queries.validate``) of realistic analyst
  queries vs a bare ``sqlglot.parse_one`` of the same text (target <= 1.5x);
- ``POST /api/queries`` through the real API (uvicorn): a cached answer vs the same
  aggregate over 1M rows uncached (target >= 10x faster), and the p99 of the cached
  answer at 16 concurrent clients (target < 20 ms);
- ``POST /api/queries/export`` logic streaming 1M rows as CSV vs DuckDB's own
  ``COPY … TO`` CSV of the same query (target >= 0.5x its throughput), each in its own
  process with its peak RSS, and the row counts checked.

    uv run python -m benchmarks.queries [--rows 1000000] [--no-api]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlglot
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent

QUERIES = [
    "select status, count(*) as orders, sum(amount) as revenue from orders group by status",
    "select c.name, sum(o.amount) as spent from orders o join customers c using (customer_id) "
    "group by c.name order by spent desc limit 20",
    "with monthly as (select date_trunc('month', ordered_at) as month, sum(amount) as revenue "
    "from orders group by 1) select month, revenue, revenue - lag(revenue) over (order by month) "
    "as change from monthly order by month",
    "select customer_id, amount, row_number() over (partition by customer_id order by "
    "ordered_at desc) as recency from orders where status = 'paid'",
    "select c.country, count(distinct o.customer_id) as buyers, avg(o.amount) as basket "
    "from customers c left join orders o on o.customer_id = c.customer_id "
    "where c.signed_up_at >= date '2024-01-01' group by 1 having count(*) > 10",
    "select * from customers where lower(name) like 'a%' and country in ('FR', 'DE') "
    "order by signed_up_at limit 100",
    "select case when amount > 100 then 'large' when amount > 20 then 'medium' else 'small' "
    "end as size, count(*) from orders group by 1",
    "select o.order_id, o.amount, c.name from orders o join customers c on c.customer_id = "
    "o.customer_id where o.ordered_at between timestamp '2024-01-01' and timestamp '2024-02-01'",
    "select customer_id from orders group by 1 having sum(amount) > 500 "
    "union select customer_id from customers where country = 'FR'",
    "select country, percentile_cont(0.5) within group (order by amount) as median_amount "
    "from orders join customers using (customer_id) group by country",
]


def build_warehouse(path: Path, rows: int) -> None:
    import duckdb

    with duckdb.connect(str(path)) as connection:
        connection.execute(
            f"""
            CREATE SCHEMA IF NOT EXISTS marts;
            CREATE OR REPLACE TABLE marts.customers AS
              SELECT range AS customer_id, 'customer ' || range AS name,
                     ['FR', 'DE', 'US', 'JP'][range % 4 + 1] AS country,
                     TIMESTAMP '2023-01-01' + INTERVAL (range) MINUTE AS signed_up_at
              FROM range(1, 50001);
            CREATE OR REPLACE TABLE marts.orders AS
              SELECT range AS order_id, range % 50000 + 1 AS customer_id,
                     (range % 997 * 0.37)::DECIMAL(12, 2) AS amount,
                     ['paid', 'refunded', 'pending'][range % 3 + 1] AS status,
                     TIMESTAMP '2024-01-01' + INTERVAL (range % 525600) MINUTE AS ordered_at,
                     CASE WHEN range % 11 = 0 THEN NULL ELSE 'note, "quoted" ' || range END
                       AS note
              FROM range({rows});
            """
        )


def known_tables() -> Any:
    from catalog.queries.validate import KnownTables, Relation

    return KnownTables(
        (
            Relation(
                "marts",
                "customers",
                ("customer_id", "name", "country", "signed_up_at"),
                ("BIGINT", "VARCHAR", "VARCHAR", "TIMESTAMP"),
            ),
            Relation(
                "marts",
                "orders",
                ("order_id", "customer_id", "amount", "status", "ordered_at", "note"),
                ("BIGINT", "BIGINT", "DECIMAL(12,2)", "VARCHAR", "TIMESTAMP", "VARCHAR"),
            ),
        )
    )


def validation_figures(repeat: int = 30, module: Any = None) -> tuple[float, float, float]:
    """Milliseconds per query: our validation of a query seen for the first time (a fresh
    catalog snapshot each round), of a query seen before, and a bare parse_one. ``module``:
    the validator to time (by default the one imported: compiled when built)."""
    import catalog.queries.validate

    validate = (module or catalog.queries.validate).validate

    def ours(known: Any) -> None:
        for sql in QUERIES:
            validate(sql, known, engine="duckdb", cap=10_000)

    def bare() -> None:
        for sql in QUERIES:
            sqlglot.parse_one(sql, read="duckdb")

    def clock(work: Any, *args: Any) -> float:
        started = time.perf_counter()
        work(*args)
        return time.perf_counter() - started

    warm_known = known_tables()
    ours(warm_known)
    bare()  # imports and sqlglot's own caches warm for both
    cold, warm, base = [], [], []
    for _ in range(repeat):
        cold.append(clock(ours, known_tables()))
        warm.append(clock(ours, warm_known))
        base.append(clock(bare))
    per_query = 1000 / len(QUERIES)
    return min(cold) * per_query, min(warm) * per_query, min(base) * per_query


EXPORT_SCRIPT = """
import json, resource, sys, time
from pathlib import Path
from headwater.settings import Settings
from catalog.queries.export import export
settings = Settings(_env_file=None, home=Path(sys.argv[1]))
sql = sys.argv[2]
started = time.perf_counter()
size = lines = 0
rows = int(sys.argv[3])
for chunk in export(settings, sql, None, role="admin", timeout=600, fmt="csv", limit=rows):
    size += len(chunk)
    lines += chunk.count(b"\\n")
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "bytes": size, "lines": lines,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

COPY_SCRIPT = """
import json, os, resource, sys, time
import duckdb
path, sql, target = sys.argv[1], sys.argv[2], sys.argv[3]
connection = duckdb.connect(path, read_only=True)
connection.execute("SET enable_progress_bar = false")
started = time.perf_counter()
connection.execute(f"COPY ({sql}) TO '{target}' (HEADER)")
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "bytes": os.path.getsize(target),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


SOURCES_SCRIPT = """
import json, os
os.environ["HEADWATER_NATIVE"] = "0"
import catalog.queries
from benchmarks.queries import validation_figures
assert not catalog.queries.COMPILED
cold, _, bare = validation_figures()
print(json.dumps({"figures": [cold, bare]}))
"""


def _child(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def export_figures(home: Path, rows: int, repeat: int = 2) -> tuple[dict[str, Any], dict[str, Any]]:
    sql = f"SELECT * FROM marts.orders LIMIT {rows}"
    ours, copy = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(repeat):
            ours.append(_child(EXPORT_SCRIPT, str(home), sql, str(rows)))
            copy.append(
                _child(
                    COPY_SCRIPT,
                    str(home / "warehouse.duckdb"),
                    sql,
                    str(Path(scratch) / "copy.csv"),
                )
            )
    best = min(ours, key=lambda r: r["seconds"])
    base = min(copy, key=lambda r: r["seconds"])
    if best["lines"] != rows + 1:
        raise RuntimeError(f"the export wrote {best['lines']} lines, not {rows + 1}")
    if best["bytes"] != base["bytes"]:  # the same text as COPY, byte for byte
        raise RuntimeError(f"the export wrote {best['bytes']} bytes, COPY {base['bytes']}")
    return best, base


def api_figures(home: Path, env: dict[str, str]) -> dict[str, float]:
    """Latencies in ms of POST /api/queries through uvicorn: uncached (distinct literals),
    cached (one query again), and the cached p99 at 16 concurrent clients."""
    from benchmarks.api import REAL_APP, http_request, login, measure, serve

    aggregate = (
        "select status, count(*) as orders, sum(amount) as revenue, avg(amount) as basket "
        "from orders where order_id % {k} <> 1 group by status order by status"
    )
    # As benchmarks/api.py: the server on one core, the load generator on the other.
    with serve(REAL_APP, env, cwd=home.parent, log=home.parent / "api.log", cpu=0) as api:
        token = login(api.base_url).token
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        url = f"{api.base_url}/api/queries"

        def post(sql: str) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            status, _, body = http_request(
                url, method="POST", headers=headers, body=json.dumps({"sql": sql}).encode()
            )
            elapsed = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"POST /api/queries answered {status}: {body[:300]!r}")
            answer: dict[str, Any] = json.loads(body)
            return elapsed, answer

        uncached = []
        for k in range(2, 22):
            elapsed, answer = post(aggregate.format(k=k))
            if answer["cached"]:
                raise RuntimeError("a distinct query came from the cache")
            uncached.append(elapsed)
        sql = aggregate.format(k=2)
        cached = []
        for _ in range(50):
            elapsed, answer = post(sql)
            if not answer["cached"]:
                raise RuntimeError("a repeated query was not served from the cache")
            cached.append(elapsed)
        load = measure(
            url,
            [f"Authorization: Bearer {token}"],
            connections=16,
            duration=8,
            warmup=2,
            cpu=1,
            method="POST",
            data=json.dumps({"sql": sql}),
        )
    return {
        "uncached_ms": statistics.median(uncached),
        "cached_ms": statistics.median(cached),
        "p99_ms": load.p99_ms,
        "rps": load.requests_per_s,
        "errors": float(
            sum(load.errors.values()) + sum(n for s, n in load.statuses.items() if s != 200)
        ),
    }


def report(console: Console, rows: int = 1_000_000, api: bool = True) -> None:
    import catalog.queries
    from benchmarks.api import prepare_home, server_environment
    from catalog.refresh import refresh
    from headwater.settings import Settings

    table = Table(title="Ad hoc SQL (catalog/queries, /api/queries)")
    for column in ("path", "ours", "baseline", "ratio", "target"):
        table.add_column(column)
    cold_ms, warm_ms, bare_ms = validation_figures()
    table.add_row(
        f"validate + qualify, first time ({len(QUERIES)} queries"
        f"{', compiled' if catalog.queries.COMPILED else ', Python: not compiled'})",
        f"{cold_ms:.2f} ms/query",
        f"sqlglot.parse_one {bare_ms:.2f} ms/query",
        f"{cold_ms / bare_ms:.2f}x",
        "<= 1.5x",
    )
    if catalog.queries.COMPILED:  # what a machine without a C compiler gets
        source_ms, source_bare_ms = _child(SOURCES_SCRIPT)["figures"]
        table.add_row(
            "the same, HEADWATER_NATIVE=0 (Python sources)",
            f"{source_ms:.2f} ms/query",
            f"sqlglot.parse_one {source_bare_ms:.2f} ms/query",
            f"{source_ms / source_bare_ms:.2f}x",
            "",
        )
    table.add_row(
        "validate, the same SQL again",
        f"{warm_ms * 1000:.1f} µs/query",
        f"sqlglot.parse_one {bare_ms:.2f} ms/query",
        f"{warm_ms / bare_ms:.3f}x",
        "<= 1.5x",
    )
    with tempfile.TemporaryDirectory(prefix="headwater-queries-") as work:
        home = Path(work) / "home"
        env = server_environment(home)
        prepare_home(home, env)
        settings = Settings(_env_file=None, home=home)
        build_warehouse(settings.duckdb_path, rows)
        refresh(settings)
        ours, base = export_figures(home, rows)
        table.add_row(
            f"export {rows:,} rows as CSV",
            f"{ours['seconds']:.2f} s, peak RSS {ours['rss_mb']:.0f} MB",
            f"DuckDB COPY TO {base['seconds']:.2f} s, peak RSS {base['rss_mb']:.0f} MB",
            f"{base['seconds'] / ours['seconds']:.2f}x throughput",
            ">= 0.5x",
        )
        if api:
            figures = api_figures(home, env)
            table.add_row(
                f"POST /api/queries, aggregate of {rows:,} rows",
                f"cached {figures['cached_ms']:.1f} ms",
                f"uncached {figures['uncached_ms']:.1f} ms",
                f"{figures['uncached_ms'] / figures['cached_ms']:.1f}x faster",
                ">= 10x",
            )
            table.add_row(
                "  cached, 16 concurrent clients",
                f"p99 {figures['p99_ms']:.1f} ms ({figures['rps']:.0f} req/s)",
                f"{figures['errors']:.0f} errors",
                "",
                "p99 < 20 ms",
            )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-api", action="store_true", help="skip the API figures")
    args = parser.parse_args()
    report(Console(), rows=args.rows, api=not args.no_api)


if __name__ == "__main__":
    main()
