"""Notification dispatch: in-app notifications and the delivery outbox.

In-app: :func:`notify_users` writes one ``notifications`` row per recipient and a
``notification`` event for each, in the caller's transaction; the caller announces the
returned messages once it has committed.

Channels: :func:`enqueue` puts a message for a channel in the ``deliveries`` outbox, once
per ``key``; :func:`deliver_pending` sends what is due. It may run in several processes at
once (the Dagster sensor, the command line, the API's background loop), so a row is
claimed with a compare-and-set (``pending`` → ``sending``, only if still ``pending``)
that one process wins, and the claim is committed before anything is sent. A row found
still ``sending`` long after its claim belonged to a process that died mid-send: it may
have arrived, so it is failed, never sent again. A message is therefore sent at most
once per key; a failure is retried with exponential backoff until it goes or gives up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session

from headwater.db import as_utc, insert_for, session_scope, utcnow
from headwater.errors import HeadwaterError
from headwater.events import record
from headwater.notify.channels import (
    DEFAULT_TIMEOUT_SECONDS,
    ChannelFailed,
    ChannelInvalid,
    send,
)
from headwater.notify.models import LEVELS, Channel, Delivery, Notification
from headwater.secrets import SecretBox
from headwater.settings import Settings

log = logging.getLogger("headwater.notify")

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"

MAX_ATTEMPTS = 6
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
RATE_WINDOW = timedelta(hours=1)
RATE_RETRY = timedelta(seconds=60)
"""When a channel is full only because of messages still in flight: look again then."""
STALE_SENDING = timedelta(minutes=10)
INTERRUPTED = "interrupted while sending; not retried so it cannot arrive twice"

_KEY_CHARS = 300
_TITLE_CHARS = 300
_SUBJECT_CHARS = 300
_LINK_CHARS = 500


@dataclass
class DeliveryReport:
    """What one :func:`deliver_pending` pass did."""

    sent: int = 0
    failed: int = 0
    """Given up: out of attempts, channel disabled or deleted, or interrupted mid-send."""
    postponed: int = 0
    """Held back by the channel's hourly rate limit (not an attempt)."""
    retrying: int = 0
    """Failed this time, to be tried again after the backoff."""


@dataclass(frozen=True)
class ChannelTestResult:
    """The outcome of :func:`test_channel`: ``error`` is the channel's own, scrubbed."""

    ok: bool
    error: str | None = None


class ChannelNotFound(HeadwaterError):
    """No channel has that id."""


def notify_users(
    session: Session,
    user_ids: Sequence[int],
    *,
    title: str,
    body: str,
    level: str,
    subject: str | None = None,
    link: str | None = None,
    alert_id: int | None = None,
    key: str | None = None,
) -> list[dict[str, Any]]:
    """Give each of ``user_ids`` an in-app notification, in ``session``'s transaction.

    With ``key``, a user who already has the notification ``key`` gets nothing new
    (its row and event carry ``f"{key}:user:{user_id}"``), whichever process wrote it.

    Returns:
        The ``notification`` events written, for :func:`headwater.events.announce`
        once the caller has committed.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    created_at = utcnow()
    messages: list[dict[str, Any]] = []
    for user_id in dict.fromkeys(user_ids):  # each user once, in the order given
        dedupe_key = None if key is None else f"{key}:user:{user_id}"
        if dedupe_key is not None and len(dedupe_key) > _KEY_CHARS:
            raise ValueError(f"notification key too long ({len(dedupe_key)} > {_KEY_CHARS})")
        values = {
            "user_id": user_id,
            "title": title[:_TITLE_CHARS],
            "body": body,
            "level": level,
            "subject": None if subject is None else subject[:_SUBJECT_CHARS],
            "link": None if link is None else link[:_LINK_CHARS],
            "alert_id": alert_id,
            "dedupe_key": dedupe_key,
            "created_at": created_at,
        }
        statement = insert_for(session, Notification).values(**values)
        if dedupe_key is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
        new_id = session.scalar(statement.returning(Notification.id))
        if new_id is None:
            continue
        payload = {
            "notificationId": new_id,
            "title": values["title"],
            "body": body,
            "level": level,
            "subject": values["subject"],
            "link": values["link"],
            "alertId": alert_id,
            "createdAt": created_at.isoformat(),
        }
        message = record(session, "notification", payload, key=dedupe_key, user_id=user_id)
        if message is not None:
            messages.append(message)
    return messages


def enqueue(
    session: Session,
    channel_id: int,
    *,
    title: str,
    body: str,
    key: str,
    alert_id: int | None = None,
) -> bool:
    """Put a message for ``channel_id`` in the outbox, in ``session``'s transaction.

    Returns:
        True when queued; False when a message with ``key`` was queued before (by any
        process, whatever became of it): nothing is ever queued twice.
    """
    if len(key) > _KEY_CHARS:
        raise ValueError(f"delivery key too long ({len(key)} > {_KEY_CHARS})")
    now = utcnow()
    statement = (
        insert_for(session, Delivery)
        .values(
            dedupe_key=key,
            channel_id=channel_id,
            alert_id=alert_id,
            title=title[:_TITLE_CHARS],
            body=body,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    return session.scalar(statement.returning(Delivery.id)) is not None


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: 30 s, doubled each time, ≤ 1 h."""
    return min(BACKOFF_FIRST * (1 << min(max(attempts - 1, 0), 16)), BACKOFF_CAP)


def _rows(result: Any) -> int:
    cursor: CursorResult[Any] = result
    return int(cursor.rowcount or 0)


def _clock(now: datetime | None) -> Callable[[], datetime]:
    """The time this pass goes by: ``now`` throughout when given, else the real clock."""
    if now is None:
        return utcnow
    fixed = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    return lambda: fixed


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    channel_id: int
    title: str
    body: str
    attempts: int


def deliver_pending(
    settings: Settings, *, now: datetime | None = None, limit: int = 50
) -> DeliveryReport:
    """Send the due messages of the outbox, at most ``limit`` of them.

    Safe to run in several processes at once: each message is claimed by one of them.
    Never raises because a channel fails; its error is recorded on the message and the
    channel. ``now`` stands for the clock (tests, replays); by default the real one.
    """
    clock = _clock(now)
    report = DeliveryReport()
    url = settings.metadata_url
    report.failed += _fail_interrupted(url, clock())
    with session_scope(url) as session:
        due = list(
            session.scalars(
                select(Delivery.id)
                .where(Delivery.status == PENDING, Delivery.next_attempt_at <= clock())
                .order_by(Delivery.next_attempt_at, Delivery.id)
                .limit(limit)
            )
        )
    box: SecretBox | None = None
    for delivery_id in due:
        claimed = _claim(url, delivery_id, clock())
        if claimed is None:
            continue  # another process took it, or it is no longer due
        with session_scope(url) as session:
            channel = session.get(Channel, claimed.channel_id)
            if channel is None or not channel.enabled:
                reason = (
                    "its channel was deleted: not sent"
                    if channel is None
                    else f"channel {channel.name!r} is disabled: not sent"
                )
                _finish_failed(session, claimed, reason, clock(), give_up=True)
                report.failed += 1
                continue
            resume_at = _rate_limited(session, channel, claimed, clock())
            if resume_at is not None:
                _postpone(session, claimed, resume_at)
                report.postponed += 1
                continue
            encrypted, name = channel.url_encrypted, channel.name
        try:
            box = box or SecretBox.from_settings(settings)
            channel_url = box.decrypt(encrypted, f"the URL of channel {name!r}")
            send(channel_url, claimed.title, claimed.body, timeout=DEFAULT_TIMEOUT_SECONDS)
        except ChannelInvalid as exc:  # apprise no longer accepts the stored URL
            outcome = _record_failure(url, claimed, str(exc), clock(), give_up=True)
        except HeadwaterError as exc:  # ChannelFailed, SecretsError: worth another try
            outcome = _record_failure(url, claimed, str(exc), clock(), give_up=False)
        except Exception as exc:  # apprise itself broke; its text may hold the URL
            log.error("delivery %s: apprise raised %s", delivery_id, type(exc).__name__)
            error = f"apprise failed unexpectedly ({type(exc).__name__})"
            outcome = _record_failure(url, claimed, error, clock(), give_up=False)
        else:
            _record_sent(url, claimed, clock())
            report.sent += 1
            continue
        if outcome == FAILED:
            report.failed += 1
        else:
            report.retrying += 1
    return report


def _fail_interrupted(url: str, now: datetime) -> int:
    """Fail the rows a process claimed and never finished (it died mid-send)."""
    with session_scope(url) as session:
        result = session.execute(
            update(Delivery)
            .where(Delivery.status == SENDING, Delivery.claimed_at < now - STALE_SENDING)
            .values(status=FAILED, attempts=Delivery.attempts + 1, last_error=INTERRUPTED)
            .execution_options(synchronize_session=False)
        )
        count = _rows(result)
    if count:
        log.warning("%d deliveries were interrupted while sending: failed, not resent", count)
    return count


def _claim(url: str, delivery_id: int, now: datetime) -> _Claimed | None:
    """Take ``delivery_id`` for this process (committed before returning), or None when
    another process has it or it is no longer due."""
    with session_scope(url) as session:
        result = session.execute(
            update(Delivery)
            .where(
                Delivery.id == delivery_id,
                Delivery.status == PENDING,
                Delivery.next_attempt_at <= now,
            )
            .values(status=SENDING, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
        if _rows(result) != 1:
            return None
        row = session.execute(
            select(Delivery.channel_id, Delivery.title, Delivery.body, Delivery.attempts).where(
                Delivery.id == delivery_id
            )
        ).one()
    return _Claimed(delivery_id, row.channel_id, row.title, row.body, row.attempts)


def _rate_limited(
    session: Session, channel: Channel, claimed: _Claimed, now: datetime
) -> datetime | None:
    """When the channel may send again, or None when it may send now.

    Counts what it sent in the trailing hour and what other processes are sending to it
    right now, so processes running at once never exceed the limit together. A limit
    of 0 or less means no limit.
    """
    allowed = channel.rate_limit_per_hour
    if allowed <= 0:
        return None
    since = now - RATE_WINDOW
    # One statement, so one snapshot: read apart, a message that went from sending to
    # sent between the two reads was counted in neither, and the limit was passed.
    rows = session.execute(
        select(Delivery.status, Delivery.sent_at)
        .where(
            Delivery.channel_id == channel.id,
            or_(
                and_(Delivery.status == SENT, Delivery.sent_at > since),
                and_(Delivery.status == SENDING, Delivery.id != claimed.delivery_id),
            ),
        )
        .order_by(Delivery.sent_at)
    ).all()
    sent: list[datetime] = [row.sent_at for row in rows if row.status == SENT]
    in_flight = len(rows) - len(sent)
    if len(sent) + in_flight < allowed:
        return None
    if len(sent) >= allowed:  # the window frees a place when its oldest send leaves it
        oldest = as_utc(sent[len(sent) - allowed])
        if oldest is not None:
            return max(oldest + RATE_WINDOW, now + timedelta(seconds=1))
    return now + RATE_RETRY


def _postpone(session: Session, claimed: _Claimed, resume_at: datetime) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.id == claimed.delivery_id, Delivery.status == SENDING)
        .values(status=PENDING, claimed_at=None, next_attempt_at=resume_at)
        .execution_options(synchronize_session=False)
    )


def _finish_failed(
    session: Session, claimed: _Claimed, error: str, now: datetime, *, give_up: bool
) -> str:
    """Record a failed attempt; the status it leaves the message in."""
    attempts = claimed.attempts + 1
    status = FAILED if give_up or attempts >= MAX_ATTEMPTS else PENDING
    values: dict[str, Any] = {
        "status": status,
        "attempts": attempts,
        "last_error": error,
        "claimed_at": None,
    }
    if status == PENDING:
        values["next_attempt_at"] = now + backoff(attempts)
    session.execute(
        update(Delivery)
        .where(Delivery.id == claimed.delivery_id, Delivery.status == SENDING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return status


def _record_failure(
    url: str, claimed: _Claimed, error: str, now: datetime, *, give_up: bool
) -> str:
    with session_scope(url) as session:
        status = _finish_failed(session, claimed, error, now, give_up=give_up)
        session.execute(
            update(Channel)
            .where(Channel.id == claimed.channel_id)
            .values(last_error=error)
            .execution_options(synchronize_session=False)
        )
    log.warning(
        "delivery %s to channel %s failed (attempt %d, %s): %s",
        claimed.delivery_id,
        claimed.channel_id,
        claimed.attempts + 1,
        "given up" if status == FAILED else "will retry",
        error,
    )
    return status


def _record_sent(url: str, claimed: _Claimed, now: datetime) -> None:
    with session_scope(url) as session:
        # By id alone: it went, whatever another process concluded meanwhile.
        session.execute(
            update(Delivery)
            .where(Delivery.id == claimed.delivery_id)
            .values(
                status=SENT,
                attempts=claimed.attempts + 1,
                sent_at=now,
                claimed_at=None,
                last_error=None,
            )
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(Channel)
            .where(Channel.id == claimed.channel_id)
            .values(last_sent_at=now, last_error=None)
            .execution_options(synchronize_session=False)
        )


TEST_TITLE = "Headwater test message"
TEST_BODY = "If you can read this, Headwater can reach this channel."


def test_channel(
    settings: Settings,
    channel_id_or_url: int | str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> ChannelTestResult:
    """Send a test message now, outside the outbox (nothing is queued or recorded).

    ``channel_id_or_url`` is a stored channel's id (sent even when it is disabled, so it
    can be tried before it is enabled) or an apprise URL not stored yet.

    Raises:
        ChannelNotFound: no channel has that id.
    """
    if isinstance(channel_id_or_url, int):
        with session_scope(settings.metadata_url) as session:
            channel = session.get(Channel, channel_id_or_url)
            if channel is None:
                raise ChannelNotFound(f"no channel has id {channel_id_or_url}")
            encrypted, name = channel.url_encrypted, channel.name
        try:
            url = SecretBox.from_settings(settings).decrypt(
                encrypted, f"the URL of channel {name!r}"
            )
        except HeadwaterError as exc:
            return ChannelTestResult(ok=False, error=str(exc))
    else:
        url = channel_id_or_url
    try:
        send(url, TEST_TITLE, TEST_BODY, timeout=timeout)
    except (ChannelFailed, ChannelInvalid) as exc:
        return ChannelTestResult(ok=False, error=str(exc))
    return ChannelTestResult(ok=True)


test_channel.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
