"""``/api/jobs`` without Dagster: validation with precise errors, ownership, sharing,
listing with filters and sorting, the audit trail. (Runs through a real Dagster are
in ``test_jobs_end_to_end``.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import update

from api.app import create_app
from api.users.models import Role
from api.users.services import create_user_with_password
from headwater.db import session_scope
from headwater.settings import Settings
from orchestration.models import Job, Run
from orchestration.transform import run_dbt
from tests.integration.api.conftest import ADMIN, PASSWORD, VIEWER, Account, Login

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
ANALYST = Account("analyst@example.com", PASSWORD, "user")
COLLEAGUE = Account("colleague@example.com", PASSWORD, "user")


@dataclass(frozen=True)
class Api:
    client: Client
    settings: Settings
    headers: dict[str, dict[str, str]]

    def post(self, who: str, body: dict[str, Any]) -> Any:
        return self.client.post("/api/jobs", json=body, headers=self.headers[who])


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    settings_maker: Callable[..., Settings],
    seed: Callable[[str], dict[str, int]],
    login: Login,
) -> Iterator[Api]:
    settings = settings_maker(tmp_path_factory.mktemp("jobs_api"))
    seed(settings.metadata_url)
    with session_scope(settings.metadata_url) as session:
        for account in (ANALYST, COLLEAGUE):
            create_user_with_password(session, account.email, account.password, Role.USER)
    run_dbt(settings, "parse")  # transforms are checked against the project's manifest
    with TestClient(create_app(settings)) as client:
        headers = {
            "admin": login(client, ADMIN),
            "analyst": login(client, ANALYST),
            "colleague": login(client, COLLEAGUE),
            "viewer": login(client, VIEWER),
        }
        yield Api(client, settings, headers)


def unique(prefix: str = "job") -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def test_the_shape_existing_clients_send_is_accepted(api: Api) -> None:
    body = {
        "name": unique("Daily revenue"),
        "sourceId": "shop",
        "targetId": "warehouse",
        "query": "SELECT id, total FROM orders WHERE status = 'paid'",
        "schedule": "0 6 * * *",
    }
    response = api.post("analyst", body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["sourceId"] == "shop" and job["targetId"] == "warehouse"
    assert job["query"] == body["query"]
    assert (job["status"], job["lastRun"], job["enabled"]) == ("never_run", None, True)
    assert job["nextRunAt"].endswith("06:00:00Z")
    assert job["timezone"] == "UTC"


def test_the_richer_form_is_stored_and_read_back(api: Api) -> None:
    body = {
        "name": unique("Orders"),
        "sourceId": "shop",
        "tables": ["orders", "order_items"],
        "writeDisposition": "merge",
        "primaryKey": ["id"],
        "cursor": "updated_at",
        "transform": "stg_shop__orders+",
        "schedule": "@hourly",
        "timezone": "Europe/Paris",
        "retries": 2,
        "retryDelaySeconds": 30,
        "enabled": False,
        "description": "Orders every hour",
    }
    response = api.post("analyst", body)
    assert response.status_code == 201, response.text
    job = response.json()
    for key, value in body.items():
        assert job[key] == value, key
    assert job["nextRunAt"] is None  # disabled: it does not fire
    again = api.client.get(f"/api/jobs/{job['id']}", headers=api.headers["analyst"])
    assert again.json() == job


def test_a_query_in_another_dialect_is_transpiled_to_the_sources(api: Api) -> None:
    response = api.post(
        "analyst",
        {
            "name": unique(),
            "sourceId": "shop",
            "query": "SELECT id FROM orders WHERE created_at::date = DATE '2026-01-01'",
            "queryDialect": "postgres",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["query"] == (
        "SELECT id FROM orders WHERE DATE(created_at) = DATE('2026-01-01')"
    )


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"schedule": "* * * * * *"}, "schedule", "has 6"),
        ({"schedule": "0 0 1 1 * 2030"}, "schedule", "has 6"),
        ({"schedule": "@reboot"}, "schedule", "not supported"),
        ({"schedule": "61 * * * *"}, "schedule", "out of range"),
        ({"schedule": "*/0 * * * *"}, "schedule", "step of 0"),
        ({"schedule": "0 0 31 2 *"}, "schedule", "never fires"),
        ({"schedule": "0 0 L * *"}, "schedule", "not standard cron"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"query": "DELETE FROM orders"}, "query", "found DELETE"),
        ({"query": "SELECT 1; SELECT 2"}, "query", "found 2 statements"),
        ({"query": "SELEC 1"}, "query", "not valid sqlite (line 1, column 7)"),
        ({"query": "PRAGMA table_info(orders)"}, "query", "a SELECT is expected"),
        ({"sourceId": "nowhere"}, "sourceId", "no source named 'nowhere'"),
        ({"targetId": "nowhere"}, "targetId", "'nowhere' is not a destination"),
        ({"tables": ["orders", "ghosts"]}, "tables", "no table(s) ghosts"),
        ({"tables": ["orders"], "query": "select 1"}, "tables", "not both"),
        ({"transform": "no_such_model+"}, "transform", "selects no dbt model"),
        ({"sourceId": "web", "query": "select 1"}, "query", "not 'file'"),
        ({"query": "select id from orders", "writeDisposition": "merge"}, "primaryKey", "needs"),
    ],
)
def test_bad_fields_are_refused_with_a_message_naming_them(
    api: Api, change: dict[str, Any], field: str, message: str
) -> None:
    response = api.post("analyst", {"name": unique(), "sourceId": "shop", **change})
    assert response.status_code == 400, response.text
    error = response.json()["error"]["message"]
    assert error.startswith(f"{field}: "), error
    assert message in error, error


def test_names_are_unique_per_owner_only(api: Api) -> None:
    name = unique("Same name")
    assert api.post("analyst", {"name": name, "sourceId": "shop"}).status_code == 201
    again = api.post("analyst", {"name": name, "sourceId": "shop"})
    assert again.status_code == 409
    assert "already have a job named" in again.json()["error"]["message"]
    assert api.post("colleague", {"name": name, "sourceId": "shop"}).status_code == 201


def test_owners_and_admins_write_others_see_only_what_is_shared(api: Api) -> None:
    private = api.post("analyst", {"name": unique(), "sourceId": "shop"}).json()
    shared = api.post("analyst", {"name": unique(), "sourceId": "shop", "shared": True}).json()

    def get(who: str, job: dict[str, Any]) -> int:
        return api.client.get(f"/api/jobs/{job['id']}", headers=api.headers[who]).status_code

    assert [get(who, private) for who in ("analyst", "admin", "colleague", "viewer")] == [
        200,
        200,
        404,
        404,
    ]
    assert [get(who, shared) for who in ("analyst", "admin", "colleague", "viewer")] == [200] * 4
    patch = api.client.patch(
        f"/api/jobs/{shared['id']}", json={"retries": 1}, headers=api.headers["colleague"]
    )
    assert patch.status_code == 403
    patch = api.client.patch(
        f"/api/jobs/{shared['id']}", json={"retries": 1}, headers=api.headers["admin"]
    )
    assert patch.status_code == 200 and patch.json()["retries"] == 1

    listed = api.client.get("/api/jobs", params={"limit": 200}, headers=api.headers["colleague"])
    ids = {job["id"] for job in listed.json()["items"]}
    assert shared["id"] in ids and private["id"] not in ids


def test_enable_disable_update_and_delete_are_audited(api: Api) -> None:
    job = api.post("analyst", {"name": unique(), "sourceId": "shop", "schedule": "@daily"}).json()
    path = f"/api/jobs/{job['id']}"
    off = api.client.post(f"{path}/disable", headers=api.headers["analyst"])
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert off.json()["nextRunAt"] is None
    on = api.client.post(f"{path}/enable", headers=api.headers["analyst"])
    assert on.json()["enabled"] is True and on.json()["nextRunAt"] is not None
    changed = api.client.patch(
        path, json={"tables": ["orders"], "schedule": None}, headers=api.headers["analyst"]
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["tables"], changed.json()["schedule"]) == (["orders"], None)
    assert api.client.delete(path, headers=api.headers["analyst"]).status_code == 204
    assert api.client.get(path, headers=api.headers["analyst"]).status_code == 404
    audit = api.client.get(
        "/api/audit-log", params={"limit": 500}, headers=api.headers["admin"]
    ).json()["items"]
    actions = [
        e["action"] for e in audit if e["objectType"] == "job" and e["objectId"] == str(job["id"])
    ]
    assert sorted(actions) == sorted(
        ["job.create", "job.update", "job.update", "job.update", "job.delete"]
    )


def test_a_job_with_a_run_in_progress_is_deleted_only_when_asked_to_cancel(api: Api) -> None:
    job = api.post("analyst", {"name": unique(), "sourceId": "shop"}).json()
    with session_scope(api.settings.metadata_url) as session:
        session.add(
            Run(id=str(uuid.uuid4()), job_id=job["id"], status="running", rows_per_table={})
        )
    path = f"/api/jobs/{job['id']}"
    refused = api.client.delete(path, headers=api.headers["analyst"])
    assert refused.status_code == 409
    assert "cancelRuns=true" in refused.json()["error"]["details"]["hint"]
    # Cancelling needs Dagster, which is not running here: nothing is deleted.
    down = api.client.delete(path, params={"cancelRuns": "true"}, headers=api.headers["analyst"])
    assert down.status_code == 503
    assert api.client.get(path, headers=api.headers["analyst"]).status_code == 200


def test_the_list_filters_and_sorts(api: Api) -> None:
    source = "marketing"
    made = [
        api.post(
            "colleague", {"name": f"{letter} {uuid.uuid4().hex[:6]}", "sourceId": source}
        ).json()
        for letter in ("b", "a", "c")
    ]
    with session_scope(api.settings.metadata_url) as session:
        session.add(
            Run(id=str(uuid.uuid4()), job_id=made[0]["id"], status="failed", rows_per_table={})
        )
    headers = api.headers["colleague"]
    page = api.client.get(
        "/api/jobs", params={"sourceId": source, "sort": "-name"}, headers=headers
    ).json()
    assert [job["name"][0] for job in page["items"]] == ["c", "b", "a"]
    assert page["total"] == 3
    failed = api.client.get(
        "/api/jobs", params={"sourceId": source, "status": "failed"}, headers=headers
    ).json()
    assert [job["id"] for job in failed["items"]] == [made[0]["id"]]
    assert failed["items"][0]["lastRun"]["status"] == "failed"
    never = api.client.get(
        "/api/jobs", params={"sourceId": source, "status": "never_run"}, headers=headers
    ).json()
    assert never["total"] == 2
    runs = api.client.get(f"/api/jobs/{made[0]['id']}/runs", headers=headers).json()
    assert [run["status"] for run in runs["items"]] == ["failed"]


def test_the_dashboard_sums_up_the_visible_jobs_and_is_cached_until_a_run_changes(
    api: Api,
) -> None:
    from datetime import UTC, datetime, timedelta

    # A user of their own, and no job of another's shared: the dashboard covers
    # exactly the jobs made here.
    email = f"dash-{uuid.uuid4().hex[:6]}@example.com"
    with session_scope(api.settings.metadata_url) as session:
        create_user_with_password(session, email, PASSWORD, Role.USER)
        session.execute(update(Job).values(shared=False))
    login = api.client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}

    def create(body: dict[str, Any]) -> dict[str, Any]:
        response = api.client.post("/api/jobs", json=body, headers=headers)
        assert response.status_code == 201, response.text
        made: dict[str, Any] = response.json()
        return made

    steady = create({"name": "steady", "sourceId": "shop", "schedule": "@hourly"})
    flaky = create({"name": "flaky", "sourceId": "shop"})
    create({"name": "new", "sourceId": "shop", "schedule": "@daily", "enabled": False})
    now = datetime.now(UTC)

    def run(job: dict[str, Any], status: str, hours_ago: float, seconds: float, rows: int) -> None:
        queued = now - timedelta(hours=hours_ago)
        with session_scope(api.settings.metadata_url) as session:
            session.add(
                Run(
                    id=str(uuid.uuid4()),
                    job_id=job["id"],
                    status=status,
                    queued_at=queued,
                    started_at=queued,
                    finished_at=queued + timedelta(seconds=seconds),
                    rows_loaded=rows,
                    rows_per_table={},
                    error="boom" if status == "failed" else None,
                )
            )

    run(steady, "success", 50, 10, 100)  # two days ago
    run(steady, "success", 2, 20, 200)
    run(flaky, "success", 3, 30, 5)
    run(flaky, "failed", 1, 40, 0)

    first = api.client.get("/api/dashboard", headers=headers)
    assert first.status_code == 200, first.text
    assert first.headers["x-cache"] == "miss"
    board = first.json()
    assert (board["jobs"], board["enabled"]) == (3, 2)
    assert board["jobsByStatus"] == {"failed": 1, "never_run": 1, "success": 1}
    assert board["successRate24h"] == round(2 / 3, 4)
    assert board["successRate7d"] == 0.75
    assert len(board["perDay"]) == 14
    assert sum(day["runs"] for day in board["perDay"]) == 4
    assert sum(day["rowsLoaded"] for day in board["perDay"]) == 305
    durations = {d["jobId"]: d for d in board["durations"]}
    assert durations[steady["id"]]["averageSeconds"] == 15.0
    assert durations[flaky["id"]]["p95Seconds"] == 40.0
    assert [r["jobName"] for r in board["recent"]] == ["flaky", "steady", "flaky", "steady"]
    assert [n["jobName"] for n in board["nextRuns"]] == ["steady"]  # "new" is disabled
    assert [(f["name"], f["error"]) for f in board["failing"]] == [("flaky", "boom")]

    again = api.client.get("/api/dashboard", headers=headers)
    assert again.headers["x-cache"] == "hit"
    assert again.json() == board
    run(flaky, "success", 0.1, 5, 1)  # the sensor mirrors a new run
    after = api.client.get("/api/dashboard", headers=headers)
    assert after.headers["x-cache"] == "miss"
    assert after.json()["failing"] == []


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_launch_already_mirrored_by_the_sensor_is_recorded_once(
    store: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    from api.jobs.services import record_launch
    from headwater.migrate import upgrade
    from orchestration.models import Job

    url = (
        f"sqlite:///{tmp_path_factory.mktemp('launch') / 'meta.db'}"
        if store == "sqlite"
        else request.getfixturevalue("postgres_metadata_url")
    )
    upgrade(url)
    with session_scope(url) as session:
        job = Job(
            name=unique(),
            owner_id=1,
            source="shop",
            target="warehouse",
            timezone="UTC",
            retries=0,
            retry_delay_seconds=0,
            enabled=True,
            shared=False,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    run_id = str(uuid.uuid4())
    with session_scope(url) as session:
        session.add(Run(id=run_id, job_id=job_id, status="running", rows_per_table={}))
    with session_scope(url) as session:
        assert record_launch(session, job_id, run_id)[0].status == "running"  # kept
    fresh = str(uuid.uuid4())
    with session_scope(url) as session:
        launched, event = record_launch(session, job_id, fresh)
        assert launched.status == "queued"
        assert event is not None
        assert event["data"]["event"] == "queued"
        assert event["data"]["runId"] == fresh
    with session_scope(url) as session:
        assert session.get(Run, fresh) is not None
        # Launched twice (a retried request, two API processes): announced once.
        assert record_launch(session, job_id, fresh)[1] is None


def test_a_query_jobs_table_must_be_free_in_its_sources_schema(api: Api) -> None:
    clash = api.post("analyst", {"name": "Orders", "sourceId": "shop", "query": "select 1 as x"})
    assert clash.status_code == 400
    assert "already has a table 'orders'" in clash.json()["error"]["message"]
    name = f"Top {uuid.uuid4().hex[:6]}"
    first = api.post("analyst", {"name": name, "sourceId": "shop", "query": "select 1 as x"})
    assert first.status_code == 201, first.text
    second = api.post("colleague", {"name": name, "sourceId": "shop", "query": "select 2 as x"})
    assert second.status_code == 400
    assert f"job {first.json()['id']} already loads table" in second.json()["error"]["message"]
