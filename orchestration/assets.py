"""Dagster definitions built from settings (``orchestration/definitions.py`` is the entry point).

One connected graph: a dlt multi-asset per declared source (one asset per raw
table) upstream of the dbt models that read them; dbt tests are asset checks.
A daily schedule runs the full pipeline; after every successful run a sensor
queues a catalog refresh (a run of its own). Each Headwater job (the ``jobs``
table) is a Dagster job with its schedule; a sensor mirrors their runs.

No ``from __future__ import annotations`` here: Dagster reads the ``context``
annotation at definition time.
"""

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    Backoff,
    Config,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    Failure,
    MaterializeResult,
    OpExecutionContext,
    RetryPolicy,
    RunRequest,
    RunsFilter,
    RunStatusSensorContext,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    multi_asset,
    multiprocess_executor,
    op,
    run_status_sensor,
    sensor,
)
from dagster import job as dagster_job_decorator
from dagster_dbt import DbtCliResource, DbtProject, build_dbt_asset_selection, dbt_assets
from packaging.version import Version

from headwater.settings import Settings
from ingest.errors import IngestError
from ingest.runner import load_declared, run_source
from ingest.spec import SourceSpec, TableSpec
from ingest.state import loaded_tables
from orchestration.alerts import tick as alerts_tick
from orchestration.errors import TransformError
from orchestration.events import load_progress
from orchestration.jobs import (
    TAG_JOB_ID,
    TAG_OWNER_ID,
    JobInvalid,
    cron_expression,
    dagster_job_name,
    job_source,
    query_table,
)
from orchestration.lineage import build_lineage, built_nodes, load_lineage, selected_nodes
from orchestration.mirror import mirror_runs
from orchestration.models import Job
from orchestration.store import all_jobs, job_row
from orchestration.transform import (
    TransformSummary,
    dbt_env,
    environment,
    run_dbt,
    summarise_run_results,
    transform_failed,
)
from orchestration.translators import HeadwaterDbtTranslator, raw_asset_key

log = logging.getLogger(__name__)

DAILY_CRON = "0 3 * * *"
DEFAULT_DISPOSITION = "merge on the primary key, else replace"
CATALOG_LOCK_WAIT_SECONDS = 300
"""A catalog refresh waits this long for a load that holds the warehouse."""
CATALOG_JOB = "refresh_catalog"
CATALOG_TAG = "headwater/catalog"
RUNS_SENSOR_SECONDS = 5
PERIODIC_ALERTS_SECONDS = 60


WHOLE_SOURCE_TABLE = "all_tables"
"""The one asset of a source loading every table, until its first load names them."""


class LoadConfig(Config):
    """Run configuration of a source's load: set when a Headwater job or the command
    line runs it."""

    job_id: int | None = None
    """Load what this job says (its tables, disposition, key, cursor and target)."""
    tables: list[str] | None = None
    """Only these tables (the command line's ``--table``; for a source of every table,
    ones that have no asset yet too)."""
    full_refresh: bool = False
    """Drop what was loaded and its incremental state first."""


@dataclass
class HereRun:
    """What a load executing in this process (the command line) shares with its caller:
    the progress display it feeds, and the summaries or the error it ends with."""

    progress: Any = None
    summaries: list[Any] = field(default_factory=list)
    """Each load's summary."""
    transforms: list[TransformSummary] = field(default_factory=list)
    """Each dbt build's summary."""
    error: IngestError | TransformError | None = None


HERE: ContextVar[HereRun | None] = ContextVar("headwater_here_run", default=None)


def dlt_source_assets(settings: Settings, name: str, source: SourceSpec) -> AssetsDefinition:
    """One multi-asset per declared source: each raw table is an asset, loadable alone.

    A source declared without tables (every table of a database) has the tables its
    loads found so far; before its first load, one asset stands for all of them.
    """
    tables = dict(source.tables)
    if source.whole:
        tables = {table: TableSpec() for table in loaded_tables(settings, name)}
    specs = [
        AssetSpec(
            raw_asset_key(name, table),
            description=f"`{table}` loaded by dlt from source `{name}` "
            f"({spec.write_disposition or DEFAULT_DISPOSITION}) into "
            f"{settings.raw_schema(name)}.",
            group_name="raw",
            kinds={"dlt"},
            metadata={"write_disposition": spec.write_disposition or DEFAULT_DISPOSITION},
        )
        for table, spec in (tables or {WHOLE_SOURCE_TABLE: TableSpec()}).items()
    ]

    @multi_asset(name=f"ingest_{name}", specs=specs, can_subset=True)
    def _load(
        context: AssetExecutionContext, config: LoadConfig
    ) -> Iterator[MaterializeResult[Any]]:
        selected = [key.path[-1] for key in context.selected_asset_keys]
        # All of a whole source's assets: every table it has now, new ones too.
        everything = source.whole and len(selected) == len(specs)
        spec, chosen = source, None if everything else selected
        if config.job_id is not None:
            spec = job_source(job_row(settings, config.job_id), source)
            chosen = [t for t in selected if t in spec.tables] if spec.tables else None
        if config.tables:
            chosen = config.tables
        resources = chosen
        if resources is None and not source.whole:
            resources = [t for t in selected if t != WHOLE_SOURCE_TABLE]
        with load_lineage(settings, context, name, spec, resources):
            summary = _run(settings, name, spec, chosen, full_refresh=config.full_refresh)
        context.log.info(f"loaded {summary.total_rows} rows into {summary.target}")
        load_progress(settings, context.run.tags, context.run_id, name, summary.rows)
        for table in selected:
            yield MaterializeResult(
                asset_key=raw_asset_key(name, table),
                metadata={
                    "rows_loaded": summary.total_rows
                    if table == WHOLE_SOURCE_TABLE and not tables
                    else summary.rows.get(table, 0),
                    "load_id": summary.load_id or "",
                    "target": summary.target,
                },
            )

    return _load


def query_job_asset(settings: Settings, job: Job, source: SourceSpec) -> AssetsDefinition:
    """The raw table a query job loads: its own asset, beside the source's tables."""
    table = query_table(job.name)
    job_id = job.id

    @multi_asset(
        name=f"job_{job_id}_query",
        specs=[
            AssetSpec(
                raw_asset_key(job.source, table),
                description=f"The rows of job {job.name!r}'s query on source `{job.source}`.",
                group_name="raw",
                kinds={"dlt"},
            )
        ],
    )
    def _query(context: AssetExecutionContext) -> Iterator[MaterializeResult[Any]]:
        current = job_row(settings, job_id)
        spec = job_source(current, source)
        with load_lineage(
            settings,
            context,
            current.source,
            spec,
            [table],
            job_name=f"ingest.{current.source}.{table}",
        ):
            summary = _run(settings, current.source, spec, None)
        load_progress(settings, context.run.tags, context.run_id, current.source, summary.rows)
        yield MaterializeResult(
            asset_key=raw_asset_key(current.source, table),
            metadata={
                "rows_loaded": summary.total_rows,
                "load_id": summary.load_id or "",
                "target": summary.target,
            },
        )

    return _query


def _run(
    settings: Settings,
    name: str,
    spec: SourceSpec,
    tables: list[str] | None,
    *,
    full_refresh: bool = False,
) -> Any:
    """Load, with failures Dagster understands: a permanent one is never retried."""
    here = HERE.get()
    try:
        summary = run_source(
            settings,
            name,
            spec,
            tables,
            full_refresh=full_refresh,
            progress=here.progress if here else None,
        )
    except IngestError as exc:
        if here is not None:
            here.error = exc
        raise Failure(description=str(exc), allow_retries=exc.transient) from None
    if here is not None:
        here.summaries.append(summary)
    return summary


def dbt_project(settings: Settings) -> DbtProject:
    project = DbtProject(
        project_dir=settings.project_dir,
        profiles_dir=settings.profiles_dir,
        target_path=settings.dbt_target_dir,
    )
    if _manifest_is_stale(settings, project.manifest_path):
        run_dbt(settings, "parse")
    return project


def _manifest_is_stale(settings: Settings, manifest: Path) -> bool:
    """True when the manifest is missing or older than any file of the dbt project."""
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    root = settings.project_dir
    files = [root / "dbt_project.yml", settings.profiles_dir / "profiles.yml"]
    for folder in ("models", "macros", "seeds", "snapshots"):
        files += [f for f in (root / folder).rglob("*") if f.is_file()]
    return any(f.exists() and f.stat().st_mtime > built for f in files)


def dbt_model_assets(settings: Settings, project: DbtProject) -> AssetsDefinition:
    def _dbt_build(
        context: AssetExecutionContext, dbt: DbtCliResource, built: list[str]
    ) -> Iterator[Any]:
        # The dbt process reads the profile's env_var()s from its environment.
        with environment(dbt_env(settings)):
            invocation = dbt.cli(["build"], context=context, raise_on_error=False)
        yield from invocation.stream()
        results = invocation.target_path / "run_results.json"
        run_results = invocation.get_artifact("run_results.json") if results.exists() else {}
        built.extend(built_nodes(run_results))
        summary = summarise_run_results("build", run_results)
        here = HERE.get()
        if here is not None:
            here.transforms.append(summary)
        if not invocation.is_successful():
            # dbt's own error lines (a profile or compilation error has no results).
            errors = getattr(invocation, "_error_messages", None) or [""]
            error = transform_failed(
                summary,
                " ".join(errors[0].split())[:500],  # "Encountered an error:\n<why>"
                hint="the run's logs show dbt's output (the command line keeps it in "
                "HEADWATER_HOME/logs/transform.log)",
            )
            if here is not None:
                here.error = error
            raise Failure(description=str(error), allow_retries=False)

    @dbt_assets(manifest=project.manifest_path, dagster_dbt_translator=HeadwaterDbtTranslator())
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        with build_lineage(settings, context, selected_nodes(context)) as built:
            yield from _dbt_build(context, dbt, built)

    return dbt_models


class HeadwaterDbtCliResource(DbtCliResource):
    """dagster-dbt's resource without two probes each build paid for and Headwater does
    not use (about 10 s a build here): ``dbt --version`` in a subprocess, where the dbt
    beside this interpreter is the one imported here, and an in-process dbt adapter,
    which only serves dagster-dbt's row-count and column metadata fetchers."""

    @cached_property
    def _cli_version(self) -> Version:
        from dbt.version import __version__

        return Version(__version__)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None


def dbt_resource(settings: Settings, project: DbtProject) -> DbtCliResource:
    return HeadwaterDbtCliResource(
        project_dir=project,  # type: ignore[arg-type]  # dagster-dbt takes a DbtProject too
        profiles_dir=str(settings.profiles_dir),
        # The dbt installed beside this interpreter, whatever PATH says.
        dbt_executable=str(Path(sys.executable).with_name("dbt")),
    )


def dbt_selection(dbt_models: AssetsDefinition, select: str) -> AssetSelection | None:
    """The dbt models and tests ``select`` names, resolved once into their keys (None when
    it names none): a dbt selector evaluated by every job that uses it (twice each) made
    the definitions of 1,000 jobs take 16 s to resolve."""
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

    selection = build_dbt_asset_selection([dbt_models], dbt_select=select)
    graph = AssetGraph.from_assets([dbt_models])
    keys = selection.resolve(graph)
    if not keys:
        return None
    checks = selection.resolve_checks(graph)
    return AssetSelection.assets(*keys).without_checks() | AssetSelection.checks(*checks)


def job_definitions(
    settings: Settings,
    declared: dict[str, SourceSpec],
    source_assets: dict[str, AssetsDefinition],
    dbt_models: AssetsDefinition,
) -> tuple[list[AssetsDefinition], list[Any], list[ScheduleDefinition]]:
    """(query assets, Dagster jobs, schedules) of the rows of the ``jobs`` table.

    A job whose source is gone or whose settings no longer hold is left out and
    logged: one broken row never stops the code location from loading.
    """
    assets: list[AssetsDefinition] = []
    jobs: list[Any] = []
    schedules: list[ScheduleDefinition] = []
    transforms: dict[str, AssetSelection | None] = {}
    taken = {key for loads in source_assets.values() for key in loads.keys}
    for job in all_jobs(settings):
        source = declared.get(job.source)
        try:
            if source is None or job.source not in source_assets:
                raise JobInvalid("sourceId", f"source {job.source!r} is not declared")
            if job.query is not None:
                query_asset = query_job_asset(settings, job, source)
                clash = set(query_asset.keys) & taken
                if clash:
                    raise JobInvalid("name", f"its table {clash.pop().to_user_string()} is taken")
                taken.update(query_asset.keys)
                assets.append(query_asset)
                selection: AssetSelection = AssetSelection.assets(query_asset)
                config: dict[str, Any] = {}
            else:
                loads = source_assets[job.source]
                wanted = {raw_asset_key(job.source, table) for table in job.tables or []}
                keys = wanted if wanted and wanted <= set(loads.keys) else set(loads.keys)
                selection = AssetSelection.assets(*keys)
                config = {"ops": {f"ingest_{job.source}": {"config": {"job_id": job.id}}}}
            if job.transform:
                if job.transform not in transforms:
                    transforms[job.transform] = dbt_selection(dbt_models, job.transform)
                models = transforms[job.transform]
                if models is None:
                    log.warning("job %s: %r names no dbt model now", job.id, job.transform)
                else:
                    selection = selection | models
            retry = (
                RetryPolicy(
                    max_retries=job.retries,
                    delay=job.retry_delay_seconds,
                    backoff=Backoff.EXPONENTIAL,
                )
                if job.retries
                else None
            )
            dagster_job = define_asset_job(
                dagster_job_name(job.id),
                selection=selection,
                config=config or None,
                description=f"{job.name}: {job.description or 'a Headwater job'} "
                f"(source {job.source} → {job.target})",
                tags={TAG_JOB_ID: str(job.id), TAG_OWNER_ID: str(job.owner_id)},
                op_retry_policy=retry,
            )
            if job.enabled and job.schedule:
                schedules.append(
                    ScheduleDefinition(
                        name=f"{dagster_job_name(job.id)}_schedule",
                        job=dagster_job,
                        cron_schedule=cron_expression(job.schedule),
                        execution_timezone=job.timezone,
                        default_status=DefaultScheduleStatus.RUNNING,
                    )
                )
            jobs.append(dagster_job)
        except Exception as exc:  # one broken job must not take the others down
            log.warning("job %s (%r) left out of Dagster: %s", job.id, job.name, exc)
    return assets, jobs, schedules


def build_definitions(settings: Settings) -> Definitions:
    project = dbt_project(settings)
    declared = load_declared(settings)
    source_assets = {
        name: dlt_source_assets(settings, name, source)
        for name, source in declared.items()
        if not source.destination
    }
    dbt_models = dbt_model_assets(settings, project)
    query_assets, headwater_jobs, job_schedules = job_definitions(
        settings, declared, source_assets, dbt_models
    )
    full_pipeline = define_asset_job(
        "full_pipeline",
        selection=AssetSelection.all(),
        description="Ingest every source, build every dbt model, run every test.",
    )

    @op(name="catalog_refresh", description="Rebuild the metadata catalog.")
    def refresh_catalog_op(context: OpExecutionContext) -> None:
        from orchestration.origins import refresh_catalog

        summary = refresh_catalog(settings, lock_wait=CATALOG_LOCK_WAIT_SECONDS)
        context.log.info(f"catalog: {summary.datasets} datasets, {summary.edges} edges")

    @dagster_job_decorator(
        name=CATALOG_JOB,
        description="Rebuilds the metadata catalog (after every successful run).",
        tags={CATALOG_TAG: "1"},
    )
    def catalog_job() -> None:
        refresh_catalog_op()

    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name="refresh_catalog",
        request_job=catalog_job,
        default_status=DefaultSensorStatus.RUNNING,
        description="After every successful run, queues a catalog refresh (a run of its "
        "own: the tick only asks for it). One waiting refresh covers any number of runs.",
    )
    def refresh_catalog(context: RunStatusSensorContext) -> RunRequest | SkipReason:
        if context.dagster_run.job_name == CATALOG_JOB:
            return SkipReason("a catalog refresh finished")
        waiting = context.instance.get_runs_count(
            RunsFilter(
                job_name=CATALOG_JOB,
                statuses=[DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED],
            )
        )
        if waiting:
            return SkipReason("a catalog refresh is already waiting")
        return RunRequest(tags={"headwater/after_run": context.dagster_run.run_id})

    last_periodic = [float("-inf")]

    @sensor(
        name="headwater_runs",
        minimum_interval_seconds=RUNS_SENSOR_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Mirrors the runs of Headwater jobs into the metadata store (status, "
        "rows per table, test results, error summary), publishes their moves, raises and "
        "resolves alerts, and sends waiting notifications.",
    )
    def headwater_runs(context: SensorEvaluationContext) -> SkipReason:
        since = float(context.cursor) if context.cursor else 0.0
        reached = mirror_runs(context.instance, settings, since)
        context.update_cursor(str(reached))
        now = time.monotonic()
        periodic = now - last_periodic[0] >= PERIODIC_ALERTS_SECONDS
        if periodic:
            last_periodic[0] = now
        alerts_tick(settings, periodic=periodic)
        return SkipReason("runs mirrored, alerts evaluated")

    # DuckDB takes one writer per file: steps run one at a time in one process.
    executor = in_process_executor if settings.warehouse == "duckdb" else multiprocess_executor
    return Definitions(
        assets=[*source_assets.values(), *query_assets, dbt_models],
        jobs=[full_pipeline, catalog_job, *headwater_jobs],
        schedules=[
            ScheduleDefinition(
                name="daily_full_pipeline",
                job=full_pipeline,
                cron_schedule=DAILY_CRON,
                default_status=DefaultScheduleStatus.RUNNING,
            ),
            *job_schedules,
        ],
        sensors=[refresh_catalog, headwater_runs],
        resources={"dbt": dbt_resource(settings, project)},
        executor=executor,
    )
