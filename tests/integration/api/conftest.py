"""Fixtures for API integration tests: a migrated metadata store with users and a small
catalog, a DuckDB warehouse file, and a Litestar test client over ``create_app``."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.engine import make_url

from api.app import create_app
from api.users.models import Role
from api.users.services import create_user_with_password
from catalog.models import Dataset, DatasetColumn, LineageEdge
from headwater.db import get_engine, session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from tests.conftest import make_settings as make_test_settings

TEST_SECRET = "integration-test-secret-key-long-enough-for-hs256"
PG_SERVER_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
PASSWORD = "a-long-enough-password"


@dataclass(frozen=True)
class Account:
    email: str
    password: str
    role: str


ADMIN = Account("admin@example.com", PASSWORD, "admin")
VIEWER = Account("viewer@example.com", PASSWORD, "viewer")
RETIRED = Account("retired@example.com", PASSWORD, "user")

# name -> (kind, description, columns)
DATASETS: dict[str, tuple[str, str | None, list[tuple[str, str]]]] = {
    "raw_shop.orders": ("source", "Orders as loaded from the shop database", [("id", "BIGINT")]),
    "raw_shop.customers": ("source", None, [("id", "BIGINT"), ("email", "VARCHAR")]),
    "staging.stg_shop__orders": (
        "model",
        "Cleaned orders",
        [("order_id", "BIGINT"), ("amount", "DECIMAL(18,2)")],
    ),
    "marts.customer_revenue": (
        "model",
        "Revenue per customer, 100% of paid sales",
        [("customer_id", "BIGINT"), ("revenue", "DECIMAL(18,2)"), ("first_order_at", "DATE")],
    ),
    "seeds.country_codes": ("seed", "ISO country codes", [("code", "VARCHAR")]),
}
EDGES = [
    ("raw_shop.orders", "staging.stg_shop__orders"),
    ("staging.stg_shop__orders", "marts.customer_revenue"),
    ("raw_shop.customers", "marts.customer_revenue"),
]


def seed_metadata(metadata_url: str) -> dict[str, int]:
    """Migrate, add the three accounts and the small catalog; dataset ids by name."""
    upgrade(metadata_url)
    with session_scope(metadata_url) as session:
        for account in (ADMIN, VIEWER, RETIRED):
            user = create_user_with_password(
                session, account.email, account.password, Role(account.role)
            )
            user.is_active = account is not RETIRED
        datasets = {}
        for name, (kind, description, columns) in DATASETS.items():
            schema_name, table_name = name.split(".")
            dataset = Dataset(
                name=name,
                kind=kind,
                schema_name=schema_name,
                table_name=table_name,
                description=description,
                row_count=len(name),
                columns=[
                    DatasetColumn(name=col, data_type=type_, position=i, is_nullable=i > 1)
                    for i, (col, type_) in enumerate(columns, start=1)
                ],
            )
            session.add(dataset)
            datasets[name] = dataset
        session.flush()
        for upstream, downstream in EDGES:
            session.add(
                LineageEdge(
                    upstream_id=datasets[upstream].id,
                    downstream_id=datasets[downstream].id,
                    origin="dbt",
                )
            )
        return {name: dataset.id for name, dataset in datasets.items()}


def make_settings(home: Path, **overrides: Any) -> Settings:
    return make_test_settings(home, **{"secret_key": TEST_SECRET, **overrides})


def make_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE orders AS SELECT 1 AS id")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """SQLite metadata store and DuckDB warehouse file in ``tmp_path``."""
    result = make_settings(tmp_path)
    make_warehouse(result.duckdb_path)
    return result


@pytest.fixture
def dataset_ids(settings: Settings) -> dict[str, int]:
    return seed_metadata(settings.metadata_url)


@pytest.fixture
def client(settings: Settings, dataset_ids: dict[str, int]) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


Login = Callable[[TestClient[Litestar], Account], dict[str, str]]


def _login(client: TestClient[Litestar], account: Account) -> dict[str, str]:
    response = client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


@pytest.fixture(scope="session")
def login() -> Login:
    """``login(client, account)`` -> Authorization headers."""
    return _login


@pytest.fixture(scope="session")
def admin() -> Account:
    return ADMIN


@pytest.fixture(scope="session")
def viewer() -> Account:
    """An active viewer."""
    return VIEWER


@pytest.fixture(scope="session")
def retired() -> Account:
    """A deactivated user with a valid password."""
    return RETIRED


@pytest.fixture
def viewer_headers(client: TestClient[Litestar]) -> dict[str, str]:
    return _login(client, VIEWER)


@pytest.fixture
def client_for() -> Iterator[Callable[[Settings], TestClient[Litestar]]]:
    """Open extra test clients for other settings; closed at teardown."""
    opened: list[TestClient[Litestar]] = []

    def open_client(settings: Settings) -> TestClient[Litestar]:
        test_client = TestClient(create_app(settings))
        test_client.__enter__()
        opened.append(test_client)
        return test_client

    yield open_client
    for test_client in opened:
        test_client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def postgres_metadata_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this module, dropped afterwards."""
    name = f"hw_api_{uuid.uuid4().hex[:10]}"
    server = make_url(PG_SERVER_URL)
    admin = psycopg2.connect(
        host=server.host, port=server.port, user=server.username, dbname=server.database
    )
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        url = server.set(database=name).render_as_string(hide_password=False)
        yield url
        get_engine(url).dispose()
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


@pytest.fixture(scope="session")
def seed() -> Callable[[str], dict[str, int]]:
    """``seed(metadata_url)``: migrate, add accounts and the small catalog."""
    return seed_metadata


@pytest.fixture(scope="session")
def settings_maker() -> Callable[..., Settings]:
    """``settings_maker(home, **overrides)``: test settings, nothing from the environment."""
    return make_settings


@dataclass(frozen=True)
class SharedCatalog:
    """A client over a seeded store shared by one test module's read-only tests."""

    client: TestClient[Litestar]
    viewer_headers: dict[str, str]
    dataset_ids: dict[str, int]


@pytest.fixture(scope="module")
def shared_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedCatalog]:
    settings = make_settings(tmp_path_factory.mktemp("shared"))
    make_warehouse(settings.duckdb_path)
    ids = seed_metadata(settings.metadata_url)
    with TestClient(create_app(settings)) as test_client:
        yield SharedCatalog(test_client, _login(test_client, VIEWER), ids)
