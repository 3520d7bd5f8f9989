"""Notifications and channels: what the API reads and changes.

A user sees and marks only their own notifications. Channels are the admins': their
URLs are encrypted at rest and only ever answered masked.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.audit.services import Actor, record
from api.auth.schemas import CurrentUser
from api.errors import Conflict, NotFound
from api.notifications.schemas import (
    ChannelIn,
    ChannelOut,
    ChannelUpdate,
    NotificationOut,
)
from api.schemas import Page
from headwater.db import as_utc, utcnow
from headwater.notify.channels import check_url, mask_url
from headwater.notify.models import Channel, Notification
from headwater.secrets import SecretBox


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
