"""``/api/catalog``: browse datasets, their columns and lineage (any role)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response
from litestar.params import Parameter

from api.auth.guards import requires_reader
from api.cache import cached_json
from api.catalog import services
from api.catalog.schemas import DatasetDetailOut, DatasetOut
from api.db import Database
from api.openapi import error_responses
from api.routing import get
from api.schemas import NO_NUL, Page, bounded
from catalog.refresh import CACHE_NAMESPACE

MAX_PAGE_SIZE = 500


class CatalogController(Controller):
    path = "/api/catalog"
    tags = ("catalog",)

    @get(
        "/datasets",
        operation_id="listDatasets",
        guards=[requires_reader],
        summary="List datasets",
        description="Cached; the `X-Cache` header says whether this answer came from the cache.",
        responses=error_responses(400, 401),
    )
    async def list_datasets(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Matches to skip.", minimum=0)] = 0,
        search: Annotated[
            str | None,
            Parameter(
                max_length=200,
                pattern=NO_NUL,
                description="Text in the name, a column name, a tag or the description "
                "(case-insensitive); matches come ranked: exact name, name prefix, name, "
                "column name, tag, description.",
            ),
        ] = None,
        kind: Annotated[
            str | None, Parameter(max_length=32, pattern=NO_NUL, description="Exact kind.")
        ] = None,
    ) -> Response[Page[DatasetOut]]:
        async def produce() -> Page[DatasetOut]:
            return await database.run(
                lambda s: services.list_datasets(
                    s, limit=limit, offset=offset, search=search, kind=kind
                )
            )

        return await cached_json(request, CACHE_NAMESPACE, produce)

    @get(
        "/datasets/{dataset_id:int}",
        operation_id="getDataset",
        guards=[requires_reader],
        summary="Get one dataset",
        description="In full: raw and compiled SQL, origin, column tests and primary key, "
        "the names of failing tests, the freshness expectation.",
        responses=error_responses(400, 401, 404, s404="No dataset with this id"),
    )
    async def get_dataset(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dataset_id: Annotated[int, bounded("Dataset id.")],
    ) -> Response[DatasetDetailOut]:
        async def produce() -> DatasetDetailOut:
            return await database.run(lambda s: services.get_dataset(s, dataset_id))

        return await cached_json(request, CACHE_NAMESPACE, produce)
