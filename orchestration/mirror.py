"""Runs of Headwater jobs, mirrored from Dagster's run storage into the ``runs`` table.

A sensor calls :func:`mirror_runs` every few seconds with the update time it reached
last: each run of a job (tagged with its id) changed since then is written with its
status and times, and once finished with its rows per table, its test results and
the first line of the error that ended it. Each move is published as a ``job_update``
event (once, whoever sees it first: see ``orchestration/events.py``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from headwater.db import session_scope
from headwater.events import announce
from orchestration.alerts import on_run_finished
from orchestration.client import DAGSTER_STATUS
from orchestration.events import run_update
from orchestration.jobs import TAG_JOB_ID
from orchestration.models import FINISHED, Job, Run

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from headwater.settings import Settings

log = logging.getLogger("headwater.orchestration.mirror")

BATCH = 100
MAX_ERROR = 2000


def mirror_runs(instance: DagsterInstance, settings: Settings, since: float) -> float:
    """Mirror the job runs updated after ``since`` (a timestamp); the newest update seen."""
    from dagster import RunsFilter

    records = instance.get_run_records(
        filters=RunsFilter(updated_after=datetime.fromtimestamp(since, UTC)),
        limit=BATCH,
        order_by="update_timestamp",
        ascending=True,
    )
    newest = since
    mine = [r for r in records if TAG_JOB_ID in r.dagster_run.tags]
    messages: list[dict[str, Any]] = []
    if mine:
        with session_scope(settings.metadata_url) as session:
            ids = {int(r.dagster_run.tags[TAG_JOB_ID]) for r in mine}
            jobs = {job.id: job for job in session.scalars(select(Job).where(Job.id.in_(ids)))}
            secrets = _Secrets(settings)
            for record in mine:
                job = jobs.get(int(record.dagster_run.tags[TAG_JOB_ID]))
                if job is not None:
                    before = session.get(Run, record.dagster_run.run_id)
                    was = before.status if before is not None else None
                    row = _write(session, instance, record, job, secrets)
                    if row.status in FINISHED and was not in FINISHED:
                        messages += _alerts(settings, session, job, row)
                    message = run_update(
                        session,
                        job,
                        row.id,
                        row.status,
                        started_at=row.started_at,
                        finished_at=row.finished_at,
                        rows=row.rows_loaded if row.status in FINISHED else None,
                        error=row.error,
                    )
                    if message is not None:
                        messages.append(message)
        announce(settings.metadata_url, settings.redis_url, messages)
    for record in records:
        newest = max(newest, record.update_timestamp.timestamp())
    return newest


def _alerts(settings: Settings, session: Any, job: Job, row: Run) -> list[dict[str, Any]]:
    """The alert rules' verdict on a run that just finished; a rule that cannot be
    evaluated is logged and skipped, never a reason to leave the run unmirrored."""
    try:
        with session.begin_nested():
            return on_run_finished(settings, session, job, row)
    except Exception:
        log.exception("alert rules not evaluated for run %s", row.id)
        return []


class _Secrets:
    """The secrets of each source, read once per pass, to mask them in error lines."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_source: dict[str, list[str]] | None = None

    def scrub(self, source: str, text: str) -> str:
        from ingest.masks import scrub, secret_paths, url_secrets

        if self._by_source is None:
            from ingest.store import all_sources

            try:
                declared = all_sources(self.settings)
            except Exception:
                declared = {}
            self._by_source = {
                name: url_secrets(d.spec.connection)
                + [value for _, value in secret_paths(d.spec.model_dump(mode="json"))]
                for name, d in declared.items()
            }
        return scrub(text, self._by_source.get(source, []))


def _write(
    session: Any, instance: DagsterInstance, record: Any, job: Job, secrets: _Secrets
) -> Run:
    run = record.dagster_run
    status = DAGSTER_STATUS.get(run.status.value, "queued")
    row = session.get(Run, run.run_id)
    if row is None:
        row = Run(id=run.run_id, job_id=job.id, rows_per_table={})
        session.add(row)
    row.status = status
    row.queued_at = record.create_timestamp
    row.parent_run_id = run.parent_run_id
    row.started_at = datetime.fromtimestamp(record.start_time, UTC) if record.start_time else None
    row.finished_at = datetime.fromtimestamp(record.end_time, UTC) if record.end_time else None
    if status in FINISHED:
        rows, passed, failed, error = _outcome(instance, run.run_id)
        row.rows_per_table = rows
        row.rows_loaded = sum(rows.values())
        row.tests_passed, row.tests_failed = passed, failed
        row.error = secrets.scrub(job.source, error) if status == "failed" and error else None
    assert isinstance(row, Run)  # noqa: S101 - read or added above
    return row


def _outcome(instance: DagsterInstance, run_id: str) -> tuple[dict[str, int], int, int, str | None]:
    """(rows loaded per raw table, checks passed, checks failed, the failure's first line)."""
    from dagster import DagsterEventType

    rows: dict[str, int] = {}
    passed = failed = 0
    errors: list[str] = []
    kinds = {
        DagsterEventType.ASSET_MATERIALIZATION,
        DagsterEventType.ASSET_CHECK_EVALUATION,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.RUN_FAILURE,
    }
    cursor = None
    while True:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=kinds, limit=1000)
        for event_record in page.records:
            event: Any = event_record.event_log_entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
                materialization = event.step_materialization_data.materialization
                value = materialization.metadata.get("rows_loaded")
                if value is not None:
                    name = "/".join(materialization.asset_key.path)
                    rows[name] = int(getattr(value, "value", value))
            elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
                if event.event_specific_data.passed:
                    passed += 1
                else:
                    failed += 1
            elif event.event_type == DagsterEventType.STEP_FAILURE:
                errors.append(_first_line(event.event_specific_data.error))
            elif not errors:
                errors.append((event.message or "the run failed").splitlines()[0])
        cursor = page.cursor
        if not page.has_more:
            break
    return rows, passed, failed, (errors[0][:MAX_ERROR] if errors else None)


def _first_line(error: Any) -> str:
    """The innermost cause's message: what went wrong, not where Dagster noticed."""
    while error is not None and getattr(error, "cause", None) is not None:
        error = error.cause
    message = str(getattr(error, "message", "") or "the step failed").strip()
    first = message.splitlines()[0] if message else "the step failed"
    return first.removeprefix("dagster._core.definitions.events.Failure: ")
