"""``/api/audit-log``: every change, newest first (admin)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller
from litestar.params import Parameter
from sqlalchemy.orm import Session

from api.audit import services
from api.audit.models import AuditEntry
from api.audit.schemas import AuditEntryOut
from api.auth.guards import requires_admin
from api.db import Database
from api.openapi import error_responses
from api.routing import get
from api.schemas import NO_NUL, Page, bounded
from api.times import moment, rfc3339
from headwater.db import as_utc

MAX_PAGE_SIZE = 500


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
        since: Annotated[str | None, moment("From this time on (RFC 3339).")] = None,
        until: Annotated[str | None, moment("Before this time (RFC 3339).")] = None,
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
