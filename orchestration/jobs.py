"""Headwater jobs: what a job may say (checked with precise errors) and what it loads.

A job loads one source (chosen tables, or one query) into a destination, then builds
a dbt selection. ``definitions`` turns each enabled row of the ``jobs`` table into a
Dagster job with a schedule in the job's time zone.
"""

from __future__ import annotations

import json
import re
import zoneinfo
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.settings import Settings
    from ingest.spec import SourceSpec
    from orchestration.models import Job

ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
STANDARD_FIELD = re.compile(
    r"^(?:[0-9*,/\-]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)+$",
    re.IGNORECASE,
)
"""Digits, month and weekday names, ``*``, ranges, lists and steps: no L, W, # or ?."""
QUERY_DIALECTS = ("postgres", "mysql", "sqlite", "duckdb", "bigquery", "snowflake", "tsql")
TAG_JOB_ID = "headwater/job_id"
TAG_OWNER_ID = "headwater/owner_id"


def dagster_job_name(job_id: int) -> str:
    """The Dagster job that runs Headwater job ``job_id``."""
    return f"job_{job_id}"


class JobInvalid(HeadwaterError):
    """A job field that cannot be accepted; ``field`` is its wire name."""

    def __init__(self, field: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field}: {message}", hint=hint)
        self.field = field


def cron_expression(schedule: str) -> str:
    """The standard 5-field form of ``schedule`` (aliases spelled out).

    Raises:
        JobInvalid: not a standard 5-field cron expression or alias that fires.
    """
    from croniter import CroniterBadDateError, croniter

    text = " ".join(schedule.split())
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise JobInvalid(
                "schedule",
                f"{text!r} is not supported",
                hint=f"use a 5-field cron expression or one of {', '.join(sorted(ALIASES))}",
            )
        return ALIASES[text.lower()]
    fields = text.split(" ")
    if len(fields) != 5:
        raise JobInvalid(
            "schedule",
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"{text!r} has {len(fields)}",
        )
    for name, field in zip(FIELDS, fields, strict=True):
        if not STANDARD_FIELD.match(field):
            raise JobInvalid(
                "schedule",
                f"the {name} field {field!r} is not standard cron (digits, names, "
                "*, ranges a-b, lists a,b and steps /n)",
            )
        if re.search(r"/0*(?:,|$)", field):
            raise JobInvalid("schedule", f"the {name} field {field!r} has a step of 0")
        for low, high in re.findall(r"(\d+)-(\d+)", field):
            if int(low) > int(high):
                raise JobInvalid("schedule", f"the {name} range {low}-{high} runs backwards")
    try:
        croniter(text)
    except (ValueError, KeyError) as exc:
        reason = str(exc).replace(f"[{text}] ", "")
        raise JobInvalid("schedule", f"{text!r} {reason}") from None
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except CroniterBadDateError:
        raise JobInvalid("schedule", f"{text!r} never fires (no such date)") from None
    from dagster._utils.schedules import is_valid_cron_string

    if not is_valid_cron_string(text):
        raise JobInvalid("schedule", f"{text!r} is not a cron expression Dagster can run")
    return text


def next_fire(schedule: str, timezone: str, after: datetime | None = None) -> datetime:
    """When ``schedule`` next fires in ``timezone`` (an aware datetime, in UTC)."""
    from croniter import croniter

    zone = zoneinfo.ZoneInfo(timezone)
    start = (after or datetime.now(UTC)).astimezone(zone)
    fired: datetime = croniter(cron_expression(schedule), start).get_next(datetime)
    return fired.astimezone(UTC)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(timezone: str) -> str:
    if timezone not in _zones():
        raise JobInvalid(
            "timezone", f"{timezone!r} is not an IANA time zone", hint="e.g. UTC, Europe/Paris"
        )
    return timezone


def _manifest(settings: Settings) -> dict[str, Any]:
    path = settings.dbt_target_dir / "manifest.json"
    stat = path.stat()
    return _read_manifest(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _read_manifest(path: str, mtime: int, size: int) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def check_transform(settings: Settings, select: str) -> str:
    """``select`` if it is a dbt selector naming at least one model of the project.

    Raises:
        JobInvalid: dbt cannot read it, or it selects nothing.
    """
    from dagster_dbt.utils import select_unique_ids

    try:
        manifest = _manifest(settings)
    except OSError:
        raise JobInvalid(
            "transform",
            "the dbt project is not parsed yet",
            hint="run `headwater transform` or `dbt parse --profiles-dir profiles` once",
        ) from None
    try:
        selected = select_unique_ids(
            select=select, exclude="", selector="", project=None, manifest_json=manifest
        )
    except Exception as exc:  # dbt's own selector errors: their first line is the message
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise JobInvalid("transform", f"not a dbt selector dbt understands: {first}") from None
    models = [uid for uid in selected if uid.split(".", 1)[0] in ("model", "seed", "snapshot")]
    if not models:
        raise JobInvalid(
            "transform",
            f"{select!r} selects no dbt model",
            hint="e.g. staging.stg_orders+ (a model and everything downstream) or tag:daily",
        )
    return select


def query_table(job_name: str) -> str:
    """The raw table a query job loads: its name, normalised."""
    from ingest.sources import warehouse_name

    return warehouse_name(job_name)


def transpiled(query: str, source: SourceSpec, dialect: str | None) -> str:
    """``query`` in the source's SQL dialect, checked to be one read-only SELECT.

    Raises:
        JobInvalid: not one read-only SELECT, or not a database source.
    """
    import sqlglot
    from sqlglot.errors import ParseError, UnsupportedError

    from ingest.queries import dialect_of, query_problem

    if source.kind != "database":
        raise JobInvalid("query", f"queries run against database sources, not {source.kind!r}")
    own = dialect_of(source.connection)
    if dialect is not None and dialect != own:
        problem = query_problem(query, f"{_backend_of(dialect)}://")
        if problem:
            raise JobInvalid("query", problem)
        try:
            query = sqlglot.transpile(
                query, read=dialect, write=own, unsupported_level=sqlglot.ErrorLevel.RAISE
            )[0]
        except (ParseError, UnsupportedError) as exc:
            raise JobInvalid(
                "query", f"cannot be written in {own}: {str(exc).splitlines()[0][:200]}"
            ) from None
    problem = query_problem(query, source.connection)
    if problem:
        raise JobInvalid("query", problem)
    return query


def _backend_of(dialect: str) -> str:
    return {"postgres": "postgresql"}.get(dialect, dialect)


def job_source(job: Job, source: SourceSpec) -> SourceSpec:
    """What ``job`` loads: ``source`` narrowed to the job's tables (or its query as one
    table), with the job's disposition, key and cursor, into the job's target."""
    from ingest.spec import TableSpec

    overrides: dict[str, Any] = {}
    if job.write_disposition:
        overrides["write_disposition"] = job.write_disposition
    if job.primary_key:
        overrides["primary_key"] = tuple(job.primary_key)
    if job.cursor:
        overrides["cursor"] = job.cursor
    if job.query is not None:
        tables = {query_table(job.name): TableSpec(query=job.query, **overrides)}
    else:
        chosen = job.tables or list(source.tables)
        tables = {
            table: (source.tables.get(table) or TableSpec()).model_copy(update=overrides)
            for table in chosen
        }
    return source.model_copy(update={"tables": tables, "target": job.target})
