"""``/api/audit-log``: every change, newest first (admin)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller
from litestar.params import Parameter
from sqlalchemy.orm import Session

from api.audit import services
from api.audit.models import AuditEntry
from api.audit.schemas import AuditEntryOut
from api.auth.guards import requires_admin
from api.db import Database
from api.errors import InvalidInput
from api.openapi import error_responses
from api.routing import get
from api.schemas import NO_NUL, Page, bounded
from headwater.db import as_utc

MAX_PAGE_SIZE = 500


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")


def _moment(description: str) -> Any:
    """A date-time query parameter, read as text and parsed strictly by :func:`rfc3339`."""
    return Parameter(
        max_length=40, pattern=NO_NUL, description=description, schema_extra={"format": "date-time"}
    )


def rfc3339(name: str, value: str | None) -> datetime | None:
    """``value`` as a time with its offset, or a 400 naming the parameter."""
    if value is None:
        return None
    if _RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value.upper()).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise InvalidInput(f"{name} is not a date-time", hint="RFC 3339, e.g. 2026-11-29T08:00:00Z")


def entry_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id,
        at=as_utc(entry.at),
        actor_id=entry.actor_id,
        actor_email=entry.actor_email,
        action=entry.action,
        object_type=entry.object_type,
        object_id=entry.object_id,
        client_address=entry.client_address,
        request_id=entry.request_id,
        before=entry.before,
        after=entry.after,
    )


class AuditController(Controller):
    path = "/api/audit-log"
    tags = ("audit",)

    @get(
        "/",
        operation_id="listAuditLog",
        summary="The audit log",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403),
    )
    async def list_entries(
        self,
        database: Database,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Matches to skip.", minimum=0)] = 0,
        actor_id: Annotated[int | None, bounded("Who.", query="actorId")] = None,
        action: Annotated[
            str | None, Parameter(max_length=64, pattern=NO_NUL, description="Exact action.")
        ] = None,
        object_type: Annotated[
            str | None,
            Parameter(
                query="objectType", max_length=64, pattern=NO_NUL, description="user, session…"
            ),
        ] = None,
        object_id: Annotated[
            str | None,
            Parameter(query="objectId", max_length=64, pattern=NO_NUL, description="Object id."),
        ] = None,
        since: Annotated[str | None, _moment("From this time on (RFC 3339).")] = None,
        until: Annotated[str | None, _moment("Before this time (RFC 3339).")] = None,
    ) -> Page[AuditEntryOut]:
        since_at, until_at = rfc3339("since", since), rfc3339("until", until)

        def page(session: Session) -> Page[AuditEntryOut]:
            entries, total = services.list_entries(
                session,
                limit=limit,
                offset=offset,
                actor_id=actor_id,
                action=action,
                object_type=object_type,
                object_id=object_id,
                since=since_at,
                until=until_at,
            )
            return Page([entry_out(e) for e in entries], total=total, limit=limit, offset=offset)

        return await database.run(page)
