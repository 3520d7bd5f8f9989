"""Jobs: the rules for creating, changing, listing and deleting them, and who may.

Every function runs in one metadata store session (a worker thread, see ``api/db.py``)
and records its change in the audit log in the same transaction. Dagster is asked
to reload, launch or cancel by the controllers, outside the transaction.

Who sees what: admins every job; others their own jobs and the shared ones. Only
the owner and admins change or run a job. A job the caller may not see answers 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from api.audit.services import Actor, record
from api.errors import Conflict, NotFound, PermissionDenied
from api.jobs.schemas import JobIn, JobOut, JobUpdate, RunOut
from api.schemas import Page
from api.users.models import Role
from headwater.db import as_utc, insert_for
from headwater.notify.models import Alert, AlertRule
from ingest.destinations import WAREHOUSE
from ingest.errors import SpecError
from orchestration.events import run_update
from orchestration.jobs import (
    JobInvalid,
    check_timezone,
    check_transform,
    cron_expression,
    next_fire,
    query_table,
    transpiled,
)
from orchestration.models import FINISHED, Job, Run
from orchestration.store import last_runs

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from api.auth.schemas import CurrentUser
    from headwater.settings import Settings

FIELDS = (
    "name",
    "source",
    "target",
    "query",
    "tables",
    "write_disposition",
    "primary_key",
    "cursor",
    "transform",
    "schedule",
    "timezone",
    "retries",
    "retry_delay_seconds",
    "enabled",
    "shared",
    "description",
)
WIRE = {"source": "sourceId", "target": "targetId"}
SORTS = {
    "name": Job.name,
    "createdAt": Job.created_at,
    "updatedAt": Job.updated_at,
    "id": Job.id,
}


def _is_admin(user: CurrentUser) -> bool:
    return user.role == Role.ADMIN.value


def _visible(user: CurrentUser) -> ColumnElement[bool]:
    if _is_admin(user):
        return Job.id.is_not(None)
    return or_(Job.owner_id == user.id, Job.shared.is_(True))


def get_job(session: Session, user: CurrentUser, job_id: int) -> Job:
    """Job ``job_id`` if the caller may see it.

    Raises:
        NotFound: no such job, or one the caller may not see.
    """
    job = session.scalar(select(Job).where(Job.id == job_id, _visible(user)))
    if job is None:
        raise NotFound(f"No job {job_id}")
    return job


def writable_job(session: Session, user: CurrentUser, job_id: int) -> Job:
    """Job ``job_id`` if the caller may change or run it.

    Raises:
        NotFound: the caller may not see it.  PermissionDenied: a shared job of someone else.
    """
    job = get_job(session, user, job_id)
    if job.owner_id != user.id and not _is_admin(user):
        raise PermissionDenied("Only the job's owner or an admin may change or run it")
    return job


def _check_query_table(
    session: Session, fields: dict[str, Any], tables: dict[str, Any], job_id: int | None
) -> None:
    """A query job's table (its name, normalised) must be free in its source's schema."""
    table = query_table(" ".join(fields["name"].split()))
    if table in tables:
        raise JobInvalid(
            "name", f"source {fields['source']!r} already has a table {table!r}: rename the job"
        )
    others = session.scalars(
        select(Job).where(Job.source == fields["source"], Job.query.is_not(None))
    )
    for other in others:
        if other.id != job_id and query_table(other.name) == table:
            raise JobInvalid(
                "name",
                f"job {other.id} already loads table {table!r} from source "
                f"{fields['source']!r}: rename this job",
            )


def _validated(
    settings: Settings, session: Session, fields: dict[str, Any], job_id: int | None = None
) -> dict[str, Any]:
    """``fields`` (every job field, snake_case) checked and normalised.

    Raises:
        JobInvalid: a field is wrong (the message names it as the wire does).
    """
    from ingest.store import all_sources

    try:
        sources = all_sources(settings, session)
    except SpecError as exc:
        raise JobInvalid("sourceId", f"the sources cannot be read: {exc.message}") from None
    declared = sources.get(fields["source"])
    if declared is None or declared.spec.destination:
        known = ", ".join(n for n, d in sources.items() if not d.spec.destination) or "none"
        raise JobInvalid("sourceId", f"no source named {fields['source']!r} (sources: {known})")
    source = declared.spec
    target = fields["target"]
    if target != WAREHOUSE and not (target in sources and sources[target].spec.destination):
        targets = [WAREHOUSE] + [n for n, d in sources.items() if d.spec.destination]
        raise JobInvalid(
            "targetId", f"{target!r} is not a destination (destinations: {', '.join(targets)})"
        )
    dialect = fields.pop("query_dialect", None)
    if fields["query"] is not None:
        if fields["tables"]:
            raise JobInvalid("tables", "give either a query or tables, not both")
        _check_query_table(session, fields, source.tables, job_id)
        fields["query"] = transpiled(fields["query"], source, dialect)
        if fields["write_disposition"] == "merge" and not fields["primary_key"]:
            raise JobInvalid("primaryKey", "a merged query needs its primary key")
    elif dialect is not None:
        raise JobInvalid("queryDialect", "only a query has a dialect")
    if fields["tables"] and source.tables:
        unknown = [t for t in fields["tables"] if t not in source.tables]
        if unknown:
            raise JobInvalid(
                "tables",
                f"source {fields['source']!r} has no table(s) {', '.join(unknown)} "
                f"(its tables: {', '.join(source.tables)})",
            )
    if fields["schedule"] is not None:
        fields["schedule"] = " ".join(fields["schedule"].split())
        cron_expression(fields["schedule"])
    check_timezone(fields["timezone"])
    if fields["transform"] is not None:
        check_transform(settings, fields["transform"])
    fields["name"] = " ".join(fields["name"].split())
    return fields


def _snapshot(job: Job) -> dict[str, Any]:
    return {"id": job.id, "ownerId": job.owner_id} | {
        WIRE.get(field, field): getattr(job, field) for field in FIELDS
    }


def _name_taken(session: Session, owner_id: int, name: str, job_id: int | None) -> bool:
    query = select(Job.id).where(Job.owner_id == owner_id, Job.name == name)
    if job_id is not None:
        query = query.where(Job.id != job_id)
    return session.scalar(query) is not None


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:  # the same name at the same moment, by another request
        raise Conflict(f"You already have a job named {name!r}") from None


def create_job(
    settings: Settings, session: Session, user: CurrentUser, actor: Actor, data: JobIn
) -> JobOut:
    raw = msgspec.structs.asdict(data)
    fields = {
        field: raw[{"source": "source_id", "target": "target_id"}.get(field, field)]
        for field in FIELDS
    }
    fields["query_dialect"] = data.query_dialect
    fields = _validated(settings, session, fields)
    if _name_taken(session, user.id, fields["name"], None):
        raise Conflict(f"You already have a job named {fields['name']!r}")
    job = Job(owner_id=user.id, **fields)
    session.add(job)
    _flush(session, fields["name"])
    record(session, actor, "job.create", "job", job.id, after=_snapshot(job))
    return job_out(session, job)


def update_job(
    settings: Settings,
    session: Session,
    user: CurrentUser,
    actor: Actor,
    job_id: int,
    data: JobUpdate,
) -> JobOut:
    job = writable_job(session, user, job_id)
    before = _snapshot(job)
    changes = {
        {"source_id": "source", "target_id": "target"}.get(key, key): value
        for key, value in msgspec.structs.asdict(data).items()
        if not isinstance(value, msgspec.UnsetType)
    }
    fields = {field: getattr(job, field) for field in FIELDS} | changes
    if "query" not in changes and "query_dialect" not in changes:
        fields["query_dialect"] = None  # the stored query is in the source's dialect already
    if changes.get("tables"):
        fields["query"] = None if "query" not in changes else fields["query"]
    if changes.get("query"):
        fields["tables"] = None if "tables" not in changes else fields["tables"]
    fields = _validated(settings, session, fields, job.id)
    if _name_taken(session, job.owner_id, fields["name"], job.id):
        raise Conflict(f"A job named {fields['name']!r} already exists for this owner")
    for field, value in fields.items():
        setattr(job, field, value)
    _flush(session, fields["name"])
    record(session, actor, "job.update", "job", job.id, before=before, after=_snapshot(job))
    return job_out(session, job)


def active_runs(session: Session, job_id: int) -> list[str]:
    """Ids of the job's runs that are queued or running."""
    return list(
        session.scalars(select(Run.id).where(Run.job_id == job_id, Run.status.not_in(FINISHED)))
    )


def delete_job(session: Session, user: CurrentUser, actor: Actor, job_id: int) -> None:
    job = writable_job(session, user, job_id)
    before = _snapshot(job)
    session.delete(job)
    # Its alert rules and alert history go with it: a later job given the same id (SQLite
    # reuses the highest) must not inherit them, nor someone else's history.
    session.execute(
        delete(AlertRule).where(AlertRule.scope_kind == "job", AlertRule.scope_value == str(job_id))
    )
    session.execute(delete(Alert).where(Alert.subject == f"job:{job_id}"))
    record(session, actor, "job.delete", "job", job_id, before=before)


def _status_column() -> Any:
    last = (
        select(Run.status)
        .where(Run.job_id == Job.id)
        .order_by(Run.queued_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(last, "never_run")


def list_jobs(
    session: Session,
    user: CurrentUser,
    *,
    limit: int,
    offset: int,
    status: str | None = None,
    owner_id: int | None = None,
    source: str | None = None,
    enabled: bool | None = None,
    sort: str = "name",
) -> Page[JobOut]:
    status_of = _status_column().label("status")
    conditions = [_visible(user)]
    if owner_id is not None:
        conditions.append(Job.owner_id == owner_id)
    if source is not None:
        conditions.append(Job.source == source)
    if enabled is not None:
        conditions.append(Job.enabled.is_(enabled))
    if status is not None:
        conditions.append(_status_column() == status)
    total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    descending = sort.startswith("-")
    key = sort.lstrip("-")
    column: Any = status_of if key == "status" else SORTS[key]
    order = [column.desc() if descending else column.asc(), Job.id.asc()]
    rows = session.execute(
        select(Job, status_of).where(*conditions).order_by(*order).limit(limit).offset(offset)
    ).all()
    jobs = [row[0] for row in rows]
    last = last_runs(session, [job.id for job in jobs])
    items = [_job_out(job, last.get(job.id)) for job in jobs]
    return Page(items, total=total, limit=limit, offset=offset)


def job_out(session: Session, job: Job) -> JobOut:
    return _job_out(job, last_runs(session, [job.id]).get(job.id))


def _job_out(job: Job, last: Run | None) -> JobOut:
    upcoming: datetime | None = None
    if job.enabled and job.schedule:
        try:
            upcoming = next_fire(job.schedule, job.timezone)
        except (JobInvalid, ValueError):
            upcoming = None
    return JobOut(
        id=job.id,
        name=job.name,
        owner_id=job.owner_id,
        source_id=job.source,
        target_id=job.target,
        query=job.query,
        tables=job.tables,
        write_disposition=job.write_disposition,  # type: ignore[arg-type]
        primary_key=job.primary_key,
        cursor=job.cursor,
        transform=job.transform,
        schedule=job.schedule,
        timezone=job.timezone,
        retries=job.retries,
        retry_delay_seconds=job.retry_delay_seconds,
        enabled=job.enabled,
        shared=job.shared,
        description=job.description,
        status=last.status if last is not None else "never_run",  # type: ignore[arg-type]
        next_run_at=upcoming,
        last_run=run_out(last) if last is not None else None,
        created_at=as_utc(job.created_at),
        updated_at=as_utc(job.updated_at),
    )


def run_out(run: Run) -> RunOut:
    started = as_utc(run.started_at) if run.started_at else None
    finished = as_utc(run.finished_at) if run.finished_at else None
    return RunOut(
        id=run.id,
        job_id=run.job_id,
        status=run.status,  # type: ignore[arg-type]
        queued_at=as_utc(run.queued_at),
        started_at=started,
        finished_at=finished,
        duration_seconds=round((finished - started).total_seconds(), 3)
        if started and finished
        else None,
        rows_loaded=run.rows_loaded,
        rows_per_table=dict(run.rows_per_table or {}),
        tests_passed=run.tests_passed,
        tests_failed=run.tests_failed,
        error=run.error,
        parent_run_id=run.parent_run_id,
    )


def record_launch(
    session: Session, job_id: int | None, run_id: str, parent_run_id: str | None = None
) -> tuple[RunOut, dict[str, Any] | None]:
    """The run just launched, queued until the sensor sees it move; and its ``queued``
    event (None if another process published it first)."""
    if session.get(Run, run_id) is None:
        # The sensor may mirror it at the same moment: whoever writes first wins.
        session.execute(
            insert_for(session, Run)
            .values(
                id=run_id,
                job_id=job_id,
                status="queued",
                rows_per_table={},
                parent_run_id=parent_run_id,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
    run = session.get(Run, run_id)
    assert run is not None  # noqa: S101 - written just above, or by the sensor
    job = session.get(Job, job_id) if job_id is not None else None
    event = run_update(session, job, run_id, "queued") if job is not None else None
    return run_out(run), event


def get_run(session: Session, user: CurrentUser, run_id: str) -> tuple[Run, Job]:
    """Run ``run_id`` and its job, if the caller may see the job.

    Raises:
        NotFound: no such run, or its job is hidden from the caller.
    """
    run = session.get(Run, run_id)
    if run is None or run.job_id is None:
        raise NotFound(f"No run {run_id}")
    try:
        job = get_job(session, user, run.job_id)
    except NotFound:
        raise NotFound(f"No run {run_id}") from None
    return run, job


def job_runs(
    session: Session, user: CurrentUser, job_id: int, *, limit: int, offset: int
) -> Page[RunOut]:
    get_job(session, user, job_id)
    total = session.scalar(select(func.count()).select_from(Run).where(Run.job_id == job_id))
    runs = session.scalars(
        select(Run)
        .where(Run.job_id == job_id)
        .order_by(Run.queued_at.desc(), Run.id)
        .limit(limit)
        .offset(offset)
    )
    return Page([run_out(run) for run in runs], total=total or 0, limit=limit, offset=offset)
