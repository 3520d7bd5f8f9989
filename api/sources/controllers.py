"""``/api/sources``: sources from both homes (every role reads; admins write; admins and
users test connections)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from anyio import to_thread
from litestar import Controller, Request
from litestar.params import Parameter
from sqlalchemy.orm import Session

from api.auth.guards import requires_admin, requires_reader, requires_writer
from api.db import Database
from api.errors import ServiceUnavailable
from api.http import actor_of
from api.openapi import error_responses
from api.routing import delete, get, patch, post
from api.schemas import NO_NUL, Page, bounded
from api.sources import services
from api.sources.schemas import (
    SOURCE_NAME,
    ConnectionTest,
    DestinationOut,
    Kind,
    Origin,
    SourceIn,
    SourceOut,
    SourceState,
    SourceUpdate,
)
from headwater.settings import Settings

MAX_PAGE_SIZE = 200
TEST_TIMEOUT_SECONDS = 30
CONCURRENT_TESTS = 4
"""Connection tests at once per process; more answer 503 rather than pile up threads."""


class ConnectionTests:
    """The threads connection tests run in: a few per process, made in the running loop."""

    def __init__(self) -> None:
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(CONCURRENT_TESTS)
        return self._limiter


Name = Annotated[str, Parameter(pattern=SOURCE_NAME, max_length=63, description="Source name.")]


class SourcesController(Controller):
    path = "/api/sources"
    tags = ("sources",)

    @get(
        "/",
        operation_id="listSources",
        summary="List sources",
        description="Sources declared in sources.yml (`origin: file`, read-only) and stored "
        "through the API or the CLI (`origin: store`). Connections are masked.",
        guards=[requires_reader],
        responses=error_responses(400, 401, 503),
    )
    async def list_sources(
        self,
        settings: Settings,
        database: Database,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Matches to skip.", minimum=0)] = 0,
        kind: Annotated[Kind | None, Parameter(description="Only this kind.")] = None,
        origin: Annotated[Origin | None, Parameter(description="Only this home.")] = None,
        search: Annotated[
            str | None,
            Parameter(
                max_length=200, pattern=NO_NUL, description="Substring of name or description."
            ),
        ] = None,
    ) -> Page[SourceOut]:
        return await database.run(
            lambda s: services.list_sources(
                settings, s, limit=limit, offset=offset, kind=kind, origin=origin, search=search
            )
        )

    @post(
        "/",
        operation_id="createSource",
        summary="Store a source",
        description="Validated exactly like an entry of sources.yml; the connection is "
        "encrypted at rest. The name is also the warehouse schema and cannot change.",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 409, 503),
    )
    async def create_source(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        data: SourceIn,
    ) -> SourceOut:
        actor = actor_of(request)
        return await database.run(lambda s: services.create_source(settings, s, data, actor))

    @get(
        "/{name:str}",
        operation_id="getSource",
        summary="Get a source",
        guards=[requires_reader],
        responses=error_responses(400, 401, 404, 503),
    )
    async def get_source(self, settings: Settings, database: Database, name: Name) -> SourceOut:
        return await database.run(
            lambda s: services.source_out(services.get_source(settings, s, name))
        )

    @patch(
        "/{name:str}",
        operation_id="updateSource",
        summary="Change a stored source",
        description="Fields given replace the stored ones. Send the masked connection back to "
        "keep the stored password. Sources from sources.yml answer 409: change them there.",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def update_source(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        name: Name,
        data: SourceUpdate,
    ) -> SourceOut:
        actor = actor_of(request)
        return await database.run(lambda s: services.update_source(settings, s, name, data, actor))

    @delete(
        "/{name:str}",
        operation_id="deleteSource",
        summary="Delete a stored source",
        description="What it loaded stays in the warehouse. Sources from sources.yml answer 409.",
        guards=[requires_admin],
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def delete_source(
        self, request: Request[Any, Any, Any], settings: Settings, database: Database, name: Name
    ) -> None:
        actor = actor_of(request)

        def remove(session: Session) -> None:
            services.delete_source(settings, session, name, actor)

        await database.run(remove)

    @post(
        "/{name:str}/test",
        operation_id="testSource",
        summary="Test a source's connection",
        description="Reaches the source and checks its tables and key columns. `ok: false` "
        "carries the reason, with any password masked.",
        guards=[requires_writer],
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 503),
    )
    async def test_source(
        self,
        settings: Settings,
        database: Database,
        connection_tests: ConnectionTests,
        name: Name,
    ) -> ConnectionTest:
        declared = await database.run(lambda s: services.get_source(settings, s, name))
        limiter = connection_tests.limiter
        if limiter.borrowed_tokens >= limiter.total_tokens:
            raise ServiceUnavailable("Too many connection tests at once", retry_after=5)
        with anyio.move_on_after(TEST_TIMEOUT_SECONDS) as scope:
            result = await to_thread.run_sync(
                services.test_connection,
                settings,
                name,
                declared,
                abandon_on_cancel=True,
                limiter=limiter,
            )
        if scope.cancelled_caught:
            return ConnectionTest(
                ok=False,
                message=f"no answer within {TEST_TIMEOUT_SECONDS} s",
                seconds=TEST_TIMEOUT_SECONDS,
            )
        return result

    @get(
        "/{name:str}/state",
        operation_id="getSourceState",
        summary="Incremental state of a source",
        description="Each table's cursor, where the next load starts, and its last load.",
        guards=[requires_reader],
        responses=error_responses(400, 401, 404, 503),
    )
    async def source_state(self, settings: Settings, database: Database, name: Name) -> SourceState:
        return await database.run(lambda s: services.source_state(settings, s, name))


class DestinationsController(Controller):
    path = "/api/destinations"
    tags = ("sources",)

    @get(
        "/",
        operation_id="listDestinations",
        summary="List destinations",
        description="Where sources and jobs load: the configured warehouse first, then every "
        "PostgreSQL or DuckDB connection declared with `destination: true`. Connections are "
        "masked.",
        guards=[requires_reader],
        responses=error_responses(401, 503),
    )
    async def list_destinations(
        self, settings: Settings, database: Database
    ) -> list[DestinationOut]:
        return await database.run(lambda s: services.list_destinations(settings, s))
