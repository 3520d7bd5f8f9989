"""``GET /api/dashboard``: how the jobs a caller may see are doing.

The figures are computed from the ``jobs`` and ``runs`` tables over the last 14
days. Answers are cached per caller scope under a fingerprint of both tables (how
many rows, the latest change), so a run the sensor mirrors, a launch or a changed
job makes the next request compute afresh, in every API process, with or without
Redis.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from api.jobs.schemas import (
    ActivityOut,
    Dashboard,
    DayOut,
    FailingJobOut,
    JobDurationOut,
    NextRunOut,
)
from api.jobs.services import _is_admin, _visible
from headwater.db import as_utc
from orchestration.jobs import JobInvalid, next_fire
from orchestration.models import Job, Run
from orchestration.store import last_runs

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from api.auth.schemas import CurrentUser

DAYS = 14
RECENT = 20
NEXT = 10


def scope(user: CurrentUser) -> str:
    """Whose jobs the dashboard covers: all (admins) or one user's and the shared ones."""
    return "all" if _is_admin(user) else f"user:{user.id}"


def fingerprint(session: Session) -> str:
    """Changes whenever a job or a run is added, changed or removed."""
    jobs = session.execute(select(func.count(), func.max(Job.updated_at)).select_from(Job)).one()
    runs = session.execute(select(func.count(), func.max(Run.updated_at)).select_from(Run)).one()
    return f"{jobs[0]}-{jobs[1]}-{runs[0]}-{runs[1]}"


def _rate(succeeded: int, failed: int) -> float | None:
    finished = succeeded + failed
    return round(succeeded / finished, 4) if finished else None


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def dashboard(session: Session, user: CurrentUser, now: datetime | None = None) -> Dashboard:
    now = now or datetime.now(UTC)
    jobs = {job.id: job for job in session.scalars(select(Job).where(_visible(user)))}
    since = now - timedelta(days=DAYS)
    runs = (
        list(
            session.scalars(
                select(Run)
                .where(Run.job_id.in_(list(jobs)), Run.queued_at >= since)
                .order_by(Run.queued_at.desc())
            )
        )
        if jobs
        else []
    )
    last = last_runs(session, list(jobs))

    by_status = Counter(last[j].status if j in last else "never_run" for j in jobs)
    windows = {"24h": now - timedelta(hours=24), "7d": now - timedelta(days=7)}
    rates = {}
    for label, start in windows.items():
        outcomes = Counter(r.status for r in runs if as_utc(r.queued_at) >= start)
        rates[label] = _rate(outcomes["success"], outcomes["failed"])

    days: dict[str, Counter[str]] = {
        (now - timedelta(days=n)).date().isoformat(): Counter() for n in range(DAYS - 1, -1, -1)
    }
    durations: dict[int, list[float]] = {}
    for run in runs:
        day = days.get(as_utc(run.queued_at).date().isoformat())
        if day is not None:
            day["runs"] += 1
            day["succeeded"] += run.status == "success"
            day["failed"] += run.status == "failed"
            day["rows"] += run.rows_loaded
        if run.started_at and run.finished_at and run.job_id is not None:
            seconds = (as_utc(run.finished_at) - as_utc(run.started_at)).total_seconds()
            durations.setdefault(run.job_id, []).append(seconds)

    upcoming: list[NextRunOut] = []
    for job in jobs.values():
        if job.enabled and job.schedule:
            try:
                upcoming.append(
                    NextRunOut(job.id, job.name, next_fire(job.schedule, job.timezone, now))
                )
            except (JobInvalid, ValueError):
                continue
    upcoming.sort(key=lambda item: (item.at, item.job_id))

    failing = sorted(
        (
            FailingJobOut(j, jobs[j].name, as_utc(run.finished_at or run.queued_at), run.error)
            for j, run in last.items()
            if run.status == "failed"
        ),
        key=lambda item: item.failed_at,
        reverse=True,
    )
    return Dashboard(
        jobs=len(jobs),
        enabled=sum(job.enabled for job in jobs.values()),
        jobs_by_status=dict(sorted(by_status.items())),
        success_rate_24h=rates["24h"],
        success_rate_7d=rates["7d"],
        per_day=[
            DayOut(date, c["runs"], c["succeeded"], c["failed"], c["rows"])
            for date, c in days.items()
        ],
        durations=sorted(
            (
                JobDurationOut(
                    j,
                    jobs[j].name,
                    len(values),
                    round(sum(values) / len(values), 3),
                    round(_p95(values), 3),
                )
                for j, values in durations.items()
            ),
            key=lambda item: (-item.p95_seconds, item.job_id),
        ),
        recent=[
            ActivityOut(
                run.id,
                run.job_id,
                jobs[run.job_id].name,
                run.status,  # type: ignore[arg-type]
                as_utc(run.queued_at),
                as_utc(run.finished_at) if run.finished_at else None,
            )
            for run in runs[:RECENT]
            if run.job_id is not None
        ],
        next_runs=upcoming[:NEXT],
        failing=failing,
    )
