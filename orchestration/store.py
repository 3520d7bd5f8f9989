"""Reading the ``jobs`` table from Dagster's side (definitions and runs)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from headwater.db import session_scope
from orchestration.errors import JobNotFound
from orchestration.models import Job, Run

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from headwater.settings import Settings

log = logging.getLogger(__name__)


def all_jobs(settings: Settings) -> list[Job]:
    """Every job, by id; none while the metadata store is not migrated (or unreachable:
    the definitions still load, without jobs, and say why in the log)."""
    try:
        with session_scope(settings.metadata_url) as session:
            if not inspect(session.connection()).has_table(Job.__tablename__):
                return []
            return list(session.scalars(select(Job).order_by(Job.id)))
    except SQLAlchemyError as exc:
        log.warning("jobs not loaded: the metadata store cannot be read (%s)", type(exc).__name__)
        return []


def job_row(settings: Settings, job_id: int) -> Job:
    """Job ``job_id`` as it is now (a run uses the job's latest settings).

    Raises:
        JobNotFound: it was deleted.
    """
    with session_scope(settings.metadata_url) as session:
        job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(f"job {job_id} no longer exists")
    return job


def last_runs(session: Session, job_ids: Sequence[int]) -> dict[int, Run]:
    """The newest run of each of ``job_ids`` that has one, in one query."""
    if not job_ids:
        return {}
    newest = (
        select(Run.job_id, func.max(Run.queued_at).label("queued_at"))
        .where(Run.job_id.in_(job_ids))
        .group_by(Run.job_id)
        .subquery()
    )
    runs = session.scalars(
        select(Run).join(
            newest, (Run.job_id == newest.c.job_id) & (Run.queued_at == newest.c.queued_at)
        )
    )
    return {run.job_id: run for run in runs if run.job_id is not None}
