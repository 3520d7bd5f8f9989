"""Ingest speed per source engine: Headwater beside the engines' own bulk paths.

    uv run python -m benchmarks.sources                  # 2M rows
    uv run python -m benchmarks.sources --rows 200000    # quicker
    uv run python -m benchmarks.sources --rss-rows 10000000   # also peak memory at 10M

A wide, realistic table (ids, timestamps with and without zone, numeric(12,2),
text, boolean, JSON, NULLs, UUIDs) is generated in the local PostgreSQL and MariaDB
(own databases, dropped after) and exported to CSV. Its ``updated_at`` has an index,
as a column read incrementally would: the incremental figure is the median of three
runs, each after 1,000 rows changed. Each row of the report is one
hot path: our rows/s, the baseline's rows/s measured in the same run, and the
ratio (ours / baseline, higher is better) beside the target.

Baselines: the practical limit, an Arrow-native read (connectorx) straight into
DuckDB ``CREATE TABLE AS`` with no dlt; dlt with its default SQLAlchemy backend
(timed on a 100k-row slice: at its speed the whole table takes minutes); DuckDB's
own ``read_csv``; PostgreSQL's ``COPY FROM`` of the same rows.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2
import pymysql

if TYPE_CHECKING:
    from rich.console import Console

    from headwater.settings import Settings

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
SLICE_ROWS = 100_000
CHANGED_ROWS = 1_000
INCREMENTAL_RUNS = 3

PG_WIDE = """
create table wide as select i as id,
  timestamptz '2026-01-01' + (i || ' seconds')::interval as updated_at,
  timestamp '2020-01-01' + (i % 1000) * interval '1 day' as created_at,
  (i * 1.37)::numeric(12,2) as amount,
  md5(i::text) as code,
  'customer ' || i as name,
  (i % 2 = 0) as active,
  jsonb_build_object('k', i, 'tags', jsonb_build_array('a', 'b')) as attrs,
  case when i % 10 = 0 then null else i % 97 end as maybe,
  gen_random_uuid() as uid
from generate_series(1, {rows}) i;
alter table wide add primary key (id);
create index wide_updated_at on wide (updated_at);
create table wide_slice as select * from wide where id <= {slice};
alter table wide_slice add primary key (id);
"""
MY_WIDE = [
    """create table wide (id bigint primary key, updated_at timestamp(6) null,
       created_at datetime, amount decimal(12,2), code char(32), name varchar(64),
       active boolean, attrs json, maybe int null, uid char(36))""",
    """insert into wide select seq, timestamp('2026-01-01') + interval seq second,
       timestamp('2020-01-01') + interval (seq % 1000) day, seq * 1.37, md5(seq),
       concat('customer ', seq), seq % 2 = 0,
       json_object('k', seq, 'tags', json_array('a', 'b')),
       if(seq % 10 = 0, null, seq % 97), uuid() from seq_1_to_{rows}""",
    "create table wide_slice like wide",
    "insert into wide_slice select * from wide where id <= {slice}",
]


@dataclass(frozen=True)
class Figure:
    path: str
    ours: float
    baseline_name: str
    baseline: float
    target: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline


@contextmanager
def databases(rows: int) -> Iterator[tuple[str, str]]:
    """(PostgreSQL URL, MariaDB URL) of fresh databases holding the wide table."""
    name = f"hw_bench_{uuid.uuid4().hex[:8]}"
    pg_admin = psycopg2.connect(dbname="test", **PG)
    pg_admin.autocommit = True
    my_admin = pymysql.connect(autocommit=True, **MY)
    try:
        with pg_admin.cursor() as cursor:
            cursor.execute(f"create database {name}")
        with my_admin.cursor() as cursor:
            cursor.execute(f"create database {name}")
        pg = psycopg2.connect(dbname=name, **PG)
        pg.autocommit = True
        with pg.cursor() as cursor:
            cursor.execute(PG_WIDE.format(rows=rows, slice=min(rows, SLICE_ROWS)))
        pg.close()
        my = pymysql.connect(database=name, autocommit=True, **MY)
        with my.cursor() as cursor:
            for statement in MY_WIDE:
                cursor.execute(statement.format(rows=rows, slice=min(rows, SLICE_ROWS)))
        my.close()
        yield (
            f"postgresql://postgres@127.0.0.1:5432/{name}",
            f"mysql://root@127.0.0.1:3306/{name}",
        )
    finally:
        with pg_admin.cursor() as cursor:
            cursor.execute(f"drop database if exists {name} with (force)")
        with my_admin.cursor() as cursor:
            cursor.execute(f"drop database if exists {name}")
        pg_admin.close()
        my_admin.close()


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def fresh_settings(root: Path, label: str, **overrides: Any) -> Settings:
    from headwater.settings import Settings

    home = root / label
    shutil.rmtree(home, ignore_errors=True)
    return Settings(_env_file=None, home=home, data_dirs=[root], **overrides)


def ours(settings: Settings, url: str, table: str = "wide", cursor: str | None = None) -> float:
    from ingest.runner import run_source
    from ingest.spec import parse_sources

    options = f"{{cursor: {cursor}}}" if cursor else "{}"
    text = f"sources:\n  b:\n    kind: database\n    connection: {url}\n"
    text += f"    tables:\n      {table}: {options}\n"
    spec = parse_sources(text, env={}).sources["b"]
    return timed(lambda: run_source(settings, "b", spec))


def arrow_into_duckdb(url: str, path: Path) -> float:
    import connectorx as cx
    import duckdb

    def work() -> None:
        batches = cx.read_sql(
            url, "select * from wide", return_type="arrow_stream", batch_size=200_000
        )
        with duckdb.connect(str(path)) as connection:
            connection.register("batches", batches)
            connection.execute("create table wide as select * from batches")

    path.unlink(missing_ok=True)
    return timed(work)


def dlt_default(url: str, root: Path) -> float:
    """dlt's sql_table with its default (SQLAlchemy) backend, on the 100k-row slice."""
    import dlt
    from dlt.sources.sql_database import sql_table

    folder = root / f"dlt_default_{uuid.uuid4().hex[:6]}"
    pipeline = dlt.pipeline(
        pipeline_name="bench_default",
        pipelines_dir=str(folder),
        destination=dlt.destinations.duckdb(credentials=str(folder / "w.duckdb")),
        dataset_name="raw",
    )
    from headwater.db import normalize_url

    table = sql_table(credentials=normalize_url(url), table="wide_slice")
    return timed(lambda: pipeline.run(table))


def copy_from(csv_path: Path) -> float:
    connection = psycopg2.connect(dbname="test", **PG)
    connection.autocommit = True
    table = f"copy_{uuid.uuid4().hex[:8]}"
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"create table {table} (id bigint, updated_at timestamptz, created_at timestamp, "
                "amount numeric(12,2), code text, name text, active boolean, attrs jsonb, "
                "maybe int, uid uuid)"
            )

            def work() -> None:
                with csv_path.open() as handle:
                    cursor.copy_expert(
                        f"copy {table} from stdin with (format csv, header true)", handle
                    )

            return timed(work)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"drop table if exists {table}")
        connection.close()


def peak_rss_mb(rows: int) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of a fresh process loading ``rows`` PostgreSQL rows."""
    code = (
        "import sys, tempfile, time; from pathlib import Path; "
        "from benchmarks.sources import databases, fresh_settings, ours\n"
        f"with databases({rows}) as (pg, _), tempfile.TemporaryDirectory() as root:\n"
        "    started = time.perf_counter()\n"
        "    seconds = ours(fresh_settings(Path(root), 'rss'), pg)\n"
        # VmHWM: this process's own peak. ru_maxrss would also count the parent's
        # image from before exec (Linux carries it over), not what the load used.
        "    hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
        "    print(seconds, int(hwm.split()[1]) / 1024)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    return float(output[-2]), float(output[-1])


def run(rows: int, rss_rows: int | None) -> list[Figure]:
    import duckdb

    figures = []
    with databases(rows) as (pg, my), tempfile.TemporaryDirectory(prefix="hw-sources-") as tmp:
        root = Path(tmp)
        for engine, url in (("PostgreSQL", pg), ("MySQL", my)):
            mine = ours(fresh_settings(root, f"ours_{engine}"), url)
            limit = arrow_into_duckdb(url, root / f"limit_{engine}.duckdb")
            default = dlt_default(url, root)
            slice_rows = min(rows, SLICE_ROWS)
            figures.append(
                Figure(
                    f"{engine} → DuckDB",
                    rows / mine,
                    "connectorx → DuckDB CTAS",
                    rows / limit,
                    "≥ 0.5",
                )
            )
            figures.append(
                Figure(
                    f"{engine} → DuckDB",
                    rows / mine,
                    "dlt, SQLAlchemy backend",
                    slice_rows / default,
                    "≥ 5",
                )
            )

        csv_path = root / "wide.csv"
        connection = psycopg2.connect(dsn=pg)
        with connection.cursor() as cursor, csv_path.open("w") as handle:
            cursor.copy_expert(
                "copy (select * from wide) to stdout with (format csv, header true)", handle
            )
        connection.close()
        from ingest.runner import run_source
        from ingest.spec import parse_sources

        text = f"sources:\n  f:\n    kind: file\n    tables:\n      wide: {{path: {csv_path}}}\n"
        spec = parse_sources(text, env={}).sources["f"]
        mine = timed(lambda: run_source(fresh_settings(root, "ours_csv"), "f", spec))
        duck = root / "csv.duckdb"
        base = timed(
            lambda: duckdb.connect(str(duck)).execute(
                f"create table wide as select * from read_csv('{csv_path}')"
            )
        )
        figures.append(
            Figure("CSV → DuckDB", rows / mine, "DuckDB read_csv CTAS", rows / base, "≥ 0.5")
        )

        prefix = f"b{uuid.uuid4().hex[:6]}_"
        warehouse = fresh_settings(
            root, "ours_pgdest", warehouse="postgres", warehouse_dbname="test", schema_prefix=prefix
        )
        try:
            mine = ours(warehouse, pg)
            figures.append(
                Figure(
                    "PostgreSQL → PostgreSQL",
                    rows / mine,
                    "COPY FROM, same rows",
                    rows / copy_from(csv_path),
                    "≥ 0.5",
                )
            )
        finally:
            drop = psycopg2.connect(dbname="test", **PG)
            drop.autocommit = True
            with drop.cursor() as cursor:
                raw = warehouse.raw_schema("b")  # dlt adds its _staging twin
                for schema in (raw, f"{raw}_staging"):
                    cursor.execute(f"drop schema if exists {schema} cascade")
            drop.close()

        incremental = fresh_settings(root, "ours_incremental")
        full = ours(incremental, pg, cursor="updated_at")
        changer = psycopg2.connect(dsn=pg)
        changer.autocommit = True
        runs = []
        for run in range(INCREMENTAL_RUNS):
            with changer.cursor() as cursor:
                cursor.execute(
                    f"update wide set updated_at = timestamptz '2030-01-01' + {run} * "
                    f"interval '1 hour', name = 'changed {run}' "
                    f"where id % {max(1, rows // CHANGED_ROWS)} = {run} and id <= {rows}"
                )
            runs.append(ours(incremental, pg, cursor="updated_at"))
        changer.close()
        figures.append(
            Figure(
                f"incremental, {CHANGED_ROWS:,} changed rows (median of {INCREMENTAL_RUNS})",
                statistics.median(runs),
                "the full load (seconds)",
                full,
                "≤ 0.05",
                higher_is_better=False,
            )
        )
    if rss_rows:
        seconds, rss = peak_rss_mb(rss_rows)
        figures.append(
            Figure(f"peak RSS, {rss_rows:,} rows (MiB)", rss, "1.5 GiB", 1536.0, "< 1.0", False)
        )
        print(f"{rss_rows:,} rows loaded in {seconds:.1f} s ({rss_rows / seconds:,.0f} rows/s)")
    return figures


def print_report(figures: list[Figure], rows: int, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"Ingest speed, {rows:,} wide rows (rows/s; ratio = ours / baseline)")
    for column in ("hot path", "ours", "baseline", "", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("hot path", "baseline") else "right")
    for figure in figures:
        number = "{:,.0f}" if figure.higher_is_better else "{:,.2f}"
        table.add_row(
            figure.path,
            number.format(figure.ours),
            figure.baseline_name,
            number.format(figure.baseline),
            f"{figure.ratio:.2f}" if figure.higher_is_better else f"{figure.ratio:.3f}",
            figure.target,
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the wide table")
    parser.add_argument(
        "--rss-rows", type=int, default=None, help="also measure peak RSS at this size"
    )
    args = parser.parse_args()
    from rich.console import Console

    print_report(run(args.rows, args.rss_rows), args.rows, Console(width=130))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"this process: peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
