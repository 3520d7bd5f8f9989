"""Run the dbt project in-process with the platform's settings."""

from __future__ import annotations

import os
import time
from collections import Counter
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

    os.environ.update(dbt_env(settings))
    started = time.perf_counter()
    result = dbtRunner().invoke(dbt_args(settings, command, selector))
    seconds = time.perf_counter() - started
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    for node in _results(result.result):
        status = str(getattr(node.status, "value", node.status))
        statuses[status] += 1
        if status in {"error", "fail", "runtime error"}:
            failures.append(f"{node.node.name}: {status}: {(node.message or '').strip()}")
    summary = TransformSummary(command, dict(statuses), failures, seconds)
    if not result.success:
        if failures:
            raise TransformError(
                f"dbt {command} failed: " + "; ".join(failures[:5]),
                hint="see the dbt log in HEADWATER_HOME/logs/dbt/dbt.log",
            )
        reason = result.exception or "see the dbt log in HEADWATER_HOME/logs/dbt/dbt.log"
        raise TransformError(f"dbt {command} failed: {str(reason).strip().splitlines()[0]}")
    return summary


def _results(result: Any) -> list[Any]:
    return list(getattr(result, "results", None) or [])
