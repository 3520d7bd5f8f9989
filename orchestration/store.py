"""Reading the ``jobs`` table from Dagster's side (definitions and runs)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import inspect, select
from sqlalchemy.exc import SQLAlchemyError

from headwater.db import session_scope
from orchestration.errors import JobNotFound
from orchestration.models import Job

if TYPE_CHECKING:
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
