"""Live events: recorded in the metadata store, announced over Redis pub/sub.

Any process publishes (the Dagster daemon's sensor, a run's own steps, the command
line, the API): :func:`publish` writes the event to the ``events`` table, which gives
it its id and, through ``dedupe_key``, makes publishing the same fact twice a no-op,
then announces it on the Redis channel when Redis is configured. Each API process
listens on that channel and also reads the table for what it has not seen (every
fraction of a second without Redis, every few seconds with it), so events reach
clients connected to any replica, with or without Redis, and a client that
reconnects asks for what it missed since an event id.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Integer, String, and_, delete, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from headwater.db import Base, insert_for, session_scope, utcnow

log = logging.getLogger("headwater.events")

CHANNEL_PREFIX = "headwater:events:"
REDIS_TIMEOUT_SECONDS = 0.25
KEEP_DAYS = 7


class Event(Base):
    """One published event; ``id`` is what clients resume from."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    job_id: Mapped[int | None] = mapped_column(Integer)
    owner_id: Mapped[int | None] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    user_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


def message(event: Event) -> dict[str, Any]:
    """The event as it travels (Redis, then clients): its audience beside its data."""
    return {
        "id": event.id,
        "kind": event.kind,
        "jobId": event.job_id,
        "ownerId": event.owner_id,
        "shared": event.shared,
        "userId": event.user_id,
        "data": event.payload,
    }


def record(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    key: str | None = None,
    job_id: int | None = None,
    owner_id: int | None = None,
    shared: bool = False,
    user_id: int | None = None,
) -> dict[str, Any] | None:
    """Write one event in ``session``; its message, or None when ``key`` was recorded
    before (the fact was already published, by this process or another)."""
    values = {
        "kind": kind,
        "dedupe_key": key,
        "job_id": job_id,
        "owner_id": owner_id,
        "shared": shared,
        "user_id": user_id,
        "payload": payload,
        "created_at": utcnow(),
    }
    if key is not None and session.scalar(select(Event.id).where(Event.dedupe_key == key)):
        return None  # asked first: on PostgreSQL a conflicting insert still uses up an id
    statement = insert_for(session, Event).values(**values)
    if key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    new_id = session.scalar(statement.returning(Event.id))
    if new_id is None:
        return None
    return message(Event(id=new_id, **values))


def channel(metadata_url: str) -> str:
    """The Redis channel of one installation: processes sharing a metadata store share
    it (event ids are that store's), others sharing the Redis server do not."""
    from sqlalchemy.engine import make_url

    from headwater.db import normalize_url

    identity = make_url(normalize_url(metadata_url)).render_as_string(hide_password=True)
    return CHANNEL_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:16]


def announce(metadata_url: str, redis_url: str | None, messages: list[dict[str, Any]]) -> None:
    """Tell the API processes listening on Redis; without Redis (or with it down) they
    find the events in the table a moment later."""
    if not redis_url or not messages:
        return
    try:
        client = _redis(redis_url)
        name = channel(metadata_url)
        with client.pipeline(transaction=False) as pipe:
            for item in messages:
                pipe.publish(name, json.dumps(item, separators=(",", ":"), default=str))
            pipe.execute()
    except Exception as exc:  # Redis down: the table still has them
        log.warning(
            "events not announced on Redis (%s): API processes read them from the store",
            type(exc).__name__,
        )


def publish(
    metadata_url: str,
    redis_url: str | None,
    kind: str,
    payload: dict[str, Any],
    **audience: Any,
) -> dict[str, Any] | None:
    """Record and announce one event (see :func:`record` for ``audience``); its message,
    or None when it had been published already."""
    with session_scope(metadata_url) as session:
        item = record(session, kind, payload, **audience)
    if item is not None:
        announce(metadata_url, redis_url, [item])
    return item


def since(
    session: Session,
    event_id: int,
    limit: int,
    also: tuple[int, ...] = (),
    before: int | None = None,
) -> list[dict[str, Any]]:
    """The events after ``event_id`` (and those of ids ``also``) and before ``before``,
    oldest first, at most ``limit``."""
    condition = Event.id > event_id
    if also:
        condition = or_(condition, Event.id.in_(also))
    if before is not None:
        condition = and_(condition, Event.id < before)
    rows = session.scalars(select(Event).where(condition).order_by(Event.id).limit(limit))
    return [message(row) for row in rows]


def latest_id(session: Session) -> int:
    return int(session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) or 0)


def prune(session: Session, keep_days: int = KEEP_DAYS) -> int:
    """Forget events older than ``keep_days``; how many went."""
    # The newest stays whatever its age: SQLite gives the next event the highest id + 1,
    # so an emptied table would hand out ids clients and API processes have seen.
    newest = latest_id(session)
    result = session.execute(
        delete(Event).where(
            Event.created_at < utcnow() - timedelta(days=keep_days), Event.id < newest
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


@lru_cache(maxsize=4)
def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
