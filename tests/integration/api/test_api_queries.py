"""Ad hoc SQL through the API against a real DuckDB warehouse catalogued by a real refresh:
each role within its schemas, bound parameters, the row cap, dialects, timeouts, a load
holding the file (503), history and re-runs, validation with line and column."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.users.models import Role
from api.users.services import create_user_with_password
from catalog.refresh import refresh
from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from tests.integration.api.conftest import ADMIN, PASSWORD, VIEWER, Account, make_settings

pytestmark = pytest.mark.integration

ANALYST = Account("analyst@example.com", PASSWORD, "user")
CAP = 1000
CUSTOMERS = 2500

Client = TestClient[Litestar]
Headers = dict[str, str]


@dataclass(frozen=True)
class Stack:
    client: Client
    settings: Settings
    headers: dict[str, Headers]  # by role

    def query(self, role: str, body: dict[str, Any], status: int = 200) -> Any:
        response = self.client.post("/api/queries", json=body, headers=self.headers[role])
        assert response.status_code == status, response.text
        return response.json()


def build_warehouse(path: Path) -> None:
    with duckdb.connect(str(path)) as connection:
        connection.execute(
            f"""
            CREATE SCHEMA marts; CREATE SCHEMA staging; CREATE SCHEMA raw_shop;
            CREATE TABLE marts.customers AS
              SELECT range AS customer_id, 'customer ' || range AS name,
                     (range * 1.25)::DECIMAL(12, 2) AS lifetime_value,
                     range % 3 = 0 AS is_vip
              FROM range(1, {CUSTOMERS} + 1);
            CREATE TABLE staging.stg_orders AS
              SELECT range AS order_id, range % 50 + 1 AS customer_id FROM range(1, 201);
            CREATE TABLE marts.events AS SELECT range AS event_id FROM range(1, 6);
            CREATE TABLE raw_shop.customers AS
              SELECT range AS id, 'c' || range || '@example.com' AS email FROM range(1, 11);
            """
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = make_settings(tmp_path_factory.mktemp("queries"), query_row_cap=CAP)
    build_warehouse(settings.duckdb_path)
    upgrade(settings.metadata_url)
    with session_scope(settings.metadata_url) as session:
        for account in (ADMIN, VIEWER, ANALYST):
            create_user_with_password(session, account.email, account.password, Role(account.role))
    refresh(settings)
    with TestClient(create_app(settings)) as client:
        headers = {}
        for account in (ADMIN, VIEWER, ANALYST):
            login = client.post(
                "/api/auth/login", json={"email": account.email, "password": account.password}
            )
            assert login.status_code == 200, login.text
            headers[account.role] = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        yield Stack(client, settings, headers)


def test_a_viewer_queries_the_marts_and_gets_typed_columns(stack: Stack) -> None:
    body = stack.query(
        "viewer",
        {
            "sql": "select customer_id, name, lifetime_value, is_vip from customers "
            "where customer_id <= 3 order by customer_id"
        },
    )
    assert body["columns"] == [
        {"name": "customer_id", "type": "BIGINT"},
        {"name": "name", "type": "VARCHAR"},
        {"name": "lifetime_value", "type": "DECIMAL(12,2)"},
        {"name": "is_vip", "type": "BOOLEAN"},
    ]
    assert body["rows"] == [
        [1, "customer 1", "1.25", False],
        [2, "customer 2", "2.50", False],
        [3, "customer 3", "3.75", True],
    ]
    assert (body["rowCount"], body["truncated"], body["cached"]) == (3, False, False)
    assert "marts.customers" in body["sql"] and "LIMIT" in body["sql"]
    assert body["elapsedMs"] > 0


def test_every_answer_is_capped_and_says_when_it_was_cut(stack: Stack) -> None:
    everything = stack.query("viewer", {"sql": "select * from marts.customers"})
    assert (everything["rowCount"], everything["truncated"]) == (CAP, True)
    asked = stack.query("viewer", {"sql": "select * from customers limit 5000"})
    assert (asked["rowCount"], asked["truncated"]) == (CAP, True)
    small = stack.query("viewer", {"sql": "select * from customers", "limit": 10})
    assert (small["rowCount"], small["truncated"]) == (10, True)
    exact = stack.query("viewer", {"sql": "select * from customers limit 7"})
    assert (exact["rowCount"], exact["truncated"]) == (7, False)


@pytest.mark.parametrize(
    ("role", "sql", "allowed"),
    [
        ("viewer", "select count(*) from staging.stg_orders", False),
        ("viewer", "select count(*) from raw_shop.customers", False),
        ("user", "select count(*) from staging.stg_orders", True),
        ("user", "select count(*) from raw_shop.customers", False),
        ("admin", "select count(*) from raw_shop.customers", True),
    ],
)
def test_each_role_reads_only_its_schemas(stack: Stack, role: str, sql: str, allowed: bool) -> None:
    if allowed:
        assert stack.query(role, {"sql": sql})["rowCount"] == 1
    else:
        error = stack.query(role, {"sql": sql}, status=400)["error"]
        assert "not readable with your role" in error["message"]


def test_parameters_are_bound_never_pasted(stack: Stack) -> None:
    sql = "select name from customers where name = $name or customer_id = $id"
    hostile = stack.query("viewer", {"sql": sql, "params": {"name": "x' or '1'='1", "id": 2}})
    assert hostile["rows"] == [["customer 2"]]
    assert "1'='1" not in hostile["sql"]
    missing = stack.query("viewer", {"sql": sql, "params": {"name": "x"}}, status=400)
    assert "No value given for parameter 'id'" in missing["error"]["message"]


def test_postgres_flavoured_sql_runs_on_the_duckdb_warehouse(stack: Stack) -> None:
    body = stack.query(
        "viewer",
        {
            "sql": "select name::text as label from customers where name ilike :p "
            "order by customer_id fetch first 2 rows only",
            "dialect": "postgres",
            "params": {"p": "CUSTOMER 1%"},
        },
    )
    assert body["rows"] == [["customer 1"], ["customer 10"]]


def test_refusals_name_the_reason_and_where(stack: Stack) -> None:
    cases = [
        ("delete from customers", "found a DELETE"),
        ("select * from read_csv('/etc/passwd')", "'read_csv' is not allowed"),
        ("select * from customers; drop table customers", "Exactly one statement"),
        ("select nam from customers", "Unknown column 'nam'"),
        ("select * from customer", "Unknown table 'customer'"),
    ]
    for sql, reason in cases:
        error = stack.query("viewer", {"sql": sql}, status=400)["error"]
        assert reason in error["message"], (sql, error)
    both = stack.query("admin", {"sql": "select * from customers"}, status=400)["error"]
    assert "write marts.customers or raw_shop.customers" in both["message"]
    near = stack.query("viewer", {"sql": "select * from customer"}, status=400)["error"]
    assert near["details"]["hint"] == "did you mean customers?"
    parse = stack.query("viewer", {"sql": "select * from\n  customers where ("}, status=400)
    assert parse["error"]["details"]["line"] == 2


def test_a_query_past_its_timeout_is_stopped(stack: Stack) -> None:
    started = time.monotonic()
    error = stack.query(
        "viewer",
        {
            "sql": "select count(*) from customers a, customers b, customers c",
            "timeoutSeconds": 0.5,
        },
        status=400,
    )["error"]
    assert "ran longer than 0.5 s" in error["message"]
    assert time.monotonic() - started < 10


def test_a_load_holding_the_warehouse_answers_503_with_retry_after(stack: Stack) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"c = duckdb.connect({str(stack.settings.duckdb_path)!r})\n"
            "print('holding', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        response = stack.client.post(
            "/api/queries", json={"sql": "select 1 from customers"}, headers=stack.headers["viewer"]
        )
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
    finally:
        holder.communicate("", timeout=30)
    assert stack.query("viewer", {"sql": "select 1 from customers limit 1"})["rowCount"] == 1


def test_history_is_per_user_and_a_past_query_runs_again(stack: Stack) -> None:
    stack.query("user", {"sql": "select count(*) as n from stg_orders"})
    stack.query("user", {"sql": "drop table customers"}, status=400)
    mine = stack.client.get("/api/queries/history", headers=stack.headers["user"]).json()
    ran = {"historyId": mine["items"][1]["id"]}
    outcomes = [(item["sql"], item["outcome"]) for item in mine["items"][:2]]
    assert outcomes == [
        ("drop table customers", "rejected"),
        ("select count(*) as n from stg_orders", "success"),
    ]
    assert all(item["userId"] == mine["items"][0]["userId"] for item in mine["items"])
    viewer_sees = stack.client.get("/api/queries/history", headers=stack.headers["viewer"]).json()
    assert ran["historyId"] not in {item["id"] for item in viewer_sees["items"]}
    admin_sees = stack.client.get("/api/queries/history", headers=stack.headers["admin"]).json()
    assert ran["historyId"] in {item["id"] for item in admin_sees["items"]}

    path = f"/api/queries/history/{ran['historyId']}/run"
    again = stack.client.post(path, headers=stack.headers["user"])
    assert again.status_code == 200, again.text
    assert again.json()["rows"] == [[200]]
    assert stack.client.post(path, headers=stack.headers["viewer"]).status_code == 404


def test_validation_reports_problems_and_what_a_query_reads(stack: Stack) -> None:
    def validate(sql: str) -> Any:
        response = stack.client.post(
            "/api/queries/validate", json={"sql": sql}, headers=stack.headers["user"]
        )
        assert response.status_code == 200, response.text
        return response.json()

    good = validate(
        "select c.name, count(o.order_id) from customers c "
        "join stg_orders o using (customer_id) group by 1"
    )
    assert good["valid"] and good["errors"] == []
    assert good["tables"] == ["marts.customers", "staging.stg_orders"]
    assert {"marts.customers.name", "staging.stg_orders.order_id"} <= set(good["columns"])
    assert "LIMIT 1001" in good["sql"]
    bad = validate("select *\nfrom customers\nwhere (")
    assert not bad["valid"] and bad["sql"] is None
    assert bad["errors"][0]["line"] == 3


def test_results_are_cached_by_canonical_sql_and_dropped_when_the_data_changes(
    stack: Stack,
) -> None:
    first = stack.query("viewer", {"sql": "select count(*) as n from events"})
    assert (first["rows"], first["cached"]) == ([[5]], False)
    again = stack.query("viewer", {"sql": "SELECT   COUNT(*) AS n\n  FROM events  "})
    assert (again["rows"], again["cached"]) == ([[5]], True)
    other_role = stack.query("user", {"sql": "select count(*) as n from events"})
    assert other_role["cached"] is False  # keyed by role
    with duckdb.connect(str(stack.settings.duckdb_path)) as connection:  # a load writes
        connection.execute("INSERT INTO marts.events VALUES (6)")
    after = stack.query("viewer", {"sql": "select count(*) as n from events"})
    assert (after["rows"], after["cached"]) == ([[6]], False)
    metrics = stack.client.get("/metrics").text
    hits = [line for line in metrics.splitlines() if 'namespace="queries",result="hit"' in line]
    assert hits and float(hits[0].rsplit(" ", 1)[1]) >= 1


def test_a_whole_result_streams_as_csv_or_json_lines(stack: Stack) -> None:
    sql = {"sql": "select customer_id, name, lifetime_value from customers order by 1"}
    response = stack.client.post("/api/queries/export", json=sql, headers=stack.headers["viewer"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["customer_id", "name", "lifetime_value"]
    assert len(rows) == CUSTOMERS + 1  # past the row cap of answers: an export is whole
    assert rows[1] == ["1", "customer 1", "1.25"]
    lines = stack.client.post(
        "/api/queries/export",
        params={"format": "jsonl"},
        json={
            "sql": "select customer_id, is_vip from customers where customer_id <= $n order by 1",
            "params": {"n": 3},
        },
        headers=stack.headers["viewer"],
    )
    assert lines.status_code == 200, lines.text
    assert [json.loads(line) for line in lines.text.splitlines()] == [
        {"customer_id": 1, "is_vip": False},
        {"customer_id": 2, "is_vip": False},
        {"customer_id": 3, "is_vip": True},
    ]
    refused = stack.client.post(
        "/api/queries/export",
        json={"sql": "select * from raw_shop.customers"},
        headers=stack.headers["viewer"],
    )
    assert refused.status_code == 400, refused.text


def test_an_export_stops_at_its_limit_and_an_oversized_answer_is_refused(stack: Stack) -> None:
    limited = stack.client.post(
        "/api/queries/export",
        json={"sql": "select customer_id from customers order by 1", "limit": 10},
        headers=stack.headers["viewer"],
    )
    assert limited.status_code == 200, limited.text
    assert limited.text.splitlines() == ["customer_id", *(str(i) for i in range(1, 11))]
    huge = stack.query(
        "viewer", {"sql": "select repeat(name, 7000) as wide from customers"}, status=400
    )["error"]
    assert "larger than 64 MB" in huge["message"] and "export" in huge["details"]["hint"]
