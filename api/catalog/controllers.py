"""``/api/catalog``: browse datasets, their columns and lineage (any role)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from sqlalchemy.orm import Session

from api.catalog import services
from api.catalog.schemas import DatasetOut
from api.openapi import error_responses
from api.schemas import Page

MAX_PAGE_SIZE = 500


class CatalogController(Controller):
    path = "/api/catalog"
    tags = ("catalog",)

    @get(
        "/datasets",
        operation_id="listDatasets",
        summary="List datasets",
        responses=error_responses(400, 401),
        sync_to_thread=True,
    )
    def list_datasets(
        self,
        db_session: Session,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, Parameter(ge=0, description="Matches to skip.")] = 0,
        search: Annotated[
            str | None,
            Parameter(
                max_length=200,
                description="Case-insensitive substring of the name or description.",
            ),
        ] = None,
        kind: Annotated[str | None, Parameter(max_length=32, description="Exact kind.")] = None,
    ) -> Page[DatasetOut]:
        return services.list_datasets(
            db_session, limit=limit, offset=offset, search=search, kind=kind
        )

    @get(
        "/datasets/{dataset_id:int}",
        operation_id="getDataset",
        summary="Get one dataset",
        sync_to_thread=True,
        responses=error_responses(400, 401, 404, s404="No dataset with this id"),
    )
    def get_dataset(self, db_session: Session, dataset_id: int) -> DatasetOut:
        return services.get_dataset(db_session, dataset_id)
