"""``job_update`` events: each move of a job's run, published once whoever sees it first.

A run is seen moving by the API's watcher (the webserver polled a few times a second,
for live clients), by the sensor that mirrors runs into the ``runs`` table (every few
seconds, also when no API runs), by ``headwater job run`` executing a run in its own
process, and by the run's own load steps (``progress``: rows per table as each load
ends). Each fact has one key (``run:<id>:<event>``), so the first to record it
publishes it and the others find it done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import select

from headwater.events import Event, announce, record
from orchestration.models import Job

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings

log = logging.getLogger("headwater.orchestration.events")

EVENT_OF_STATUS = {
    "queued": "queued",
    "running": "started",
    "success": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
"""A run's status and the ``job_update`` event that announces reaching it."""


class Audience(Protocol):
    """Who may see a job's events: its owner, everyone if shared, and admins."""

    id: int
    name: str
    owner_id: int
    shared: bool


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def progress_rows(session: Session, run_id: str) -> int:
    """The rows a run's load steps reported so far (its ``progress`` events)."""
    prefix = f"run:{run_id}:progress:"
    payloads: Iterable[dict[str, Any]] = session.scalars(
        select(Event.payload).where(Event.dedupe_key.startswith(prefix, autoescape=True))
    )
    return sum(int(payload.get("tableRows") or 0) for payload in payloads)


def run_update(
    session: Session,
    job: Audience,
    run_id: str,
    status: str,
    *,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    rows: int | None = None,
    error: str | None = None,
) -> dict[str, Any] | None:
    """Record that run ``run_id`` of ``job`` reached ``status``; the event's message, or
    None when that was published already (or ``status`` is not one announced)."""
    event = EVENT_OF_STATUS.get(status)
    if event is None:
        return None
    if event == "started" and started_at is None:
        # Dagster's STARTING (a launcher took the run) maps to running too: the run
        # has started once Dagster gives it a start time, and is announced then.
        return None
    if rows is None and event in ("succeeded", "failed", "cancelled"):
        rows = progress_rows(session, run_id)
    payload = {
        "jobId": job.id,
        "jobName": job.name,
        "runId": run_id,
        "event": event,
        "status": status,
        "rows": rows or 0,
        "startedAt": _stamp(started_at),
        "finishedAt": _stamp(finished_at),
        "durationSeconds": _seconds(started_at, finished_at),
        "error": error,
    }
    return record(
        session,
        "job_update",
        payload,
        key=f"run:{run_id}:{event}",
        job_id=job.id,
        owner_id=job.owner_id,
        shared=job.shared,
    )


def load_progress(
    settings: Settings,
    tags: Mapping[str, str],
    run_id: str,
    source: str,
    rows: dict[str, int],
) -> None:
    """Publish one ``progress`` event per table a load step of a job's run just loaded
    (nothing for runs that are not a Headwater job's). Never raises: the rows are
    loaded, and a store that cannot take an event must not fail the run."""
    try:
        _load_progress(settings, tags, run_id, source, rows)
    except Exception as exc:
        log.warning("progress of run %s not published: %s", run_id, type(exc).__name__)


def _load_progress(
    settings: Settings,
    tags: Mapping[str, str],
    run_id: str,
    source: str,
    rows: dict[str, int],
) -> None:
    from headwater.db import session_scope
    from orchestration.jobs import TAG_JOB_ID

    if TAG_JOB_ID not in tags:
        return
    messages = []
    with session_scope(settings.metadata_url) as session:
        job = session.get(Job, int(tags[TAG_JOB_ID]))
        if job is None:
            return
        total = progress_rows(session, run_id)
        for table, count in sorted(rows.items()):
            total += count
            payload = {
                "jobId": job.id,
                "jobName": job.name,
                "runId": run_id,
                "event": "progress",
                "status": "running",
                "table": f"{source}.{table}",
                "tableRows": count,
                "rows": total,
            }
            item = record(
                session,
                "job_update",
                payload,
                key=f"run:{run_id}:progress:{source}.{table}",
                job_id=job.id,
                owner_id=job.owner_id,
                shared=job.shared,
            )
            if item is not None:
                messages.append(item)
    announce(settings.metadata_url, settings.redis_url, messages)
