"""The API on a PostgreSQL metadata store (a fresh database, dropped afterwards)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]


@pytest.fixture(scope="module")
def pg_state(
    postgres_metadata_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    seed: Callable[[str], dict[str, int]],
    settings_maker: Callable[..., Settings],
) -> Iterator[tuple[Client, dict[str, int]]]:
    settings = settings_maker(tmp_path_factory.mktemp("pg"), database_url=postgres_metadata_url)
    ids = seed(postgres_metadata_url)
    with TestClient(create_app(settings)) as client:
        yield client, ids


def test_login_list_and_get_on_postgres(
    pg_state: tuple[Client, dict[str, int]],
    admin: Any,
    retired: Any,
    login: Callable[[Client, Any], dict[str, str]],
) -> None:
    client, ids = pg_state
    headers = login(client, admin)
    credentials = {"email": retired.email, "password": retired.password}
    bad = client.post("/api/auth/login", json=credentials)
    assert bad.status_code == 401

    page = client.get(
        "/api/catalog/datasets", headers=headers, params={"search": "ORDERS", "limit": 1}
    ).json()
    assert page["total"] == 2
    assert [i["name"] for i in page["items"]] == ["raw_shop.orders"]
    assert page["items"][0]["downstream"] == ["staging.stg_shop__orders"]
    assert page["items"][0]["updatedAt"].endswith("Z")

    one = client.get(f"/api/catalog/datasets/{ids['marts.customer_revenue']}", headers=headers)
    assert one.status_code == 200
    assert one.json()["upstream"] == ["raw_shop.customers", "staging.stg_shop__orders"]
    # "100%" matches literally on PostgreSQL too.
    literal = client.get("/api/catalog/datasets", headers=headers, params={"search": "%"}).json()
    assert [i["name"] for i in literal["items"]] == ["marts.customer_revenue"]
    assert client.get("/api/catalog/datasets/424242", headers=headers).status_code == 404


def test_health_reports_postgresql_metadata_store(
    pg_state: tuple[Client, dict[str, int]], tmp_path: Path
) -> None:
    client, _ = pg_state
    body = client.get("/health/ready").json()
    assert body["checks"]["metadataStore"]["status"] == "ok"
    assert body["checks"]["metadataStore"]["detail"].startswith("postgresql")
    assert "127.0.0.1" not in client.get("/health/ready").text
