from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from catalog.models import Dataset
from headwater.db import session_scope, utcnow
from tests.integration.api.conftest import VIEWER, seed_metadata

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
Headers = dict[str, str]
ALL_NAMES = sorted(
    [
        "raw_shop.orders",
        "raw_shop.customers",
        "staging.stg_shop__orders",
        "marts.customer_revenue",
        "seeds.country_codes",
    ]
)


@pytest.fixture
def client(shared_catalog: Any) -> Client:
    """These tests only read: they share one seeded store per module."""
    return shared_catalog.client  # type: ignore[no-any-return]


@pytest.fixture
def viewer_headers(shared_catalog: Any) -> Headers:
    return shared_catalog.viewer_headers  # type: ignore[no-any-return]


@pytest.fixture
def dataset_ids(shared_catalog: Any) -> dict[str, int]:
    return shared_catalog.dataset_ids  # type: ignore[no-any-return]


def _list(client: Client, headers: Headers, **params: Any) -> Any:
    response = client.get("/api/catalog/datasets", headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_list_returns_every_dataset_with_columns_and_lineage(
    client: Client, viewer_headers: Headers
) -> None:
    page = _list(client, viewer_headers)
    assert (page["total"], page["limit"], page["offset"]) == (5, 50, 0)
    assert [item["name"] for item in page["items"]] == ALL_NAMES
    revenue = next(i for i in page["items"] if i["name"] == "marts.customer_revenue")
    assert revenue["kind"] == "model"
    assert (revenue["schemaName"], revenue["tableName"]) == ("marts", "customer_revenue")
    assert revenue["rowCount"] == len("marts.customer_revenue")
    assert revenue["updatedAt"].endswith("Z")
    assert revenue["upstream"] == ["raw_shop.customers", "staging.stg_shop__orders"]
    assert revenue["downstream"] == []
    assert revenue["columns"] == [
        {
            "name": "customer_id",
            "dataType": "BIGINT",
            "position": 1,
            "isNullable": False,
            "description": None,
        },
        {
            "name": "revenue",
            "dataType": "DECIMAL(18,2)",
            "position": 2,
            "isNullable": True,
            "description": None,
        },
        {
            "name": "first_order_at",
            "dataType": "DATE",
            "position": 3,
            "isNullable": True,
            "description": None,
        },
    ]
    staging = next(i for i in page["items"] if i["name"] == "staging.stg_shop__orders")
    assert staging["upstream"] == ["raw_shop.orders"]
    assert staging["downstream"] == ["marts.customer_revenue"]


def test_pages_partition_the_list(client: Client, viewer_headers: Headers) -> None:
    pages = [_list(client, viewer_headers, limit=2, offset=offset) for offset in (0, 2, 4, 6)]
    assert [p["total"] for p in pages] == [5, 5, 5, 5]
    assert [len(p["items"]) for p in pages] == [2, 2, 1, 0]
    assert [i["name"] for p in pages for i in p["items"]] == ALL_NAMES
    assert (pages[1]["limit"], pages[1]["offset"]) == (2, 2)


def test_lineage_names_reach_outside_the_current_page(
    client: Client, viewer_headers: Headers
) -> None:
    page = _list(client, viewer_headers, search="stg_shop")
    [staging] = page["items"]
    assert staging["upstream"] == ["raw_shop.orders"]
    assert staging["downstream"] == ["marts.customer_revenue"]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"search": "ORDERS"}, ["raw_shop.orders", "staging.stg_shop__orders"]),
        ({"search": "cleaned"}, ["staging.stg_shop__orders"]),  # description only
        ({"search": "EMAIL"}, ["raw_shop.customers"]),  # a column name
        # Ranked: a table named so, a name containing it, then a column containing it.
        (
            {"search": "order"},
            ["raw_shop.orders", "staging.stg_shop__orders", "marts.customer_revenue"],
        ),
        ({"search": "100%"}, ["marts.customer_revenue"]),
        ({"search": "%"}, ["marts.customer_revenue"]),  # a literal percent sign
        (
            {"search": "_"},  # every name holds one: equal rank, by name
            [
                "marts.customer_revenue",
                "raw_shop.customers",
                "raw_shop.orders",
                "seeds.country_codes",
                "staging.stg_shop__orders",
            ],
        ),
        ({"kind": "source"}, ["raw_shop.customers", "raw_shop.orders"]),
        ({"kind": "model", "search": "orders"}, ["staging.stg_shop__orders"]),
        ({"search": "no such thing"}, []),
        ({"kind": "view"}, []),
    ],
)
def test_search_and_kind_filters(
    client: Client, viewer_headers: Headers, params: dict[str, str], expected: list[str]
) -> None:
    page = _list(client, viewer_headers, **params)
    # A search answers by relevance, a plain list by name.
    ranked = expected if "search" in params else sorted(expected)
    assert [i["name"] for i in page["items"]] == ranked
    assert page["total"] == len(expected)


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}, {"offset": 2**63}],
)
def test_out_of_range_paging_is_a_400(
    client: Client, viewer_headers: Headers, params: dict[str, Any]
) -> None:
    response = client.get("/api/catalog/datasets", headers=viewer_headers, params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_limit_500_is_allowed(client: Client, viewer_headers: Headers) -> None:
    assert _list(client, viewer_headers, limit=500)["limit"] == 500


def test_get_one_dataset(
    client: Client, viewer_headers: Headers, dataset_ids: dict[str, int]
) -> None:
    dataset_id = dataset_ids["raw_shop.orders"]
    response = client.get(f"/api/catalog/datasets/{dataset_id}", headers=viewer_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == dataset_id
    assert body["name"] == "raw_shop.orders"
    assert body["description"] == "Orders as loaded from the shop database"
    assert body["upstream"] == []
    assert body["downstream"] == ["staging.stg_shop__orders"]
    assert [c["name"] for c in body["columns"]] == ["id"]


def test_unknown_dataset_is_a_404(client: Client, viewer_headers: Headers) -> None:
    response = client.get("/api/catalog/datasets/999999", headers=viewer_headers)
    assert response.status_code == 404
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("not_found", "Dataset 999999 not found")
    assert client.get("/api/catalog/datasets/abc", headers=viewer_headers).status_code == 404
    too_big = client.get(f"/api/catalog/datasets/{2**63}", headers=viewer_headers)
    assert too_big.status_code == 400


def test_get_one_requires_a_token(client: Client, dataset_ids: dict[str, int]) -> None:
    response = client.get(f"/api/catalog/datasets/{dataset_ids['raw_shop.orders']}")
    assert response.status_code == 401


def test_list_answers_are_cached_whatever_the_parameter_order(
    client: Client, viewer_headers: Headers
) -> None:
    first = client.get(
        "/api/catalog/datasets", headers=viewer_headers, params={"limit": 2, "offset": 1}
    )
    again = client.get("/api/catalog/datasets?offset=1&limit=2", headers=viewer_headers)
    other = client.get(
        "/api/catalog/datasets", headers=viewer_headers, params={"limit": 3, "offset": 1}
    )
    assert first.headers["x-cache"] == "miss"
    assert again.headers["x-cache"] == "hit"
    assert again.json() == first.json()
    assert other.headers["x-cache"] == "miss"
    assert len(other.json()["items"]) == 3


def test_list_is_lean_and_one_dataset_is_told_in_full(settings: Any, login: Any) -> None:
    """What a refresh recorded reaches the API: scalars and test counts in the list; SQL,
    origin, column tests and keys, failing test names on the detail."""
    dataset_ids = seed_metadata(settings.metadata_url)  # a store of its own: it writes
    now = utcnow()
    with session_scope(settings.metadata_url) as session:
        revenue = session.get(Dataset, dataset_ids["marts.customer_revenue"])
        assert revenue is not None
        revenue.kind = "mart"
        revenue.fqn = "warehouse.marts.customer_revenue"
        revenue.owner = "finance@example.com"
        revenue.tags = ["finance", "daily"]
        revenue.materialization = "table"
        revenue.raw_sql = "select * from {{ ref('stg_shop__orders') }}"
        revenue.compiled_sql = 'select * from "warehouse"."staging"."stg_shop__orders"'
        revenue.size_bytes = 8192
        revenue.last_built_at = now - timedelta(minutes=5)
        revenue.last_build_status = "success"
        revenue.test_results = {
            "pass": 3,
            "fail": 1,
            "warn": 1,
            "error": 0,
            "skipped": 0,
            "failing": ["not_null_customer_revenue_revenue"],
            "warning": ["unique_customer_revenue_first_order_at"],
            "ran_at": "2026-01-02T10:00:00Z",
        }
        key, *others = revenue.columns
        key.tests, key.is_primary_key = ["not_null", "unique"], True
        for column in others:
            column.tests, column.is_primary_key = [], False
        orders = session.get(Dataset, dataset_ids["raw_shop.orders"])
        assert orders is not None
        orders.kind, orders.dbt_source = "raw", "shop.orders"
        orders.source_kind, orders.origin = "database", "table orders of sqlite:///shop.db"
        orders.last_loaded_at = orders.fresh_as_of = now - timedelta(hours=2)
        orders.freshness_warn_after, orders.freshness_error_after = 3_600, 86_400

    with TestClient(create_app(settings)) as client:
        headers = login(client, VIEWER)
        page = _list(client, headers)
        items = {item["name"]: item for item in page["items"]}
        listed = items["marts.customer_revenue"]
        assert not {"rawSql", "compiledSql", "origin"} & listed.keys()
        assert listed["fqn"] == "warehouse.marts.customer_revenue"
        assert (listed["owner"], listed["tags"]) == ("finance@example.com", ["finance", "daily"])
        assert (listed["materialization"], listed["sizeBytes"]) == ("table", 8192)
        assert listed["tests"] == {
            "passed": 3,
            "failed": 1,
            "warned": 1,
            "errored": 0,
            "skipped": 0,
        }
        assert listed["lastBuiltAt"].endswith("Z")
        assert listed["freshness"] == "unknown"  # no expectation
        assert "tests" not in listed["columns"][0]
        raw = items["raw_shop.orders"]
        assert (raw["kind"], raw["dbtSource"], raw["sourceKind"]) == (
            "raw",
            "shop.orders",
            "database",
        )
        assert raw["freshness"] == "warn"  # two hours old, expected within one
        assert raw["tests"] is None
        assert items["seeds.country_codes"]["tags"] == []

        detail = client.get(
            f"/api/catalog/datasets/{dataset_ids['marts.customer_revenue']}", headers=headers
        ).json()
        assert detail["rawSql"] == "select * from {{ ref('stg_shop__orders') }}"
        assert detail["compiledSql"].startswith('select * from "warehouse"')
        assert detail["lastBuildStatus"] == "success"
        assert detail["tests"]["failing"] == ["not_null_customer_revenue_revenue"]
        assert detail["tests"]["warning"] == ["unique_customer_revenue_first_order_at"]
        assert detail["tests"]["failed"] == 1
        assert [(c["name"], c["tests"], c["isPrimaryKey"]) for c in detail["columns"]] == [
            ("customer_id", ["not_null", "unique"], True),
            ("revenue", [], False),
            ("first_order_at", [], False),
        ]
        assert detail["freshnessExpectation"] is None
        raw_detail = client.get(
            f"/api/catalog/datasets/{dataset_ids['raw_shop.orders']}", headers=headers
        ).json()
        assert raw_detail["origin"] == "table orders of sqlite:///shop.db"
        assert raw_detail["freshnessExpectation"]["warnAfterSeconds"] == 3_600
        assert raw_detail["freshnessExpectation"]["errorAfterSeconds"] == 86_400
        assert raw_detail["freshnessExpectation"]["asOf"].endswith("Z")
        assert raw_detail["columns"][0]["isPrimaryKey"] is None  # no key known
