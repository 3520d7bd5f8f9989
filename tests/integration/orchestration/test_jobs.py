"""Headwater jobs become Dagster jobs: real definitions, real runs in a real (ephemeral)
Dagster instance, real loads into DuckDB, and the runs mirrored into the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance

from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.runner import run_all
from ingest.sample_data import generate
from orchestration.assets import build_definitions
from orchestration.mirror import mirror_runs
from orchestration.models import Job, Run
from orchestration.transform import run_dbt
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

SCALE = 0.05


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("jobs")
    settings = make_settings(home, sample_scale=SCALE)
    generate(settings.sample_dir, scale=SCALE)
    upgrade(settings.metadata_url)
    # Jobs run against a warehouse the pipeline has built (dbt's tests between models
    # read both sides).
    run_all(settings)
    run_dbt(settings, "build")
    return settings


def add_job(settings: Settings, **fields: Any) -> int:
    values: dict[str, Any] = {
        "owner_id": 1,
        "source": "shop",
        "target": "warehouse",
        "timezone": "UTC",
        "retries": 0,
        "retry_delay_seconds": 0,
        "enabled": True,
        "shared": False,
        **fields,
    }
    with session_scope(settings.metadata_url) as session:
        job = Job(**values)
        session.add(job)
        session.flush()
        return job.id


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as made:
        yield made


def warehouse(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]


def mirrored(settings: Settings, instance: DagsterInstance, run_id: str) -> Run:
    mirror_runs(instance, settings, 0.0)
    with session_scope(settings.metadata_url) as session:
        run = session.get(Run, run_id)
    assert run is not None
    return run


def test_a_tables_job_loads_its_tables_with_its_settings_then_builds_its_models(
    settings: Settings, instance: DagsterInstance
) -> None:
    job_id = add_job(
        settings,
        name="Customers nightly",
        tables=["customers"],
        write_disposition="replace",
        transform="stg_shop__customers",
        schedule="@daily",
        timezone="Europe/Paris",
    )
    defs = build_definitions(settings)
    schedule = defs.resolve_schedule_def(f"job_{job_id}_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 0 * * *", "Europe/Paris")
    job = defs.resolve_job_def(f"job_{job_id}")
    assert job.tags["headwater/job_id"] == str(job_id)

    result = job.execute_in_process(instance=instance, tags=dict(job.tags))
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {key.path[-1] for key in materialized} == {"customers", "stg_shop__customers"}
    assert warehouse(settings, "select count(*) from raw_shop.customers") == [(50,)]

    run = mirrored(settings, instance, result.run_id)
    assert (run.job_id, run.status, run.error) == (job_id, "success", None)
    assert run.rows_per_table == {"shop/customers": 50}
    assert run.rows_loaded == 50
    assert run.tests_passed > 0 and run.tests_failed == 0
    assert run.started_at is not None and run.finished_at is not None


def test_a_query_job_loads_its_rows_as_a_table_named_after_it(
    settings: Settings, instance: DagsterInstance
) -> None:
    job_id = add_job(
        settings,
        name="Big orders",
        query="select id, status from orders where id <= 10",
        primary_key=["id"],
        write_disposition="merge",
    )
    defs = build_definitions(settings)
    result = defs.resolve_job_def(f"job_{job_id}").execute_in_process(instance=instance)
    assert result.success
    assert warehouse(settings, "select count(*) from raw_shop.big_orders") == [(10,)]
    assert {e.asset_key for e in result.get_asset_materialization_events()} == {
        AssetKey(["shop", "big_orders"])
    }


def test_a_permanent_failure_is_not_retried_and_its_cause_is_mirrored(
    settings: Settings, instance: DagsterInstance
) -> None:
    job_id = add_job(
        settings,
        name="Broken cursor",
        tables=["products"],
        cursor="no_such_column",
        retries=3,
        retry_delay_seconds=0,
    )
    job = build_definitions(settings).resolve_job_def(f"job_{job_id}")
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=dict(job.tags))
    assert not result.success
    restarts = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_RESTARTED]
    assert restarts == []
    run = mirrored(settings, instance, result.run_id)
    assert run.status == "failed"
    assert run.error is not None and "no_such_column" in run.error, run.error


def test_a_broken_job_row_never_stops_the_definitions_from_loading(settings: Settings) -> None:
    broken = add_job(settings, name="Gone", source="no_such_source")
    fine = add_job(settings, name="Fine", tables=["payments"])
    defs = build_definitions(settings)
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert f"job_{fine}" in names
    assert f"job_{broken}" not in names


def test_the_command_line_runs_a_job_in_the_dagster_instance_when_no_webserver_is_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from headwater.cli import main
    from headwater.settings import get_settings

    job_id = add_job(settings, name="From the shell", tables=["payments"])
    monkeypatch.setenv("HEADWATER_HOME", str(settings.home_dir))
    monkeypatch.setenv("HEADWATER_SAMPLE_SCALE", str(SCALE))
    monkeypatch.setenv("HEADWATER_DAGSTER_URL", "http://127.0.0.1:9")  # nothing listens
    get_settings.cache_clear()

    ran = CliRunner().invoke(main, ["job", "run", str(job_id)])
    assert ran.exit_code == 0, ran.output
    run_id = ran.output.strip().splitlines()[-1].split()[1].rstrip(":")
    # Recorded where the Dagster UI reads its history, and mirrored for the API.
    with DagsterInstance.from_config(str(settings.dagster_home)) as recorded:
        run = recorded.get_run_by_id(run_id)
        assert run is not None and run.tags["headwater/job_id"] == str(job_id)
    with session_scope(settings.metadata_url) as session:
        mirrored_run = session.get(Run, run_id)
        assert mirrored_run is not None and mirrored_run.status == "success"

    listed = CliRunner().invoke(main, ["job", "list"])
    assert listed.exit_code == 0, listed.output
    assert any(
        "From the shell" in line and "success" in line for line in listed.output.splitlines()
    )
    logs = CliRunner().invoke(main, ["job", "logs", run_id])
    assert logs.exit_code == 0, logs.output
    assert "loaded" in logs.output and "[ingest_shop]" in logs.output


def test_a_mirrored_error_never_shows_the_sources_password(settings: Settings) -> None:
    from ingest.store import create_source
    from orchestration.mirror import _Secrets

    password = "mirror-secret-pw-5521"
    with session_scope(settings.metadata_url) as session:
        create_source(
            session,
            settings,
            "billing",
            {
                "kind": "database",
                "connection": f"postgresql://loader:{password}@127.0.0.1:5432/test",
                "tables": {"invoices": {}},
            },
        )
    line = f"OperationalError: connection to postgresql://loader:{password}@127.0.0.1 failed"
    shown = _Secrets(settings).scrub("billing", line)
    assert password not in shown and "loader:***@127.0.0.1" in shown


def test_command_line_loads_are_runs_in_the_dagster_instance(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner
    from dagster import DagsterRunStatus, RunsFilter

    from headwater.cli import main
    from headwater.settings import get_settings

    monkeypatch.setenv("HEADWATER_HOME", str(settings.home_dir))
    monkeypatch.setenv("HEADWATER_SAMPLE_SCALE", str(SCALE))
    get_settings.cache_clear()

    loaded = CliRunner().invoke(main, ["ingest", "marketing"])
    assert loaded.exit_code == 0, loaded.output
    lines = loaded.output.splitlines()
    title = next(i for i, line in enumerate(lines) if "ingest marketing" in line)
    assert lines[title + 1].strip().startswith("spend: ")
    with DagsterInstance.from_config(str(settings.dagster_home)) as recorded:
        runs = recorded.get_runs(RunsFilter(tags={"headwater/source": "marketing"}))
    assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS]

    failed = CliRunner().invoke(main, ["ingest", "shop", "--table", "ghosts"])
    assert failed.exit_code == 1
    assert "unknown table(s) ghosts" in failed.output  # the load's own error, not Dagster's


def test_command_line_builds_are_runs_of_the_dbt_assets_in_the_dagster_instance(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner
    from dagster import DagsterRunStatus, RunsFilter

    from headwater.cli import main
    from headwater.settings import get_settings

    monkeypatch.setenv("HEADWATER_HOME", str(settings.home_dir))
    get_settings.cache_clear()

    built = CliRunner().invoke(main, ["transform", "stg_shop__orders"])
    assert built.exit_code == 0, built.output
    lines = built.output.splitlines()
    title = next(i for i, line in enumerate(lines) if "dbt build --select stg_shop__orders" in line)
    counts = dict(part.split(": ") for part in lines[title + 1].strip().split(", "))
    assert counts["success"] == "1" and int(counts["pass"]) >= 2, built.output
    assert "START sql view model" not in built.output  # dbt's own lines go to the log file
    assert "stg_shop__orders" in (settings.logs_dir / "transform.log").read_text()
    with DagsterInstance.from_config(str(settings.dagster_home)) as recorded:
        runs = recorded.get_runs(RunsFilter(tags={"headwater/select": "stg_shop__orders"}))
        assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS]
        materialized = {
            entry.asset_materialization.asset_key.path[-1]
            for entry in recorded.all_logs(
                runs[0].run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
            )
            if entry.asset_materialization is not None
        }
    assert materialized == {"stg_shop__orders"}

    unknown = CliRunner().invoke(main, ["transform", "stg_nothing_here"])
    assert unknown.exit_code == 1
    assert "no dbt model matches 'stg_nothing_here'" in unknown.output


def test_a_failed_command_line_build_says_why_and_is_a_failed_run(
    settings: Settings, tmp_path: Path
) -> None:
    from dagster import DagsterRunStatus, RunsFilter

    from orchestration.errors import TransformError
    from orchestration.runs import transform_recorded

    broken = settings.model_copy(update={"warehouse_path": tmp_path / "gone" / "w.duckdb"})
    with pytest.raises(TransformError, match=r"^dbt build failed: ") as failed:
        transform_recorded(broken, "stg_shop__orders")
    assert "gone" in str(failed.value), "dbt's own reason: the warehouse file cannot be opened"
    with DagsterInstance.from_config(str(settings.dagster_home)) as recorded:
        runs = recorded.get_runs(
            RunsFilter(
                tags={"headwater/select": "stg_shop__orders"}, statuses=[DagsterRunStatus.FAILURE]
            )
        )
    assert len(runs) == 1


def test_query_jobs_whose_tables_clash_never_break_the_code_location(settings: Settings) -> None:
    from dagster import Definitions

    first = add_job(settings, name="Same table", query="select 1 as id")
    second = add_job(settings, name="same  TABLE", query="select 2 as id")
    defs = build_definitions(settings)
    Definitions.validate_loadable(defs)
    names = {job.name for job in defs.resolve_all_job_defs()}
    assert f"job_{first}" in names and f"job_{second}" not in names
