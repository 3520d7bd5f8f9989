"""Listing datasets costs a fixed number of queries, however many datasets a page holds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import event

from catalog.models import Dataset, DatasetColumn, LineageEdge
from headwater.db import get_engine, session_scope
from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
Headers = dict[str, str]


def _list(client: Client, headers: Headers, **params: Any) -> Any:
    response = client.get("/api/catalog/datasets", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def statement_counter(settings: Settings) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = get_engine(settings.metadata_url)
    event.listen(engine, "before_cursor_execute", count)
    yield statements
    event.remove(engine, "before_cursor_execute", count)


def test_listing_costs_the_same_number_of_queries_for_5_or_45_datasets(
    client: Client, viewer_headers: Headers, settings: Settings, statement_counter: list[str]
) -> None:
    def datasets_queries(limit: int) -> int:
        statement_counter.clear()
        _list(client, viewer_headers, limit=limit)
        return sum("dataset" in s or "lineage" in s for s in statement_counter)

    small = datasets_queries(5)
    with session_scope(settings.metadata_url) as session:
        previous: Dataset | None = None
        for n in range(40):
            dataset = Dataset(
                name=f"bulk.t{n:02d}",
                kind="model",
                schema_name="bulk",
                table_name=f"t{n:02d}",
                columns=[
                    DatasetColumn(name=f"c{i}", data_type="INT", position=i) for i in range(3)
                ],
            )
            session.add(dataset)
            session.flush()
            if previous is not None:
                session.add(
                    LineageEdge(upstream_id=previous.id, downstream_id=dataset.id, origin="dbt")
                )
            previous = dataset
    large = datasets_queries(45)
    assert _list(client, viewer_headers, limit=45)["total"] == 45
    assert large == small <= 4
