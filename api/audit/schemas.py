"""Wire types of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class AuditEntryOut(msgspec.Struct, rename="camel"):
    id: int
    at: datetime
    actor_id: int | None
    actor_email: str | None
    action: str
    """``user.create``, ``user.set_role``, ``auth.login``, ``auth.logout``…"""
    object_type: str
    object_id: str | None
    client_address: str | None
    request_id: str | None
    before: dict[str, Any] | None
    """The object before the change, secrets masked."""
    after: dict[str, Any] | None
