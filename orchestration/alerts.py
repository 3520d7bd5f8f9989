"""Alert conditions on runs and on the catalog, evaluated where those change.

- When a job's run finishes (the runs sensor, ``headwater job run``): ``run_failed``,
  ``duration_above`` (seconds), ``rows_below`` (rows), ``rows_outside_band`` (outside
  the mean ± k standard deviations of the job's last successful runs, k the threshold,
  3 by default), ``test_failed``, and ``success_rate_below`` (%, over
  ``window_minutes``, once at least three runs finished in it).
- Every minute or so (the same sensor): ``stale`` (a dataset past its freshness
  window: dbt's ``freshness``, or the rule's ``window_minutes`` for datasets without
  one), ``schema_change`` (a raw table's schema changed and models read it), and
  ``success_rate_below`` again, so it recovers once old failures leave the window.

Scopes: ``all``; ``job`` (its id); ``source`` (its name); ``dataset`` (``schema.table``:
for runs, a job whose source loads it); ``tag`` (datasets with the tag; jobs whose dbt
selection names ``tag:<tag>``).
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from catalog.models import Dataset, LineageEdge
from headwater.db import as_utc, utcnow
from headwater.notify.alerting import (
    CATALOG_CONDITIONS,
    RUN_CONDITIONS,
    Finding,
    apply,
    rules_for,
)
from headwater.notify.models import Alert, AlertRule
from ingest.models import SchemaChange
from orchestration.models import FINISHED, Job, Run

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings

BAND_RUNS = 10
BAND_MINIMUM_RUNS = 3
BAND_SIGMAS = 3.0
RATE_MINIMUM_RUNS = 3
DEFAULT_WINDOW_MINUTES = 24 * 60
SCHEMA_CHANGE_DAYS = 7
SENSOR_DELIVERIES = 2
"""Messages a sensor tick sends at most (each may take a channel's whole timeout; the
API's loop sends the rest)."""


def _job_in_scope(settings: Settings, rule: AlertRule, job: Job) -> bool:
    value = rule.scope_value or ""
    if rule.scope_kind == "all":
        return True
    if rule.scope_kind == "job":
        return value == str(job.id)
    if rule.scope_kind == "source":
        return value == job.source
    if rule.scope_kind == "dataset":
        return value.startswith(f"{settings.raw_schema(job.source)}.")
    if rule.scope_kind == "tag":
        return f"tag:{value}" in (job.transform or "")
    return False


def _duration(run: Run) -> float | None:
    if run.started_at is None or run.finished_at is None:
        return None
    return (as_utc(run.finished_at) - as_utc(run.started_at)).total_seconds()


def _run_finding(session: Session, rule: AlertRule, job: Job, run: Run) -> Finding | None:
    """The finding of a run rule on ``run`` (None: the rule has nothing to say about it)."""
    common: dict[str, Any] = {
        "rule": rule,
        "subject": f"job:{job.id}",
        "run_id": run.id,
        "owner_id": job.owner_id,
        "link": f"/api/runs/{run.id}",
    }
    name = f"job {job.name!r}"
    if rule.condition == "run_failed":
        if run.status == "cancelled":
            return None
        failed = run.status == "failed"
        detail = f": {run.error}" if run.error else ""
        message = f"{name} failed{detail}" if failed else f"{name} succeeded again"
        return Finding(firing=failed, message=message, **common)
    if rule.condition == "duration_above":
        seconds, limit = _duration(run), rule.threshold
        if seconds is None or limit is None or run.status == "cancelled":
            return None
        return Finding(
            firing=seconds > limit,
            message=f"{name} ran {seconds:.0f} s (limit {limit:.0f} s)",
            value=seconds,
            **common,
        )
    if rule.condition == "test_failed":
        if run.status == "cancelled" or run.tests_passed + run.tests_failed == 0:
            return None  # no test ran: nothing to say either way
        failed = run.tests_failed > 0
        return Finding(
            firing=failed,
            message=f"{name}: {run.tests_failed} dbt test(s) failed"
            if failed
            else f"{name}: every dbt test passed",
            value=float(run.tests_failed),
            **common,
        )
    if run.status != "success":
        return None
    rows = float(run.rows_loaded)
    if rule.condition == "rows_below":
        if rule.threshold is None:
            return None
        return Finding(
            firing=rows < rule.threshold,
            message=f"{name} loaded {rows:.0f} rows (expected at least {rule.threshold:.0f})",
            value=rows,
            **common,
        )
    if rule.condition == "rows_outside_band":
        earlier = [
            float(r)
            for r in session.scalars(
                select(Run.rows_loaded)
                .where(Run.job_id == job.id, Run.status == "success", Run.id != run.id)
                .order_by(Run.finished_at.desc())
                .limit(BAND_RUNS)
            )
        ]
        if len(earlier) < BAND_MINIMUM_RUNS:
            return None
        mean = statistics.fmean(earlier)
        spread = max((rule.threshold or BAND_SIGMAS) * statistics.pstdev(earlier), 0.1 * mean, 1)
        low, high = max(mean - spread, 0.0), mean + spread
        return Finding(
            firing=not low <= rows <= high,
            message=f"{name} loaded {rows:.0f} rows; recent runs suggest {low:.0f} to {high:.0f}",
            value=rows,
            **common,
        )
    return None


def _success_rate(
    settings: Settings, session: Session, rule: AlertRule, now: datetime
) -> Finding | None:
    window = rule.window_minutes or DEFAULT_WINDOW_MINUTES
    since = now - timedelta(minutes=window)
    finished = session.execute(
        select(Job, Run.status)
        .join(Run, Run.job_id == Job.id)
        .where(Run.finished_at >= since, Run.status.in_(sorted(FINISHED - {"cancelled"})))
    ).all()
    statuses = [status for job, status in finished if _job_in_scope(settings, rule, job)]
    if len(statuses) < RATE_MINIMUM_RUNS:
        return None  # one failure out of one run is a failed run, not a rate
    rate = 100.0 * statuses.count("success") / len(statuses)
    limit = rule.threshold if rule.threshold is not None else 95.0
    scope = "all jobs" if rule.scope_kind == "all" else f"{rule.scope_kind} {rule.scope_value}"
    return Finding(
        rule=rule,
        subject=f"jobs:{rule.scope_kind}:{rule.scope_value or '*'}",
        firing=rate < limit,
        message=f"{rate:.1f} % of {len(statuses)} runs of {scope} succeeded in the last "
        f"{window} min (expected at least {limit:g} %)",
        value=rate,
    )


def on_run_finished(
    settings: Settings, session: Session, job: Job, run: Run, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Evaluate the run rules after ``run`` of ``job`` finished; events to announce."""
    now = now or utcnow()
    messages: list[dict[str, Any]] = []
    for rule in rules_for(session, RUN_CONDITIONS):
        if rule.owner_id is not None and rule.owner_id != job.owner_id:
            continue  # a user's rule watches only that user's jobs
        if not _job_in_scope(settings, rule, job):
            continue
        if rule.condition == "success_rate_below":
            finding = _success_rate(settings, session, rule, now)
        else:
            finding = _run_finding(session, rule, job, run)
        if finding is not None:
            messages += apply(session, finding, now)
    return messages


def _dataset_in_scope(settings: Settings, rule: AlertRule, dataset: Dataset) -> bool:
    value = rule.scope_value or ""
    if rule.scope_kind == "all":
        return True
    if rule.scope_kind == "dataset":
        return value == dataset.name
    if rule.scope_kind == "source":
        return dataset.schema_name == settings.raw_schema(value)
    if rule.scope_kind == "tag":
        return value in (dataset.tags or [])
    return False


def _stale(settings: Settings, session: Session, rule: AlertRule, now: datetime) -> list[Finding]:
    findings = []
    for dataset in session.scalars(select(Dataset).where(Dataset.kind != "destination")):
        if not _dataset_in_scope(settings, rule, dataset):
            continue
        state = dataset.freshness(now)
        as_of = as_utc(dataset.fresh_as_of or dataset.last_loaded_at or dataset.last_built_at)
        if state == "unknown" and rule.window_minutes and as_of is not None:
            late = now - as_of > timedelta(minutes=rule.window_minutes)
            state = "stale" if late else "fresh"
        if state == "unknown":
            continue
        age = f"{(now - as_of).total_seconds() / 3600:.1f} h old" if as_of else "never refreshed"
        findings.append(
            Finding(
                rule=rule,
                subject=f"dataset:{dataset.name}",
                firing=state == "stale",
                message=f"{dataset.name} is {state} ({age})",
                link=f"/api/catalog/datasets/{dataset.id}",
            )
        )
    return findings


def _schema_changes(
    settings: Settings, session: Session, rule: AlertRule, now: datetime
) -> list[Finding]:
    """One finding per raw table whose schema changed since the rule last looked and that
    models read; recorded resolved at once (a change is an event, not a state)."""
    seen = session.scalar(select(func.max(Alert.value)).where(Alert.rule_id == rule.id)) or 0
    # Changes made before the rule existed are not news; nor are week-old ones.
    since = max(as_utc(rule.created_at), now - timedelta(days=SCHEMA_CHANGE_DAYS))
    changes = list(
        session.scalars(
            select(SchemaChange)
            .where(SchemaChange.id > seen, SchemaChange.at >= since)
            .order_by(SchemaChange.id)
        )
    )
    by_table: dict[str, list[SchemaChange]] = {}
    for change in changes:
        by_table.setdefault(f"{settings.raw_schema(change.source)}.{change.table_name}", []).append(
            change
        )
    findings = []
    for name, items in by_table.items():
        dataset = session.scalar(select(Dataset).where(Dataset.name == name))
        if dataset is None or not _dataset_in_scope(settings, rule, dataset):
            continue
        downstream = list(
            session.scalars(
                select(Dataset.name)
                .join(LineageEdge, LineageEdge.downstream_id == Dataset.id)
                .where(LineageEdge.upstream_id == dataset.id)
                .order_by(Dataset.name)
            )
        )
        if not downstream:
            continue
        described = "; ".join(
            f"{c.change} {c.column_name or ''}"
            + (f" ({c.old_type} → {c.new_type})" if c.change == "type_changed" else "")
            for c in items[:10]
        )
        findings.append(
            Finding(
                rule=rule,
                subject=f"dataset:{name}:change:{items[-1].id}",
                firing=True,
                message=f"{name} changed ({described}); read by {', '.join(downstream[:10])}",
                value=float(items[-1].id),
                link=f"/api/catalog/datasets/{dataset.id}",
                resolve_at_once=True,
            )
        )
    return findings


def evaluate_periodic(
    settings: Settings, session: Session, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Evaluate the rules that are not tied to one run; events to announce."""
    now = now or utcnow()
    messages: list[dict[str, Any]] = []
    for rule in rules_for(session, CATALOG_CONDITIONS | {"success_rate_below"}):
        if rule.condition == "stale":
            findings = _stale(settings, session, rule, now)
        elif rule.condition == "schema_change":
            findings = _schema_changes(settings, session, rule, now)
        else:
            found = _success_rate(settings, session, rule, now)
            findings = [found] if found is not None else []
        for finding in findings:
            messages += apply(session, finding, now)
    return messages


def tick(settings: Settings, *, periodic: bool) -> None:
    """One pass of the runs sensor's alert work: the periodic rules (and forgetting
    week-old events) when ``periodic``, then the outbox (a few messages: the API's loop
    sends the rest)."""
    from headwater.db import session_scope
    from headwater.events import announce, prune
    from headwater.notify.dispatch import deliver_pending

    if periodic:
        with session_scope(settings.metadata_url) as session:
            messages = evaluate_periodic(settings, session)
            prune(session)  # live events are kept a week, for clients that resume
        announce(settings.metadata_url, settings.redis_url, messages)
    deliver_pending(settings, limit=SENSOR_DELIVERIES)
