"""``/api/queries``: ad hoc SQL over the warehouse, for every role within its schemas.

sqlglot is the first filter (``catalog.queries.validate``), the engine the last word
(``catalog.queries.execute``): viewers read marts, users staging and marts, admins
everything (``HEADWATER_QUERY_SCHEMAS_*``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request
from litestar.params import Parameter
from litestar.response import Stream

from api.auth.guards import current_user, requires_reader
from api.db import Database
from api.openapi import error_responses
from api.queries import services
from api.queries.schemas import HistoryOut, QueryIn, QueryResultOut, ValidationOut
from api.routing import get, post
from api.schemas import Page, bounded
from headwater.settings import Settings

MAX_PAGE_SIZE = 200
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}


class QueriesController(Controller):
    path = "/api/queries"
    tags = ("queries",)

    @post(
        "/",
        operation_id="runQuery",
        summary="Run an ad hoc query",
        description="One read-only query over the tables your role may read. Returns the "
        "columns with their types, the rows (at most `limit`, never above the configured "
        "cap), whether more matched, and the SQL as it ran. Refused SQL answers 400 with "
        "the reason (and line and column when known); a query past its timeout is stopped "
        "(400); while a load writes the embedded warehouse, 503 with Retry-After.",
        guards=[requires_reader],
        status_code=200,
        responses=error_responses(400, 401, 503),
    )
    async def run_query(self, request: Request[Any, Any, Any], data: QueryIn) -> QueryResultOut:
        # The services come from the app's state, not as injected dependencies: Litestar
        # resolves several of those in a task group of their own, which on this path (a
        # cached answer takes well under a millisecond) was a fifth of the request.
        user, state = current_user(request), request.app.state
        return await services.run_query(
            state.settings,
            state.database,
            state.query_runner,
            state.kv,
            state.query_history,
            user,
            data,
        )

    @post(
        "/validate",
        operation_id="validateQuery",
        summary="Validate a query without running it",
        description="Parses and qualifies the SQL against the catalog: whether it may run, "
        "each problem with its line and column, the tables and columns it reads, and the "
        "SQL as it would run.",
        guards=[requires_reader],
        status_code=200,
        responses=error_responses(400, 401, 503),
    )
    async def validate_query(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        query_runner: services.QueryRunner,
        data: QueryIn,
    ) -> ValidationOut:
        user = current_user(request)
        return await services.validate_query(settings, database, query_runner, user, data)

    @get(
        "/history",
        operation_id="listQueryHistory",
        summary="List past queries",
        description="Your queries, newest first, with how each went; an admin sees "
        "everyone's (or one user's with `userId`).",
        guards=[requires_reader],
        responses=error_responses(400, 401, 503),
    )
    async def list_history(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Entries to skip.", minimum=0)] = 0,
        user_id: Annotated[
            int | None, bounded("Only this user's queries (admins).", query="userId")
        ] = None,
    ) -> Page[HistoryOut]:
        user = current_user(request)
        await request.app.state.query_history.flush()
        return await database.run(
            lambda s: services.list_history(s, user, limit=limit, offset=offset, user_id=user_id)
        )

    @post(
        "/history/{history_id:int}/run",
        operation_id="rerunQuery",
        summary="Run a past query again",
        description="Runs the SQL and parameters of one of your past queries (an admin: "
        "anyone's) with your role as it is now.",
        guards=[requires_reader],
        status_code=200,
        responses=error_responses(400, 401, 404, 503, s404="No such query in your history"),
    )
    async def rerun(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        query_runner: services.QueryRunner,
        history_id: Annotated[int, bounded("History entry id.")],
    ) -> QueryResultOut:
        user = current_user(request)
        await request.app.state.query_history.flush()
        body = await database.run(lambda s: services.history_entry(s, user, history_id))
        kv, history = request.app.state.kv, request.app.state.query_history
        return await services.run_query(settings, database, query_runner, kv, history, user, body)

    @post(
        "/export",
        operation_id="exportQuery",
        summary="Export a query's whole result",
        description="Streams every row (up to `HEADWATER_QUERY_EXPORT_ROW_CAP`, or `limit`) "
        "as CSV with a header line or as JSON lines, without holding the result in memory. "
        "The query is checked as for `POST /api/queries`; a query stopped by its timeout "
        "mid-stream ends the stream early.",
        guards=[requires_reader],
        status_code=200,
        media_type="text/csv",
        responses=error_responses(400, 401, 503),
    )
    async def export_query(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        query_runner: services.QueryRunner,
        data: QueryIn,
        format: Annotated[
            Literal["csv", "jsonl"], Parameter(description="csv (default) or jsonl.")
        ] = "csv",
    ) -> Stream:
        user = current_user(request)
        history = request.app.state.query_history
        chunks = await services.export_query(
            settings, database, query_runner, history, user, data, format
        )
        return Stream(
            chunks,
            media_type=MEDIA_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="query.{format}"'},
        )
