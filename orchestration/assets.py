"""Dagster definitions built from settings (``orchestration/definitions.py`` is the entry point).

One connected graph: a dlt multi-asset per declared source (one asset per raw
table) upstream of the dbt models that read them; dbt tests are asset checks.
A daily schedule runs the full pipeline; a sensor refreshes the catalog after
every successful run.

No ``from __future__ import annotations`` here: Dagster reads the ``context``
annotation at definition time.
"""

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    RunStatusSensorContext,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
    multi_asset,
    multiprocess_executor,
    run_status_sensor,
)
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from headwater.settings import Settings
from ingest.runner import load_declared, run_source
from ingest.spec import SourceSpec, TableSpec
from ingest.state import loaded_tables
from orchestration.transform import dbt_env, environment, run_dbt
from orchestration.translators import HeadwaterDbtTranslator, raw_asset_key

DAILY_CRON = "0 3 * * *"
DEFAULT_DISPOSITION = "merge on the primary key, else replace"
SENSOR_LOCK_WAIT_SECONDS = 20


WHOLE_SOURCE_TABLE = "all_tables"
"""The one asset of a source loading every table, until its first load names them."""


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
    def _load(context: AssetExecutionContext) -> Iterator[MaterializeResult[Any]]:
        selected = [key.path[-1] for key in context.selected_asset_keys]
        # All of a whole source's assets: every table it has now, new ones too.
        everything = source.whole and len(selected) == len(specs)
        summary = run_source(settings, name, source, None if everything else selected)
        context.log.info(f"loaded {summary.total_rows} rows into {summary.dataset}")
        for table in selected:
            yield MaterializeResult(
                asset_key=raw_asset_key(name, table),
                metadata={
                    "rows_loaded": summary.total_rows
                    if table == WHOLE_SOURCE_TABLE and not tables
                    else summary.rows.get(table, 0),
                    "load_id": summary.load_id or "",
                },
            )

    return _load


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
    @dbt_assets(manifest=project.manifest_path, dagster_dbt_translator=HeadwaterDbtTranslator())
    def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
        # The dbt process reads the profile's env_var()s from its environment.
        with environment(dbt_env(settings)):
            invocation = dbt.cli(["build"], context=context)
        yield from invocation.stream()

    return dbt_models


def build_definitions(settings: Settings) -> Definitions:
    project = dbt_project(settings)
    ingest_assets = [
        dlt_source_assets(settings, name, source)
        for name, source in load_declared(settings).items()
        if not source.destination
    ]
    full_pipeline = define_asset_job(
        "full_pipeline",
        selection=AssetSelection.all(),
        description="Ingest every source, build every dbt model, run every test.",
    )

    @run_status_sensor(
        run_status=DagsterRunStatus.SUCCESS,
        name="refresh_catalog",
        default_status=DefaultSensorStatus.RUNNING,
        description="Rebuilds the metadata catalog after every successful run.",
    )
    def refresh_catalog(context: RunStatusSensorContext) -> None:
        from catalog.refresh import refresh

        # Well inside Dagster's sensor evaluation timeout (60 s).
        summary = refresh(settings, lock_wait=SENSOR_LOCK_WAIT_SECONDS)
        context.log.info(
            f"catalog: {summary.datasets} datasets, {summary.edges} edges after run "
            f"{context.dagster_run.run_id}"
        )

    # DuckDB takes one writer per file: steps run one at a time in one process.
    executor = in_process_executor if settings.warehouse == "duckdb" else multiprocess_executor
    return Definitions(
        assets=[*ingest_assets, dbt_model_assets(settings, project)],
        jobs=[full_pipeline],
        schedules=[
            ScheduleDefinition(
                name="daily_full_pipeline",
                job=full_pipeline,
                cron_schedule=DAILY_CRON,
                default_status=DefaultScheduleStatus.RUNNING,
            )
        ],
        sensors=[refresh_catalog],
        resources={
            "dbt": DbtCliResource(
                project_dir=project,
                profiles_dir=str(settings.profiles_dir),
                # The dbt installed beside this interpreter, whatever PATH says.
                dbt_executable=str(Path(sys.executable).with_name("dbt")),
            )
        },
        executor=executor,
    )
