"""Runs from the command line, recorded where the UI shows them.

``headwater ingest`` (and so ``headwater pipeline`` and ``headwater up``) loads each
source as a Dagster run of its assets, executed in this process against the
instance under ``HEADWATER_HOME/dagster``.

``headwater job run``: with the Dagster webserver up, the job is launched through it
(the daemon runs it, as for the API). Without it, the job executes in this process
against that same instance, so its run, logs and history are the ones the UI shows
once it is up, and the run is mirrored into the ``runs`` table at once.
"""

from __future__ import annotations

import time
from contextlib import redirect_stdout
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ingest.errors import IngestError
from orchestration.client import DagsterClient, DagsterUnavailable, LogLine
from orchestration.jobs import TAG_JOB_ID, TAG_OWNER_ID, dagster_job_name

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from headwater.settings import Settings
    from ingest.runner import LoadSummary
    from ingest.spec import SourceSpec
    from orchestration.models import Job
    from orchestration.transform import TransformSummary


@dataclass(frozen=True)
class Started:
    run_id: str
    where: str
    """``dagster``: launched through the webserver; ``here``: executed in this process."""
    status: str
    """Headwater's status when this returned (``queued`` for a launched run)."""


def instance(settings: Settings) -> DagsterInstance:
    """The Dagster instance the webserver and daemon use (``HEADWATER_HOME/dagster``),
    one per process."""
    return _instance(str(settings.dagster_home))


@lru_cache(maxsize=4)
def _instance(home: str) -> DagsterInstance:
    from dagster import DagsterInstance

    write_instance_config(Path(home))
    return DagsterInstance.from_config(home)


INSTANCE_YAML = """\
# Written by `headwater init`. Local instance: SQLite storage under DAGSTER_HOME.
# One run at a time: the embedded DuckDB warehouse takes one writing process.
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 1
  # Two runs of one Headwater job never overlap: a second waits in the queue.
  tag_concurrency_limits:
    - key: headwater/job_id
      value: {applyLimitPerUniqueValue: true}
      limit: 1
"""


def write_instance_config(dagster_home: Path) -> None:
    """Write ``dagster.yaml`` in ``dagster_home``: an older one of ours is brought up to
    date; a file of the user's is kept."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    written = config.read_text() if config.exists() else None
    if written is None or (
        written.startswith(INSTANCE_YAML.splitlines()[0]) and written != INSTANCE_YAML
    ):
        config.write_text(INSTANCE_YAML)


TRANSFORM_LOG = "transform.log"
"""dbt's output of the command line's builds, under ``HEADWATER_HOME/logs``."""

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Dagster's own console log off: the command line prints its summary, the run's log
stays in the instance."""


def ingest_recorded(
    settings: Settings,
    name: str,
    source: SourceSpec,
    tables: list[str] | None = None,
    *,
    full_refresh: bool = False,
    progress: Any = None,
) -> LoadSummary:
    """Load source ``name`` as a Dagster run of its assets, executed in this process and
    recorded in the instance (so the UI shows the command line's loads too).

    Raises:
        IngestError: the load failed (the same error as a direct load).
    """
    from dagster import materialize

    from orchestration.assets import HERE, HereRun, dlt_source_assets
    from orchestration.translators import raw_asset_key

    loads = dlt_source_assets(settings, name, source)
    keys = set(loads.keys)
    wanted = {raw_asset_key(name, table) for table in tables or []} & keys
    config = {"tables": list(tables) if tables else None, "full_refresh": full_refresh}
    here = HereRun(progress=progress)
    token = HERE.set(here)
    try:
        result = materialize(
            [loads],
            instance=instance(settings),
            selection=sorted(wanted or keys, key=lambda key: key.to_user_string()),
            run_config={"ops": {f"ingest_{name}": {"config": config}}, **QUIET},
            tags={"headwater/origin": "command line", "headwater/source": name},
            raise_on_error=False,
        )
    finally:
        HERE.reset(token)
    if here.error is not None:
        raise here.error
    if not result.success or not here.summaries:
        raise IngestError(
            f"loading source {name!r} failed in Dagster run {result.run_id}",
            hint=f"`headwater job logs {result.run_id}` shows why",
        )
    summary: LoadSummary = here.summaries[-1]
    return summary


def transform_recorded(settings: Settings, select: str | None = None) -> TransformSummary:
    """``dbt build`` (of the models ``select`` names, with their tests) as a Dagster run of
    the dbt assets, executed in this process and recorded in the instance.

    Raises:
        TransformError: dbt failed, or ``select`` names no model.
    """
    from dagster import materialize

    from orchestration.assets import (
        HERE,
        HereRun,
        dbt_model_assets,
        dbt_project,
        dbt_resource,
        dbt_selection,
    )
    from orchestration.errors import TransformError

    project = dbt_project(settings)
    models = dbt_model_assets(settings, project)
    selection = None
    if select:
        selection = dbt_selection(models, select)
        if selection is None:
            raise TransformError(
                f"no dbt model matches {select!r}",
                hint="dbt's selector syntax, e.g. `staging.stg_orders+` or `tag:daily`",
            )
    here = HereRun()
    token = HERE.set(here)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    # dagster-dbt prints dbt's every line to stdout: the terminal shows the summary.
    with (settings.logs_dir / TRANSFORM_LOG).open("a", encoding="utf-8") as out:
        try:
            with redirect_stdout(out):
                result = materialize(
                    [models],
                    instance=instance(settings),
                    selection=selection,
                    resources={"dbt": dbt_resource(settings, project)},
                    run_config=QUIET,
                    tags={"headwater/origin": "command line", "headwater/select": select or "*"},
                    raise_on_error=False,
                )
        finally:
            HERE.reset(token)
    if here.error is not None:
        raise here.error
    if not result.success or not here.transforms:
        raise TransformError(
            f"dbt build failed in Dagster run {result.run_id}",
            hint=f"`headwater job logs {result.run_id}` shows why",
        )
    return here.transforms[-1]


def _client(settings: Settings) -> DagsterClient:
    return DagsterClient(settings.dagster_webserver, settings.dagster_location, timeout=60)


def run_job(settings: Settings, job: Job) -> Started:
    """Launch ``job`` through Dagster, or execute it here when no webserver answers."""
    tags = {TAG_JOB_ID: str(job.id), TAG_OWNER_ID: str(job.owner_id)}

    async def launch() -> str:
        client = _client(settings)
        try:
            try:
                return await client.launch(dagster_job_name(job.id), tags)
            except DagsterUnavailable as exc:
                if exc.unreachable or exc.timed_out:
                    raise
                # Up, but it has not loaded the job yet (created a moment ago).
                await client.reload()
                return await client.launch(dagster_job_name(job.id), tags)
        finally:
            await client.close()

    try:
        return Started(anyio.run(launch), "dagster", "queued")
    except DagsterUnavailable as exc:
        if not exc.unreachable:
            raise
    return _execute_here(settings, job, tags)


def _execute_here(settings: Settings, job: Job, tags: dict[str, str]) -> Started:
    from orchestration.alerts import tick
    from orchestration.assets import build_definitions
    from orchestration.mirror import mirror_runs

    here = instance(settings)
    since = time.time() - 1
    definition = build_definitions(settings).resolve_job_def(dagster_job_name(job.id))
    result = definition.execute_in_process(instance=here, tags=tags, raise_on_error=False)
    mirror_runs(here, settings, since)  # recorded, published, alerts raised
    tick(settings, periodic=False)  # and their messages sent
    return Started(result.run_id, "here", "success" if result.success else "failed")


def run_logs(settings: Settings, run_id: str) -> list[LogLine]:
    """Every log line of run ``run_id``: from the webserver, else from the instance."""

    async def read() -> list[LogLine]:
        client = _client(settings)
        lines: list[LogLine] = []
        after: str | None = None
        try:
            while True:
                page, after, more = await client.logs(run_id, after, 1000)
                lines += page
                if not more:
                    return lines
        finally:
            await client.close()

    try:
        return anyio.run(read)
    except DagsterUnavailable as exc:
        if not exc.unreachable:
            raise
    from datetime import UTC, datetime

    from orchestration.client import RunNotFound

    here = instance(settings)
    if here.get_run_by_id(run_id) is None:
        raise RunNotFound(f"no run {run_id}")
    return [
        LogLine(
            at=datetime.fromtimestamp(entry.timestamp, UTC),
            level=_level(entry.level),
            step=entry.step_key,
            message=entry.user_message
            or (entry.dagster_event.message if entry.dagster_event else "")
            or "",
            kind=entry.dagster_event.event_type_value if entry.dagster_event else "log",
        )
        for entry in here.all_logs(run_id)
    ]


def _level(level: int | str) -> str:
    import logging

    return logging.getLevelName(level).lower() if isinstance(level, int) else str(level).lower()
