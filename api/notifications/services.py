"""Notifications and channels: what the API reads and changes.

A user sees and marks only their own notifications. Channels are the admins': their
URLs are encrypted at rest and only ever answered masked.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.audit.services import Actor, record
from api.auth.schemas import CurrentUser
from api.errors import Conflict, InvalidInput, NotFound
from api.notifications.schemas import (
    AlertOut,
    ChannelIn,
    ChannelOut,
    ChannelUpdate,
    NotificationOut,
    Recipients,
    RuleIn,
    RuleOut,
    RuleUpdate,
)
from api.schemas import Page
from api.users.models import Role
from headwater.db import as_utc, utcnow
from headwater.notify.alerting import SERVICE_CONDITIONS
from headwater.notify.channels import check_url, mask_url
from headwater.notify.models import Alert, AlertRule, Channel, Notification
from headwater.secrets import SecretBox
from orchestration.models import Job


def notification_out(row: Notification) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        title=row.title,
        body=row.body,
        level=row.level,
        subject=row.subject,
        link=row.link,
        alert_id=row.alert_id,
        created_at=as_utc(row.created_at),
        read_at=as_utc(row.read_at),
        read=row.read_at is not None,
    )


def list_notifications(
    session: Session, user: CurrentUser, *, unread_only: bool, limit: int, offset: int
) -> Page[NotificationOut]:
    """The user's notifications: unread first, newest first within each."""
    conditions = [Notification.user_id == user.id]
    if unread_only:
        conditions.append(Notification.read_at.is_(None))
    total = session.scalar(select(func.count()).select_from(Notification).where(*conditions))
    unread_first = case((Notification.read_at.is_(None), 0), else_=1)
    rows = session.scalars(
        select(Notification)
        .where(*conditions)
        .order_by(unread_first, Notification.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page([notification_out(r) for r in rows], total=total or 0, limit=limit, offset=offset)


def unread_count(session: Session, user: CurrentUser) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        )
        or 0
    )


def mark_read(session: Session, user: CurrentUser, notification_id: int) -> NotificationOut:
    """Mark one of the user's notifications read (again: nothing changes).

    Raises:
        NotFound: no such notification of this user.
    """
    row = session.get(Notification, notification_id)
    if row is None or row.user_id != user.id:
        raise NotFound(f"No notification {notification_id}")
    if row.read_at is None:
        row.read_at = utcnow()
    return notification_out(row)


def mark_all_read(session: Session, user: CurrentUser) -> int:
    result = session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def channel_out(channel: Channel) -> ChannelOut:
    return ChannelOut(
        id=channel.id,
        name=channel.name,
        kind=channel.kind,
        url=channel.url_masked,
        enabled=channel.enabled,
        rate_limit_per_hour=channel.rate_limit_per_hour,
        created_at=as_utc(channel.created_at),
        updated_at=as_utc(channel.updated_at),
        last_sent_at=as_utc(channel.last_sent_at),
        last_error=channel.last_error,
    )


def _snapshot(channel: Channel) -> dict[str, Any]:
    return {
        "name": channel.name,
        "kind": channel.kind,
        "url": channel.url_masked,
        "enabled": channel.enabled,
        "rateLimitPerHour": channel.rate_limit_per_hour,
    }


def list_channels(session: Session, *, limit: int, offset: int) -> Page[ChannelOut]:
    total = session.scalar(select(func.count()).select_from(Channel))
    rows = session.scalars(select(Channel).order_by(Channel.name).limit(limit).offset(offset))
    return Page([channel_out(c) for c in rows], total=total or 0, limit=limit, offset=offset)


def get_channel(session: Session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise NotFound(f"No notification channel {channel_id}")
    return channel


def _flush(session: Session, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"A notification channel named {name!r} already exists") from None


def create_channel(session: Session, box: SecretBox, actor: Actor, data: ChannelIn) -> ChannelOut:
    """Store a channel (its URL checked by apprise, encrypted, kept masked beside).

    Raises:
        ChannelInvalid: apprise cannot use the URL.  Conflict: the name is taken.
    """
    kind = check_url(data.url)
    if session.scalar(select(Channel.id).where(Channel.name == data.name)) is not None:
        raise Conflict(f"A notification channel named {data.name!r} already exists")
    channel = Channel(
        name=data.name,
        kind=kind,
        url_encrypted=box.encrypt(data.url),
        url_masked=mask_url(data.url),
        enabled=data.enabled,
        rate_limit_per_hour=data.rate_limit_per_hour,
        created_by=actor.user_id,
    )
    session.add(channel)
    _flush(session, data.name)
    record(
        session,
        actor,
        "channel.create",
        "notification_channel",
        channel.id,
        after=_snapshot(channel),
    )
    return channel_out(channel)


def update_channel(
    session: Session, box: SecretBox, actor: Actor, channel_id: int, data: ChannelUpdate
) -> ChannelOut:
    channel = get_channel(session, channel_id)
    before = _snapshot(channel)
    if not isinstance(data.url, msgspec.UnsetType):
        channel.kind = check_url(data.url)
        channel.url_encrypted = box.encrypt(data.url)
        channel.url_masked = mask_url(data.url)
        channel.last_error = None
    if not isinstance(data.name, msgspec.UnsetType) and data.name != channel.name:
        if session.scalar(select(Channel.id).where(Channel.name == data.name)) is not None:
            raise Conflict(f"A notification channel named {data.name!r} already exists")
        channel.name = data.name
    if not isinstance(data.enabled, msgspec.UnsetType):
        channel.enabled = data.enabled
    if not isinstance(data.rate_limit_per_hour, msgspec.UnsetType):
        channel.rate_limit_per_hour = data.rate_limit_per_hour
    _flush(session, channel.name)
    record(
        session,
        actor,
        "channel.update",
        "notification_channel",
        channel.id,
        before=before,
        after=_snapshot(channel),
    )
    return channel_out(channel)


def delete_channel(session: Session, actor: Actor, channel_id: int) -> None:
    channel = get_channel(session, channel_id)
    record(
        session,
        actor,
        "channel.delete",
        "notification_channel",
        channel.id,
        before=_snapshot(channel),
    )
    session.delete(channel)


# Alert rules and alerts ------------------------------------------------------------

THRESHOLD_REQUIRED = {
    "duration_above": "seconds",
    "rows_below": "rows",
    "success_rate_below": "a percentage",
    "cache_hit_rate_below": "a percentage",
    "api_error_rate_above": "a percentage",
    "api_p95_above": "milliseconds",
}
PERCENT = {"success_rate_below", "cache_hit_rate_below", "api_error_rate_above"}


def _is_admin(user: CurrentUser) -> bool:
    return user.role == Role.ADMIN.value


def rule_out(rule: AlertRule) -> RuleOut:
    wanted = rule.recipients or {}
    return RuleOut(
        id=rule.id,
        name=rule.name,
        condition=rule.condition,
        scope=rule.scope_kind,
        scope_value=rule.scope_value,
        threshold=rule.threshold,
        window_minutes=rule.window_minutes,
        channel_ids=list(rule.channel_ids or []),
        in_app=rule.in_app,
        recipients=Recipients(
            owner=bool(wanted.get("owner")),
            roles=list(wanted.get("roles") or []),
            users=list(wanted.get("users") or []),
        ),
        quiet_minutes=rule.quiet_minutes,
        enabled=rule.enabled,
        owner_id=rule.owner_id,
        builtin=rule.builtin,
        created_at=as_utc(rule.created_at),
        updated_at=as_utc(rule.updated_at),
    )


def _rule_snapshot(rule: AlertRule) -> dict[str, Any]:
    return msgspec.to_builtins(rule_out(rule))  # type: ignore[no-any-return]


def _visible_rule(user: CurrentUser) -> ColumnElement[bool]:
    return AlertRule.owner_id == user.id


def list_rules(session: Session, user: CurrentUser, *, limit: int, offset: int) -> Page[RuleOut]:
    """Admins see every rule; a user their own."""
    conditions = [] if _is_admin(user) else [_visible_rule(user)]
    total = session.scalar(select(func.count()).select_from(AlertRule).where(*conditions))
    rows = session.scalars(
        select(AlertRule).where(*conditions).order_by(AlertRule.id).limit(limit).offset(offset)
    )
    return Page([rule_out(r) for r in rows], total=total or 0, limit=limit, offset=offset)


def get_rule(session: Session, user: CurrentUser, rule_id: int) -> AlertRule:
    rule = session.get(AlertRule, rule_id)
    if rule is None or (not _is_admin(user) and rule.owner_id != user.id):
        raise NotFound(f"No alert rule {rule_id}")
    return rule


def _check_rule(
    session: Session, user: CurrentUser, rule: AlertRule, *, channels_changed: bool = True
) -> None:
    """Refuse a rule that cannot work, or that its author may not make.

    Raises:
        InvalidInput: with the field at fault.
    """
    condition, scope = rule.condition, rule.scope_kind
    if condition in SERVICE_CONDITIONS and scope != "all":
        raise InvalidInput(f"scope: {condition} watches the API itself: use scope 'all'")
    if scope == "all" and rule.scope_value:
        raise InvalidInput("scopeValue: a rule of scope 'all' takes no scopeValue")
    if scope != "all" and not rule.scope_value:
        raise InvalidInput(f"scopeValue: a rule of scope {scope!r} names what it watches")
    if condition in ("stale", "schema_change") and scope == "job":
        raise InvalidInput(f"scope: {condition} watches datasets: use all, source, dataset or tag")
    if condition in THRESHOLD_REQUIRED and rule.threshold is None:
        raise InvalidInput(f"threshold: {condition} needs one ({THRESHOLD_REQUIRED[condition]})")
    if condition in PERCENT and rule.threshold is not None and rule.threshold > 100:
        raise InvalidInput(f"threshold: {condition} takes a percentage (0 to 100)")
    if scope == "job":
        try:
            job_id = int(rule.scope_value or "")
        except ValueError:
            raise InvalidInput("scopeValue: a job rule names the job's id") from None
        job = session.get(Job, job_id)
        if job is None or (not _is_admin(user) and job.owner_id != user.id):
            raise InvalidInput(f"scopeValue: no job {job_id} of yours")
    if not _is_admin(user):
        if scope != "job":
            raise InvalidInput("scope: you may watch your own jobs (scope 'job')")
        if rule.channel_ids and channels_changed:
            raise InvalidInput("channelIds: only admins send alerts to channels")
    if not channels_changed:
        return
    missing = set(rule.channel_ids or []) - set(
        session.scalars(select(Channel.id).where(Channel.id.in_(rule.channel_ids or [])))
    )
    if missing:
        raise InvalidInput(f"channelIds: no channel {', '.join(map(str, sorted(missing)))}")


def create_rule(session: Session, user: CurrentUser, actor: Actor, data: RuleIn) -> RuleOut:
    rule = AlertRule(
        name=data.name,
        owner_id=None if _is_admin(user) else user.id,
        scope_kind=data.scope,
        scope_value=data.scope_value,
        condition=data.condition,
        threshold=data.threshold,
        window_minutes=data.window_minutes,
        channel_ids=sorted(set(data.channel_ids)),
        in_app=data.in_app,
        recipients=msgspec.to_builtins(data.recipients),
        quiet_minutes=data.quiet_minutes,
        enabled=data.enabled,
    )
    _check_rule(session, user, rule)
    session.add(rule)
    session.flush()
    record(session, actor, "alert_rule.create", "alert_rule", rule.id, after=_rule_snapshot(rule))
    return rule_out(rule)


def update_rule(
    session: Session, user: CurrentUser, actor: Actor, rule_id: int, data: RuleUpdate
) -> RuleOut:
    rule = get_rule(session, user, rule_id)
    before = _rule_snapshot(rule)
    for field_name in (
        "name",
        "threshold",
        "window_minutes",
        "in_app",
        "quiet_minutes",
        "enabled",
    ):
        value = getattr(data, field_name)
        if not isinstance(value, msgspec.UnsetType):
            setattr(rule, field_name, value)
    if not isinstance(data.channel_ids, msgspec.UnsetType):
        rule.channel_ids = sorted(set(data.channel_ids))
    if not isinstance(data.recipients, msgspec.UnsetType):
        rule.recipients = msgspec.to_builtins(data.recipients)
    _check_rule(
        session, user, rule, channels_changed=not isinstance(data.channel_ids, msgspec.UnsetType)
    )
    session.flush()
    record(
        session,
        actor,
        "alert_rule.update",
        "alert_rule",
        rule.id,
        before=before,
        after=_rule_snapshot(rule),
    )
    return rule_out(rule)


def delete_rule(session: Session, user: CurrentUser, actor: Actor, rule_id: int) -> None:
    rule = get_rule(session, user, rule_id)
    if rule.builtin:
        raise Conflict(
            f"Alert rule {rule_id} is one of Headwater's defaults", hint="disable it instead"
        )
    record(session, actor, "alert_rule.delete", "alert_rule", rule.id, before=_rule_snapshot(rule))
    session.delete(rule)


def alert_out(alert: Alert, rule_name: str) -> AlertOut:
    return AlertOut(
        id=alert.id,
        rule_id=alert.rule_id,
        rule_name=rule_name,
        subject=alert.subject,
        state=alert.state,
        message=alert.message,
        value=alert.value,
        run_id=alert.run_id,
        fired_at=as_utc(alert.fired_at),
        resolved_at=as_utc(alert.resolved_at),
    )


def list_alerts(
    session: Session,
    user: CurrentUser,
    *,
    state: str | None,
    rule_id: int | None,
    limit: int,
    offset: int,
) -> Page[AlertOut]:
    """Fired alerts, newest first: admins see all; a user those of their rules and of
    their jobs."""
    conditions: list[ColumnElement[bool]] = []
    if not _is_admin(user):
        own_jobs = [
            f"job:{i}" for i in session.scalars(select(Job.id).where(Job.owner_id == user.id))
        ]
        conditions.append(or_(AlertRule.owner_id == user.id, Alert.subject.in_(own_jobs)))
    if state is not None:
        conditions.append(Alert.state == state)
    if rule_id is not None:
        conditions.append(Alert.rule_id == rule_id)
    joined = select(Alert, AlertRule.name).join(AlertRule, AlertRule.id == Alert.rule_id)
    total = session.scalar(
        select(func.count())
        .select_from(Alert)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(*conditions)
    )
    rows = session.execute(
        joined.where(*conditions).order_by(Alert.id.desc()).limit(limit).offset(offset)
    ).all()
    return Page(
        [alert_out(alert, name) for alert, name in rows],
        total=total or 0,
        limit=limit,
        offset=offset,
    )
