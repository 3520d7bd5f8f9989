"""Wire types of jobs and runs (camelCase).

``POST /api/jobs`` takes the shape existing clients send,
``{"name", "sourceId", "targetId", "query", "schedule"}``, and the richer fields below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from api.schemas import NO_NUL
from api.sources.schemas import SOURCE_NAME

JobName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]*\S")]
SourceRef = Annotated[str, msgspec.Meta(pattern=SOURCE_NAME, max_length=63)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Query = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000, pattern=NO_NUL)]
Schedule = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=NO_NUL)]
Selector = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=NO_NUL)]
TimeZone = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_NUL)]
Text = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)]
Disposition = Literal["append", "replace", "merge"]
Dialect = Literal["postgres", "mysql", "sqlite", "duckdb", "bigquery", "snowflake", "tsql"]
RunStatus = Literal["queued", "running", "success", "failed", "cancelled"]
JobStatus = Literal["never_run", "queued", "running", "success", "failed", "cancelled"]
Retries = Annotated[int, msgspec.Meta(ge=0, le=10)]
RetryDelay = Annotated[int, msgspec.Meta(ge=0, le=86_400)]


class JobIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: JobName
    """Unique among the owner's jobs."""
    source_id: SourceRef
    """A source's name (stored or declared in sources.yml; see ``GET /api/sources``)."""
    target_id: SourceRef = "warehouse"
    """A destination's name (``GET /api/destinations``): the warehouse by default."""
    query: Query | None = None
    """One read-only SELECT on a database source, loaded as a table named after the job."""
    query_dialect: Dialect | None = None
    """The SQL dialect ``query`` is written in (default: the source's); transpiled to the
    source's own dialect."""
    tables: Annotated[list[Identifier], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    """The source's tables to load (instead of ``query``); all of them when both are left out."""
    write_disposition: Disposition | None = None
    primary_key: Annotated[list[Identifier], msgspec.Meta(max_length=32)] | None = None
    cursor: Identifier | None = None
    """Incremental cursor column: each run reads only newer rows."""
    transform: Selector | None = None
    """dbt models to build after the load, as a dbt selector (``staging.stg_orders+``)."""
    schedule: Schedule | None = None
    """5-field cron expression or @hourly/@daily/@weekly/@monthly/@yearly; none: runs only
    when asked."""
    timezone: TimeZone = "UTC"
    """IANA time zone the schedule fires in."""
    retries: Retries = 0
    """Further attempts of a failed step (transient errors only: bad credentials, a missing
    table or an SQL error fail at once)."""
    retry_delay_seconds: RetryDelay = 60
    """Before the first retry; doubled for each next one."""
    enabled: bool = True
    """A disabled job keeps its history but neither fires nor runs."""
    shared: bool = False
    """Every signed-in user may see a shared job (only its owner and admins change it)."""
    description: Text | None = None


class JobUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Fields given replace the stored ones; ``null`` clears an optional one."""

    name: JobName | msgspec.UnsetType = msgspec.UNSET
    source_id: SourceRef | msgspec.UnsetType = msgspec.UNSET
    target_id: SourceRef | msgspec.UnsetType = msgspec.UNSET
    query: Query | msgspec.UnsetType | None = msgspec.UNSET
    query_dialect: Dialect | msgspec.UnsetType | None = msgspec.UNSET
    tables: (
        Annotated[list[Identifier], msgspec.Meta(min_length=1, max_length=1000)]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    write_disposition: Disposition | msgspec.UnsetType | None = msgspec.UNSET
    primary_key: (
        Annotated[list[Identifier], msgspec.Meta(max_length=32)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    cursor: Identifier | msgspec.UnsetType | None = msgspec.UNSET
    transform: Selector | msgspec.UnsetType | None = msgspec.UNSET
    schedule: Schedule | msgspec.UnsetType | None = msgspec.UNSET
    timezone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    retries: Retries | msgspec.UnsetType = msgspec.UNSET
    retry_delay_seconds: RetryDelay | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    shared: bool | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType | None = msgspec.UNSET


class RunOut(msgspec.Struct, rename="camel"):
    id: str
    """Dagster's run id."""
    job_id: int | None
    status: RunStatus
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    rows_loaded: int
    rows_per_table: dict[str, int]
    tests_passed: int
    tests_failed: int
    error: str | None
    """The first line of the real cause, secrets masked."""
    parent_run_id: str | None
    """The run this one retries."""


class JobOut(msgspec.Struct, rename="camel"):
    id: int
    name: str
    owner_id: int
    source_id: str
    target_id: str
    query: str | None
    """As it runs: in the source's SQL dialect."""
    tables: list[str] | None
    write_disposition: Disposition | None
    primary_key: list[str] | None
    cursor: str | None
    transform: str | None
    schedule: str | None
    timezone: str
    retries: int
    retry_delay_seconds: int
    enabled: bool
    shared: bool
    description: str | None
    status: JobStatus
    """The last run's status (``never_run`` before the first)."""
    next_run_at: datetime | None
    """When the schedule fires next (null: no schedule, or disabled)."""
    last_run: RunOut | None
    created_at: datetime
    updated_at: datetime


class RunLaunched(msgspec.Struct, rename="camel"):
    run_id: str
    job_id: int | None
    status: RunStatus


class LogLineOut(msgspec.Struct, rename="camel"):
    at: datetime
    level: str
    step: str | None
    message: str
    event: str


class RunLogs(msgspec.Struct, rename="camel"):
    items: list[LogLineOut]
    cursor: str | None
    """Pass as ``after`` for the next page."""
    has_more: bool


class DayOut(msgspec.Struct, rename="camel"):
    date: str
    """UTC day, ``YYYY-MM-DD``."""
    runs: int
    succeeded: int
    failed: int
    rows_loaded: int


class JobDurationOut(msgspec.Struct, rename="camel"):
    job_id: int
    name: str
    runs: int
    average_seconds: float
    p95_seconds: float


class ActivityOut(msgspec.Struct, rename="camel"):
    run_id: str
    job_id: int
    job_name: str
    status: RunStatus
    queued_at: datetime
    finished_at: datetime | None


class NextRunOut(msgspec.Struct, rename="camel"):
    job_id: int
    job_name: str
    at: datetime


class FailingJobOut(msgspec.Struct, rename="camel"):
    job_id: int
    name: str
    failed_at: datetime
    error: str | None


class Dashboard(msgspec.Struct, rename="camel"):
    """Over the jobs the caller may see."""

    jobs: int
    enabled: int
    jobs_by_status: dict[str, int]
    """Each job counted under its last run's status (``never_run`` before the first)."""
    success_rate_24h: float | None = msgspec.field(name="successRate24h")
    """Succeeded / finished (cancelled runs left out); null: no finished run."""
    success_rate_7d: float | None = msgspec.field(name="successRate7d")
    per_day: list[DayOut]
    """The last 14 days, oldest first, days without runs included."""
    durations: list[JobDurationOut]
    """Per job, over its finished runs of the last 14 days; slowest (p95) first."""
    recent: list[ActivityOut]
    next_runs: list[NextRunOut]
    failing: list[FailingJobOut]
    """Jobs whose last run failed, most recent failure first."""
