"""Firing and recovering alerts: the mechanics every condition shares.

A condition's evaluation (runs in ``orchestration/alerts.py``, the API's own metrics in
``api/notifications/monitor.py``) ends in a :class:`Finding`: for one rule and one
subject (``job:12``, ``dataset:marts.orders``, ``api``), whether the condition holds
now. :func:`apply` turns findings into alerts:

- one open alert per rule and subject (``alerts.open_key`` is unique), so a condition
  that keeps holding fires once;
- when it stops holding, the alert is resolved and one recovery message goes out;
- a quiet period keeps a rule from firing again for a subject soon after it last did;
- the recipients get an in-app notification, the rule's channels a message through the
  outbox (sent once, retried with backoff, rate-limited per channel: see dispatch).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, ColumnElement, Integer, String, column, or_, select, table
from sqlalchemy.exc import IntegrityError

from headwater.db import as_utc, utcnow
from headwater.notify.dispatch import enqueue, notify_users
from headwater.notify.models import Alert, AlertRule, Channel

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

USERS = table("users", column("id", Integer), column("role", String), column("is_active", Boolean))
"""The accounts table (the API's), read here only to find who receives an alert."""

RUN_CONDITIONS = frozenset(
    {
        "run_failed",
        "duration_above",
        "rows_below",
        "rows_outside_band",
        "success_rate_below",
        "test_failed",
    }
)
CATALOG_CONDITIONS = frozenset({"stale", "schema_change"})
SERVICE_CONDITIONS = frozenset({"cache_hit_rate_below", "api_error_rate_above", "api_p95_above"})


@dataclass(frozen=True)
class DefaultRule:
    key: str
    name: str
    condition: str
    threshold: float | None
    window_minutes: int | None
    recipients: dict[str, Any]


DEFAULT_RULES = (
    DefaultRule("job_failed", "A job failed", "run_failed", None, None, {"owner": True}),
    DefaultRule(
        "job_success_rate",
        "Job success rate below 95 % over 24 h",
        "success_rate_below",
        95.0,
        24 * 60,
        {"roles": ["admin"]},
    ),
    DefaultRule(
        "cache_hit_rate",
        "Cache hit rate below 90 % over 15 min",
        "cache_hit_rate_below",
        90.0,
        15,
        {"roles": ["admin"]},
    ),
    DefaultRule(
        "api_error_rate",
        "API error rate above 1 % over 15 min",
        "api_error_rate_above",
        1.0,
        15,
        {"roles": ["admin"]},
    ),
    DefaultRule(
        "api_p95_latency",
        "API p95 latency above 500 ms over 15 min",
        "api_p95_above",
        500.0,
        15,
        {"roles": ["admin"]},
    ),
)
"""Created on first start (``headwater init``, the API's start); edit or disable them."""


def ensure_default_rules(session: Session) -> int:
    """Create the default rules that do not exist yet; how many were created."""
    present = set(session.scalars(select(AlertRule.builtin).where(AlertRule.builtin.is_not(None))))
    created = 0
    for rule in DEFAULT_RULES:
        if rule.key in present:
            continue
        try:
            with session.begin_nested():
                session.add(
                    AlertRule(
                        name=rule.name,
                        builtin=rule.key,
                        scope_kind="all",
                        condition=rule.condition,
                        threshold=rule.threshold,
                        window_minutes=rule.window_minutes,
                        channel_ids=[],
                        in_app=True,
                        recipients=rule.recipients,
                        quiet_minutes=0,
                        enabled=True,
                    )
                )
            created += 1
        except IntegrityError:  # another process created it at the same moment
            continue
    return created


@dataclass(frozen=True)
class Finding:
    """Whether ``rule``'s condition holds for ``subject`` now."""

    rule: AlertRule
    subject: str
    firing: bool
    message: str
    """What is wrong (when firing), in one line a person can act on."""
    value: float | None = None
    run_id: str | None = None
    owner_id: int | None = None
    """The owner of the job concerned, for rules addressed to the owner."""
    link: str | None = None
    resolve_at_once: bool = False
    """An event rather than a state (a schema change): recorded as resolved at once,
    with no recovery message."""


def open_key(rule_id: int, subject: str) -> str:
    return f"{rule_id}:{subject}"[:400]


def recipients(session: Session, rule: AlertRule, owner_id: int | None) -> list[int]:
    """The active accounts ``rule`` addresses: the job's owner, roles, named users."""
    wanted = rule.recipients or {}
    roles = [str(r) for r in wanted.get("roles") or []]
    ids = [int(u) for u in wanted.get("users") or []]
    if wanted.get("owner") and owner_id is not None:
        ids.append(owner_id)
    if rule.owner_id is not None:
        # A user's own rule reaches only that user, whatever it says.
        ids = [rule.owner_id] if ids or roles else []
        roles = []
    conditions: list[ColumnElement[bool]] = []
    if ids:
        conditions.append(USERS.c.id.in_(ids))
    if roles:
        conditions.append(USERS.c.role.in_(roles))
    if not conditions:
        return []
    condition = or_(*conditions)
    found = session.execute(
        select(USERS.c.id).where(condition, USERS.c.is_active.is_(True)).order_by(USERS.c.id)
    )
    return [int(row[0]) for row in found]


def apply(session: Session, finding: Finding, now: datetime | None = None) -> list[dict[str, Any]]:
    """Fire, keep or resolve the alert of ``finding``'s rule and subject, in ``session``'s
    transaction; the ``notification`` events to announce once committed."""
    now = now or utcnow()
    rule = finding.rule
    key = open_key(rule.id, finding.subject)
    current = session.scalar(select(Alert).where(Alert.open_key == key))
    if not finding.firing:
        if current is None:
            return []
        current.state = "resolved"
        current.resolved_at = now
        current.open_key = None
        return _tell(session, rule, current, finding, fired=False)
    if current is not None:
        return []
    if rule.quiet_minutes:
        last = session.scalar(
            select(Alert.fired_at)
            .where(Alert.rule_id == rule.id, Alert.subject == finding.subject)
            .order_by(Alert.fired_at.desc())
            .limit(1)
        )
        if last is not None and as_utc(last) > now - timedelta(minutes=rule.quiet_minutes):
            return []
    alert = Alert(
        rule_id=rule.id,
        subject=finding.subject[:300],
        state="resolved" if finding.resolve_at_once else "firing",
        # Kept on an event resolved at once too: its subject names the event, so the key
        # is never reused, and two processes evaluating together cannot both record it.
        open_key=key,
        message=finding.message,
        value=finding.value,
        run_id=finding.run_id,
        fired_at=now,
        resolved_at=now if finding.resolve_at_once else None,
    )
    try:
        with session.begin_nested():
            session.add(alert)
    except IntegrityError:  # another process opened it a moment ago
        return []
    return _tell(session, rule, alert, finding, fired=True)


def _tell(
    session: Session, rule: AlertRule, alert: Alert, finding: Finding, *, fired: bool
) -> list[dict[str, Any]]:
    if fired:
        title = f"{rule.name}: {finding.message}"
        body = f"Alert {alert.id} ({rule.condition}) on {alert.subject}: {finding.message}"
        level = "error"
    else:
        title = f"Resolved: {rule.name} ({alert.subject})"
        body = f"Alert {alert.id} on {alert.subject} recovered: {finding.message}"
        level = "info"
    state = "fired" if fired else "resolved"
    messages: list[dict[str, Any]] = []
    if rule.in_app:
        users = recipients(session, rule, finding.owner_id)
        messages = notify_users(
            session,
            users,
            title=title,
            body=body,
            level=level,
            subject=alert.subject,
            link=finding.link,
            alert_id=alert.id,
            key=f"alert:{alert.id}:{state}",
        )
    if rule.channel_ids:
        channels = session.scalars(
            select(Channel.id).where(Channel.id.in_(rule.channel_ids), Channel.enabled.is_(True))
        )
        for channel_id in channels:
            enqueue(
                session,
                channel_id,
                title=title,
                body=body,
                key=f"alert:{alert.id}:{state}:channel:{channel_id}",
                alert_id=alert.id,
            )
    return messages


def rules_for(session: Session, conditions: frozenset[str]) -> list[AlertRule]:
    """The enabled rules of ``conditions``."""
    return list(
        session.scalars(
            select(AlertRule)
            .where(AlertRule.enabled.is_(True), AlertRule.condition.in_(sorted(conditions)))
            .order_by(AlertRule.id)
        )
    )
