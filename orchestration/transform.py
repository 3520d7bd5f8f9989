"""Run the dbt project in-process with the platform's settings."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestration.errors import TransformError

if TYPE_CHECKING:
    from headwater.settings import Settings


@dataclass(frozen=True)
class TransformSummary:
    command: str
    statuses: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def dbt_env(settings: Settings) -> dict[str, str]:
    """What dbt reads through ``env_var()`` and its own flags: no telemetry, our paths."""
    return {
        **settings.tool_env(),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
        "DBT_PROFILES_DIR": str(settings.profiles_dir),
        "DBT_PROJECT_DIR": str(settings.project_dir),
    }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of the block (dbt reads ``env_var()`` there)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def dbt_args(settings: Settings, command: str, selector: str | None = None) -> list[str]:
    args = [
        command,
        "--project-dir",
        str(settings.project_dir),
        "--profiles-dir",
        str(settings.profiles_dir),
        "--target-path",
        str(settings.dbt_target_dir),
        "--log-path",
        str(settings.logs_dir / "dbt"),
        "--quiet",
    ]
    if selector and command in {"build", "run", "test"}:
        args += ["--select", selector]
    return args


def run_dbt(
    settings: Settings, command: str = "build", selector: str | None = None
) -> TransformSummary:
    """Run ``dbt <command>`` in this process. Raises TransformError on failure."""
    from dbt.cli.main import dbtRunner

    started = time.perf_counter()
    with environment(dbt_env(settings)):
        try:
            result = dbtRunner().invoke(dbt_args(settings, command, selector))
        finally:
            release_duckdb()
    summary = summarise(
        command,
        [
            (node.node.name, str(getattr(node.status, "value", node.status)), node.message)
            for node in _results(result.result)
        ],
        time.perf_counter() - started,
    )
    if not result.success:
        raise transform_failed(summary, result.exception)
    return summary


FAILED = frozenset({"error", "fail", "runtime error"})
"""dbt's statuses of a node that failed (``warn`` and ``skipped`` are not failures)."""


def summarise(
    command: str, nodes: Iterable[tuple[str, str, str | None]], seconds: float
) -> TransformSummary:
    """Count ``(name, status, message)`` per status; keep a line for each failure."""
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    for name, status, message in nodes:
        statuses[status] += 1
        if status in FAILED:
            failures.append(f"{name}: {status}: {(message or '').strip()}")
    return TransformSummary(command, dict(statuses), failures, seconds)


def summarise_run_results(command: str, run_results: dict[str, Any]) -> TransformSummary:
    """A summary from dbt's ``run_results.json`` (what a dbt subprocess leaves behind)."""
    return summarise(
        command,
        [
            (str(r["unique_id"]).rsplit(".", 1)[-1], str(r["status"]), r.get("message"))
            for r in run_results.get("results", [])
        ],
        float(run_results.get("elapsed_time") or 0.0),
    )


DBT_LOG_HINT = "see the dbt log in HEADWATER_HOME/logs/dbt/dbt.log"


def transform_failed(
    summary: TransformSummary, reason: object = None, hint: str = DBT_LOG_HINT
) -> TransformError:
    """The error of a failed dbt command: its failing nodes, else the first line of why."""
    if summary.failures:
        return TransformError(
            f"dbt {summary.command} failed: " + "; ".join(summary.failures[:5]), hint=hint
        )
    first_line = (str(reason or hint).strip().splitlines() or ["unknown error"])[0]
    return TransformError(f"dbt {summary.command} failed: {first_line}", hint=hint)


def release_duckdb() -> None:
    """Close the DuckDB file dbt-duckdb keeps open after a run in this process.

    DuckDB admits one writing process per file; left open, the handle would lock
    out every other process (Dagster runs, the API's read-only queries).
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]


def _results(result: Any) -> list[Any]:
    return list(getattr(result, "results", None) or [])
