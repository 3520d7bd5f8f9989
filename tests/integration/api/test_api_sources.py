"""``/api/sources``: both homes listed together, stored sources encrypted and masked,
roles enforced, connection tests against a real PostgreSQL, state after a real load."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import text

from headwater.db import session_scope
from headwater.settings import Settings
from ingest.runner import run_source
from ingest.store import all_sources
from tests.integration.api.conftest import ADMIN, PASSWORD, VIEWER, Login

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
SECRET = "s3cret-pw-9f2"  # trust auth: PostgreSQL accepts any password here
PG = "postgresql://postgres:{password}@127.0.0.1:5432/test"


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A table in the local PostgreSQL `test` database, dropped afterwards."""
    name = f"hw_src_{uuid.uuid4().hex[:8]}"
    connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f"create table {name} (id int primary key, updated_at timestamptz)")
    yield name
    with connection.cursor() as cursor:
        cursor.execute(f"drop table if exists {name}")
    connection.close()


@pytest.fixture
def admin_headers(client: Client, login: Login) -> dict[str, str]:
    return login(client, ADMIN)


@pytest.fixture
def user_headers(client: Client, login: Login, admin_headers: dict[str, str]) -> dict[str, str]:
    email = f"analyst-{uuid.uuid4().hex[:6]}@example.com"
    response = client.post(
        "/api/users/",
        json={"email": email, "role": "user", "password": PASSWORD},
        headers=admin_headers,
    )
    assert response.status_code == 201, response.text
    return login(client, type(ADMIN)(email, PASSWORD, "user"))


def database_source(name: str, table: str, password: str = SECRET) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "database",
        "description": "Billing",
        "connection": PG.format(password=password),
        "tables": {"invoices": {"sourceTable": table, "cursor": "updated_at"}},
    }


def test_every_role_lists_both_homes_and_file_sources_are_read_only(
    client: Client, login: Login
) -> None:
    response = client.get("/api/sources/", headers=login(client, VIEWER))
    assert response.status_code == 200, response.text
    page = response.json()
    names = [item["name"] for item in page["items"]]
    assert names[:4] == ["shop", "web", "marketing", "suppliers"]
    shop = page["items"][0]
    assert shop["origin"] == "file"
    assert shop["readOnly"] is True
    assert shop["tables"]["orders"] == {
        "writeDisposition": "merge",
        "primaryKey": ["id"],
        "cursor": "updated_at",
    }
    assert client.get("/api/sources/").status_code == 401


def test_a_stored_source_is_encrypted_masked_everywhere_and_audited(
    client: Client, settings: Settings, admin_headers: dict[str, str], pg_table: str
) -> None:
    response = client.post(
        "/api/sources/", json=database_source("billing", pg_table), headers=admin_headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["connection"] == "postgresql://postgres:***@127.0.0.1:5432/test"
    assert created["origin"] == "store"
    assert created["readOnly"] is False
    assert created["tables"] == {"invoices": {"sourceTable": pg_table, "cursor": "updated_at"}}

    seen = [
        client.get("/api/sources/", headers=admin_headers).text,
        client.get("/api/sources/billing", headers=admin_headers).text,
        client.get("/api/audit-log", headers=admin_headers, params={"limit": 500}).text,
    ]
    assert all(SECRET not in body for body in seen)
    assert '"source.create"' in seen[2]
    with session_scope(settings.metadata_url) as session:
        raw = session.execute(text("select config, secrets from sources")).one()
    assert SECRET not in str(raw.config)
    assert SECRET not in raw.secrets
    assert "connection" not in str(raw.config)
    # The stored password is intact for the loads.
    assert SECRET in (all_sources(settings)["billing"].spec.connection or "")


def test_sending_the_mask_back_keeps_the_password_but_not_for_another_host(
    client: Client, settings: Settings, admin_headers: dict[str, str], pg_table: str
) -> None:
    client.post("/api/sources/", json=database_source("billing", pg_table), headers=admin_headers)
    masked = client.get("/api/sources/billing", headers=admin_headers).json()["connection"]
    response = client.patch(
        "/api/sources/billing",
        json={
            "connection": masked.replace("/test", "/test?application_name=hw"),
            "description": None,
        },
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["description"] is None
    stored = all_sources(settings)["billing"].spec.connection or ""
    assert SECRET in stored
    assert stored.endswith("application_name=hw")

    elsewhere = masked.replace("127.0.0.1", "db.example.com")
    response = client.patch(
        "/api/sources/billing", json={"connection": elsewhere}, headers=admin_headers
    )
    assert response.status_code == 400
    assert "send the password itself" in response.json()["error"]["message"]
    assert SECRET in (all_sources(settings)["billing"].spec.connection or "")


def test_connection_tests_report_success_and_masked_failures(
    client: Client, admin_headers: dict[str, str], user_headers: dict[str, str], pg_table: str
) -> None:
    client.post("/api/sources/", json=database_source("billing", pg_table), headers=admin_headers)
    response = client.post("/api/sources/billing/test", headers=user_headers)
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True

    broken = database_source("broken", pg_table)
    broken["connection"] = broken["connection"].replace(":5432", ":1")
    assert client.post("/api/sources/", json=broken, headers=admin_headers).status_code == 201
    result = client.post("/api/sources/broken/test", headers=admin_headers).json()
    assert result["ok"] is False
    assert (
        "cannot connect to postgresql+psycopg2://postgres:***@127.0.0.1:1/test" in result["message"]
    )
    assert SECRET not in result["message"]

    missing = database_source("gone", "no_such_table_here")
    assert client.post("/api/sources/", json=missing, headers=admin_headers).status_code == 201
    result = client.post("/api/sources/gone/test", headers=admin_headers).json()
    assert result == {**result, "ok": False}
    assert "no_such_table_here" in result["message"]


def test_roles_writes_are_for_admins_tests_for_writers(
    client: Client, login: Login, user_headers: dict[str, str], pg_table: str
) -> None:
    viewer = login(client, VIEWER)
    body = database_source("billing", pg_table)
    for headers in (viewer, user_headers):
        assert client.post("/api/sources/", json=body, headers=headers).status_code == 403
        assert client.delete("/api/sources/shop", headers=headers).status_code == 403
    assert client.post("/api/sources/shop/test", headers=viewer).status_code == 403
    assert client.get("/api/sources/shop/state", headers=viewer).status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"name": "shop"}, 409, "already exists (in sources.yml)"),
        ({"name": "Bad-Name"}, 400, "name"),
        ({"tables": {"orders": {"writeDisposition": "merge"}}}, 400, "tables.orders"),
        ({"tables": {"orders": {"primaryKey": "id"}}}, 400, "primaryKey"),
        ({"tables": {"Orders": {}}}, 400, "orders: {source_table: Orders}"),
        ({"tables": {"orders": {}, "x": {"path": "a.csv"}}}, 400, "file"),
        ({"connection": "not a url"}, 400, "not a database URL"),
        ({"connection": "postgresql://u:p@169.254.169.254/x"}, 400, "cloud-metadata"),
        (
            {
                "kind": "file",
                "connection": None,
                "tables": {"p": {"path": "/etc/passwd", "format": "csv"}},
            },
            400,
            "outside the data directories",
        ),
        ({"tables": {}}, 400, "tables"),
        ({"extra": 1}, 400, "extra"),
    ],
)
def test_bad_sources_are_refused_with_a_clear_message(
    client: Client,
    admin_headers: dict[str, str],
    change: dict[str, Any],
    status: int,
    message: str,
) -> None:
    body = {**database_source("billing", "t"), **change}
    body = {key: value for key, value in body.items() if value is not None}
    response = client.post("/api/sources/", json=body, headers=admin_headers)
    assert response.status_code == status, response.text
    body = response.json()["error"]
    error = f"{body['message']} {body['details']}"
    assert message in error
    assert "Spec" not in error
    assert "p@169" not in error


def test_sources_from_the_file_cannot_be_changed_through_the_api(
    client: Client, admin_headers: dict[str, str]
) -> None:
    response = client.patch("/api/sources/shop", json={"description": "x"}, headers=admin_headers)
    assert response.status_code == 409
    assert "change it there" in response.json()["error"]["message"]
    assert client.delete("/api/sources/shop", headers=admin_headers).status_code == 409
    assert client.get("/api/sources/nope", headers=admin_headers).status_code == 404


def test_state_shows_cursors_and_last_loads_after_a_real_load(
    client: Client, settings: Settings, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    database = tmp_path / "crm.db"
    with sqlite3.connect(database) as connection:
        connection.execute("create table contacts (id integer primary key, changed text)")
        connection.executemany(
            "insert into contacts values (?, ?)", [(1, "2026-01-01"), (2, "2026-01-02")]
        )
    body = {
        "name": "crm",
        "kind": "database",
        "connection": f"sqlite:///{database}",
        "tables": {"contacts": {"cursor": "changed"}},
    }
    assert client.post("/api/sources/", json=body, headers=admin_headers).status_code == 201
    before = client.get("/api/sources/crm/state", headers=admin_headers).json()
    assert before == {
        "name": "crm",
        "tables": [
            {
                "table": "contacts",
                "cursor": "changed",
                "cursorValue": None,
                "lastLoad": None,
                "renamedColumns": {},
            }
        ],
        "schemaChanges": [],
    }
    run_source(settings, "crm", all_sources(settings)["crm"].spec)
    state = client.get("/api/sources/crm/state", headers=admin_headers).json()
    table = state["tables"][0]
    assert table["cursorValue"] == "2026-01-02"
    assert table["lastLoad"]["status"] == "loaded"
    assert table["lastLoad"]["rows"] == 2
    [created] = state["schemaChanges"]
    assert (created["table"], created["change"]) == ("contacts", "table_added")

    assert client.delete("/api/sources/crm", headers=admin_headers).status_code == 204
    assert client.get("/api/sources/crm", headers=admin_headers).status_code == 404


def test_rest_api_auth_secrets_are_encrypted_masked_and_kept(
    client: Client, settings: Settings, admin_headers: dict[str, str]
) -> None:
    token = "rest-api-token-5521"
    body = {
        "name": "desk",
        "kind": "rest_api",
        "client": {
            "base_url": "https://api.example.com/v1",
            "auth": {"type": "bearer", "token": token},
        },
        "tables": {"tickets": {"endpoint": {"path": "tickets", "data_selector": "items"}}},
    }
    response = client.post("/api/sources/", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    assert response.json()["client"]["auth"] == {"type": "bearer", "token": "***"}
    with session_scope(settings.metadata_url) as session:
        raw = session.execute(text("select config, secrets from sources")).one()
    assert token not in str(raw.config) and token not in raw.secrets

    shown = client.get("/api/sources/desk", headers=admin_headers).json()
    kept = client.patch(
        "/api/sources/desk", json={"client": shown["client"]}, headers=admin_headers
    )
    assert kept.status_code == 200, kept.text
    assert (all_sources(settings)["desk"].spec.client or {})["auth"]["token"] == token

    moved = {**shown["client"], "base_url": "https://elsewhere.example.com"}
    refused = client.patch("/api/sources/desk", json={"client": moved}, headers=admin_headers)
    assert refused.status_code == 400
    assert "base_url changed" in refused.json()["error"]["message"]


def test_every_rest_secret_is_encrypted_and_masked_and_stays_on_its_host(
    client: Client, settings: Settings, admin_headers: dict[str, str]
) -> None:
    key, header = "query-key-6612", "header-key-7723"
    body = {
        "name": "crm_api",
        "kind": "rest_api",
        "client": {
            "base_url": "https://api.example.com/v1",
            "headers": {"X-API-Key": header, "Accept": "application/json"},
        },
        "tables": {"leads": {"endpoint": {"path": "leads", "params": {"api_key": key}}}},
    }
    response = client.post("/api/sources/", json=body, headers=admin_headers)
    assert response.status_code == 201, response.text
    shown = response.json()
    assert shown["client"]["headers"] == {"X-API-Key": "***", "Accept": "application/json"}
    assert shown["tables"]["leads"]["endpoint"]["params"] == {"api_key": "***"}
    with session_scope(settings.metadata_url) as session:
        raw = session.execute(text("select config, secrets from sources")).one()
    assert key not in str(raw.config) and header not in str(raw.config)
    assert key not in raw.secrets and header not in raw.secrets

    # Sent back masked: kept. Pointed at another host by an absolute path: refused.
    kept = client.patch(
        "/api/sources/crm_api", json={"tables": shown["tables"]}, headers=admin_headers
    )
    assert kept.status_code == 200, kept.text
    stored = all_sources(settings)["crm_api"].spec.tables["leads"].endpoint
    assert isinstance(stored, dict) and stored["params"] == {"api_key": key}
    elsewhere = {"leads": {"endpoint": {"path": "https://evil.example/x"}}}
    refused = client.patch(
        "/api/sources/crm_api", json={"tables": elsewhere}, headers=admin_headers
    )
    assert refused.status_code == 400
    assert "is a full URL" in refused.json()["error"]["message"]


def test_query_tables_and_odd_urls_list_and_test_without_a_500(
    client: Client, admin_headers: dict[str, str]
) -> None:
    query = {
        "name": "report",
        "kind": "database",
        "connection": "postgresql://postgres@127.0.0.1:5432/test?password=qs-secret-81",
        "tables": {"totals": {"query": "select 1 as id", "primaryKey": ["id"]}},
    }
    assert client.post("/api/sources/", json=query, headers=admin_headers).status_code == 201
    replica = {
        "name": "events_db",
        "kind": "mongodb",
        "connection": "mongodb://u:mongo-secret-82@h1:27017,h2:27017/app?replicaSet=rs",
        "tables": {"events": {}},
    }
    assert client.post("/api/sources/", json=replica, headers=admin_headers).status_code == 201
    listed = client.get("/api/sources/", headers=admin_headers)
    assert listed.status_code == 200, listed.text
    assert "qs-secret-81" not in listed.text and "mongo-secret-82" not in listed.text
    by_name = {item["name"]: item for item in listed.json()["items"]}
    assert by_name["report"]["tables"]["totals"]["query"] == "select 1 as id"
    assert by_name["report"]["connection"].endswith("?password=***")

    for name in ("report", "events_db"):
        tested = client.post(f"/api/sources/{name}/test", headers=admin_headers)
        assert tested.status_code == 200, tested.text
        assert "secret" not in tested.text


def test_destinations_are_listed_named_as_targets_and_kept_while_used(
    client: Client, admin_headers: dict[str, str], pg_table: str
) -> None:
    archive = {
        "name": "archive",
        "kind": "database",
        "destination": True,
        "connection": PG.format(password=SECRET),
    }
    response = client.post("/api/sources/", json=archive, headers=admin_headers)
    assert response.status_code == 201, response.text
    assert response.json()["destination"] is True

    unknown = {**database_source("billing", pg_table), "target": "nowhere"}
    response = client.post("/api/sources/", json=unknown, headers=admin_headers)
    assert response.status_code == 400
    assert "'nowhere' is not a destination (destinations: warehouse, archive)" in response.text
    named = {**database_source("billing", pg_table), "target": "archive"}
    response = client.post("/api/sources/", json=named, headers=admin_headers)
    assert response.status_code == 201, response.text
    assert response.json()["target"] == "archive"

    response = client.get("/api/destinations/", headers=admin_headers)
    assert response.status_code == 200, response.text
    listed = response.json()
    assert [(d["name"], d["kind"], d["origin"]) for d in listed] == [
        ("warehouse", "duckdb", "settings"),
        ("archive", "postgres", "store"),
    ]
    assert listed[1]["connection"] == "postgresql://postgres:***@127.0.0.1:5432/test"
    assert SECRET not in response.text

    response = client.delete("/api/sources/archive", headers=admin_headers)
    assert response.status_code == 409
    assert "the target of billing" in response.text
    response = client.patch(
        "/api/sources/billing", json={"target": "warehouse"}, headers=admin_headers
    )
    assert response.status_code == 200, response.text
    assert client.delete("/api/sources/archive", headers=admin_headers).status_code == 204
