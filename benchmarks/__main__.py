"""Run every benchmark and print our figure beside the bare-tool baseline, as a ratio.

    make bench                      # scale 5 (5,000 customers, 25,000 orders)
    uv run python -m benchmarks --scale 20 --repeat 3
    uv run python -m benchmarks --no-api        # skip the API benchmark (benchmarks/api.py)
    uv run python -m benchmarks --no-jobs       # skip jobs via a real Dagster (benchmarks/jobs.py)
    uv run python -m benchmarks --no-lineage    # skip column lineage (benchmarks/lineage.py)
    uv run python -m benchmarks --no-queries    # skip ad hoc SQL (benchmarks/queries.py)
    uv run python -m benchmarks --no-events     # skip live events (benchmarks/events.py)
    uv run python -m benchmarks --source-rows 200000   # smaller source tables (default 2M)

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


Step = tuple[Callable[[], object], Callable[[], object]]  # (prepare, work)


def nothing() -> None:
    pass


def timed(prepare: Callable[[], object], work: Callable[[], object]) -> float:
    prepare()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def best_of(repeat: int, prepare: Callable[[], object], work: Callable[[], object]) -> float:
    return min(timed(prepare, work) for _ in range(repeat))


def alternate(repeat: int, ours: Step, baseline: Step) -> tuple[float, float]:
    """Best times of ours and the baseline, run in turns so neither gets a warmer cache."""
    ours_times, base_times = [], []
    for _ in range(repeat):
        ours_times.append(timed(*ours))
        base_times.append(timed(*baseline))
    return min(ours_times), min(base_times)


def make_up_wall_time() -> float:
    """Seconds from `git clone` to "Headwater is up" for `make up` on a fresh clone."""
    import signal
    import socket

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    with tempfile.TemporaryDirectory(prefix="headwater-up-") as clone:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "VIRTUAL_ENV"))
        }
        env.update(HEADWATER_API_PORT=str(free_port()), HEADWATER_DAGSTER_PORT=str(free_port()))
        started = time.perf_counter()
        subprocess.run(["git", "clone", "-q", str(ROOT), clone], check=True)
        process = subprocess.Popen(
            ["make", "up"],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("Headwater is up"):
                break
        else:
            raise SystemExit(f"make up exited with {process.wait()} before it was up")
        elapsed = time.perf_counter() - started
        os.killpg(process.pid, signal.SIGINT)
        process.communicate(timeout=120)
    return elapsed


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
    parser.add_argument(
        "--up", action="store_true", help="also time `make up` on a fresh clone of this repository"
    )
    parser.add_argument(
        "--sources",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time each source engine against its bulk path (benchmarks/sources.py)",
    )
    parser.add_argument(
        "--source-rows", type=int, default=2_000_000, help="rows of the wide source table"
    )
    parser.add_argument(
        "--jobs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time jobs through the API and a real Dagster (benchmarks/jobs.py)",
    )
    parser.add_argument(
        "--lineage",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time column lineage of 1,000 generated models (benchmarks/lineage.py)",
    )
    parser.add_argument(
        "--queries",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time ad hoc SQL: validation, cached answers, exports (benchmarks/queries.py)",
    )
    parser.add_argument(
        "--api",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load the REST API at 32 connections beside bare Litestar (benchmarks/api.py)",
    )
    parser.add_argument(
        "--events",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time live events: a run's moves to a WebSocket client, a broadcast to "
        "1,000 clients (benchmarks/events.py)",
    )
    args = parser.parse_args()

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    from benchmarks.bare import bare_dbt_build, bare_dlt_load
    from catalog.refresh import refresh
    from headwater.migrate import upgrade
    from headwater.settings import Settings
    from ingest.runner import run_all
    from ingest.sample_data import SampleCounts, generate
    from orchestration.transform import dbt_env

    console = Console(width=120)
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

        def ours() -> None:
            loaded["ours"] = sum(s.total_rows for s in run_all(settings))

        def bare() -> None:
            loaded["bare"] = bare_dlt_load(
                settings.sample_dir, bare_dir / "w.duckdb", bare_dir / "dlt"
            )

        ours_ingest, bare_ingest = alternate(args.repeat, (fresh_ours, ours), (fresh_bare, bare))
        if loaded["ours"] != loaded["bare"]:
            raise SystemExit(
                f"ingest loaded {loaded['ours']} rows, the bare pipeline {loaded['bare']}"
            )
        rows.append(
            (f"ingest ({loaded['ours']:,} rows)", ours_ingest, "plain dlt pipeline", bare_ingest)
        )

        # Both as a user runs them: a fresh command-line process each time.
        child_env = {**os.environ, "HEADWATER_HOME": str(home)}
        headwater = str(Path(sys.executable).with_name("headwater"))
        ours_dbt, bare_dbt = alternate(
            args.repeat,
            (nothing, lambda: subprocess.run([headwater, "transform"], env=child_env, check=True)),
            (nothing, lambda: bare_dbt_build(ROOT, dbt_env(settings))),
        )
        rows.append(
            (
                "transform: headwater transform",
                ours_dbt,
                "dbt build --profiles-dir profiles",
                bare_dbt,
            )
        )

        upgrade(settings.metadata_url)
        catalog_time = best_of(args.repeat, nothing, lambda: refresh(settings))
        import duckdb

        def information_schema() -> None:
            with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
                connection.execute("select * from information_schema.columns").fetchall()

        baseline = best_of(args.repeat, nothing, information_schema)
        rows.append(("catalog refresh", catalog_time, "read information_schema", baseline))

        ours_total = ours_ingest + ours_dbt + catalog_time
        bare_total = bare_ingest + bare_dbt
        rows.append(("whole pipeline", ours_total, "plain dlt + dbt build", bare_total))

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
        if args.up:
            rows.append(("make up, fresh clone", make_up_wall_time(), "5-minute target", 300.0))
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
    if args.sources:
        from benchmarks.sources import print_report
        from benchmarks.sources import run as run_sources

        print_report(run_sources(args.source_rows, None), args.source_rows, console)
    if args.jobs:
        from benchmarks.jobs import print_report as print_jobs
        from benchmarks.jobs import run as run_jobs

        print_jobs(run_jobs(5, 1000), console)
    if args.lineage:
        from benchmarks.lineage import report as lineage_report

        lineage_report(console)
    if args.queries:
        from benchmarks.queries import report as queries_report

        queries_report(console)
    if args.api:
        from benchmarks.api import run_api_benchmark
        from benchmarks.tokens import run_login_timing, run_token_benchmark

        run_api_benchmark(console, repeat=args.repeat)
        run_token_benchmark(console)
        run_login_timing(console)
    if args.events:
        from benchmarks.events import report as events_report

        events_report(console)


if __name__ == "__main__":
    main()
