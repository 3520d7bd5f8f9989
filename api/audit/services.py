"""Record every change (who, what, when, from where, before and after) and read it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from api.audit.models import AuditEntry
from api.times import as_utc

SECRET_FIELDS = frozenset({"password", "password_hash", "token", "secret", "credentials"})
MASK = "***"


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a signed-in user (API), or the operator (CLI)."""

    user_id: int | None
    email: str | None
    client_address: str | None = None
    request_id: str | None = None


def masked(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``values`` with every secret-looking field replaced by ``***``."""
    if values is None:
        return None
    return {
        key: MASK if any(part in key.lower() for part in SECRET_FIELDS) else value
        for key, value in values.items()
    }


def record(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object = None,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Add an audit entry to ``session``: committed with the change, or not at all."""
    session.add(
        AuditEntry(
            actor_id=actor.user_id,
            actor_email=actor.email,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            client_address=actor.client_address,
            request_id=actor.request_id,
            before=masked(before),
            after=masked(after),
        )
    )


def list_entries(
    session: Session,
    *,
    limit: int,
    offset: int,
    actor_id: int | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AuditEntry], int]:
    """One page of entries, newest first, and the number of matches."""
    conditions: list[ColumnElement[bool]] = []
    if actor_id is not None:
        conditions.append(AuditEntry.actor_id == actor_id)
    if action:
        conditions.append(AuditEntry.action == action)
    if object_type:
        conditions.append(AuditEntry.object_type == object_type)
    if object_id:
        conditions.append(AuditEntry.object_id == object_id)
    # Compared in UTC, as stored: SQLite would otherwise drop the offset and compare clocks.
    if since is not None:
        conditions.append(AuditEntry.at >= as_utc(since))
    if until is not None:
        conditions.append(AuditEntry.at < as_utc(until))
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    rows = session.scalars(
        select(AuditEntry)
        .where(*conditions)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total
