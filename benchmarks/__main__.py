"""Run every benchmark and print our figure beside the bare-tool baseline, as a ratio.

    make bench                      # scale 5 (5,000 customers, 25,000 orders)
    uv run python -m benchmarks --scale 20 --repeat 3

Each figure is the best of ``--repeat`` runs, each on a fresh warehouse, ours
and the baseline alternating so that neither enjoys a warmer cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


def best_of(repeat: int, prepare: Callable[[], None], work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        prepare()
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def timed_subprocess(code: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=5.0, help="sample data scale (1 = demo)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the best counts")
    args = parser.parse_args()

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    from benchmarks.bare import bare_dbt_build, bare_dlt_load
    from catalog.refresh import refresh
    from headwater.migrate import upgrade
    from headwater.settings import Settings
    from ingest.runner import run_all
    from ingest.sample_data import SampleCounts, generate
    from orchestration.transform import dbt_env, run_dbt

    console = Console()
    work = Path(tempfile.mkdtemp(prefix="headwater-bench-"))
    rows: list[tuple[str, float, str, float]] = []
    try:
        home = work / "home"
        settings = Settings(_env_file=None, home=home, sample_scale=args.scale)
        counts = SampleCounts.for_scale(args.scale)
        console.print(
            f"scale {args.scale:g}: {counts.customers:,} customers, {counts.orders:,} orders, "
            f"{counts.events:,} events; best of {args.repeat}"
        )
        generate(settings.sample_dir, scale=args.scale)
        bare_dir = work / "bare"

        def fresh_ours() -> None:
            shutil.rmtree(settings.dlt_dir, ignore_errors=True)
            settings.duckdb_path.unlink(missing_ok=True)

        def fresh_bare() -> None:
            shutil.rmtree(bare_dir, ignore_errors=True)
            bare_dir.mkdir(parents=True)

        loaded: dict[str, int] = {}
        ours_ingest, bare_ingest = [], []
        for _ in range(args.repeat):
            ours_ingest.append(
                best_of(
                    1,
                    fresh_ours,
                    lambda: loaded.update(ours=sum(s.total_rows for s in run_all(settings))),
                )
            )
            bare_ingest.append(
                best_of(
                    1,
                    fresh_bare,
                    lambda: loaded.update(
                        bare=bare_dlt_load(
                            settings.sample_dir, bare_dir / "w.duckdb", bare_dir / "dlt"
                        )
                    ),
                )
            )
        if loaded["ours"] != loaded["bare"]:
            raise SystemExit(
                f"ingest loaded {loaded['ours']} rows, the bare pipeline {loaded['bare']}"
            )
        rows.append(
            (
                f"ingest ({loaded['ours']:,} rows)",
                min(ours_ingest),
                "plain dlt pipeline",
                min(bare_ingest),
            )
        )

        env = dbt_env(settings)
        ours_dbt, bare_dbt = [], []
        for _ in range(args.repeat):
            ours_dbt.append(best_of(1, lambda: None, lambda: run_dbt(settings, "build")))
            bare_dbt.append(best_of(1, lambda: None, lambda: bare_dbt_build(ROOT, env)))
        rows.append(
            (
                "transform (dbt build)",
                min(ours_dbt),
                "dbt build --profiles-dir profiles",
                min(bare_dbt),
            )
        )

        upgrade(settings.metadata_url)
        catalog_time = best_of(args.repeat, lambda: None, lambda: refresh(settings))
        import duckdb

        def information_schema() -> None:
            with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
                connection.execute("select * from information_schema.columns").fetchall()

        baseline = best_of(args.repeat, lambda: None, information_schema)
        rows.append(("catalog refresh", catalog_time, "read information_schema", baseline))

        ours_total = min(ours_ingest) + min(ours_dbt) + catalog_time
        bare_total = min(bare_ingest) + min(bare_dbt)
        rows.append(("whole pipeline", ours_total, "plain dlt + dbt build", bare_total))

        child_env = {**os.environ, "HEADWATER_HOME": str(home)}
        defs_time = min(
            timed_subprocess("from orchestration.definitions import defs", child_env)
            for _ in range(args.repeat)
        )
        import_time = min(
            timed_subprocess("import dagster, dagster_dbt", child_env) for _ in range(args.repeat)
        )
        rows.append(
            ("Dagster definitions load", defs_time, "import dagster, dagster_dbt", import_time)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    table = Table(title="Headwater benchmarks (seconds; ratio = ours / baseline, lower is better)")
    for column in ("hot path", "ours", "baseline", "", "ratio"):
        table.add_column(column, justify="right" if column in {"ours", "", "ratio"} else "left")
    for name, ours, base_name, base in rows:
        table.add_row(name, f"{ours:.2f}", base_name, f"{base:.2f}", f"{ours / base:.2f}")
    console.print(table)
    console.print(
        "targets: whole pipeline ratio ≤ 1.3 (ours vs bare tools); definitions load < 5 s"
    )


if __name__ == "__main__":
    main()
