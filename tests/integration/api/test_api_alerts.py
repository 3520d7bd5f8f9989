"""Alert rules and fired alerts through the API: what each role may make, clear errors
for rules that cannot work, the defaults guarded, each user's alerts their own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from api.users.models import Role, User
from api.users.services import create_user_with_password
from headwater.db import session_scope
from headwater.notify.alerting import Finding, apply
from headwater.notify.models import AlertRule
from headwater.settings import Settings
from orchestration.models import Job
from tests.integration.api.conftest import ADMIN, PASSWORD, Account, Login

pytestmark = pytest.mark.integration

ANALYST = Account("analyst@example.com", PASSWORD, "user")
COLLEAGUE = Account("colleague@example.com", PASSWORD, "user")


def _setup(settings: Settings) -> dict[str, int]:
    ids: dict[str, int] = {}
    with session_scope(settings.metadata_url) as session:
        for account in (ANALYST, COLLEAGUE):
            user = create_user_with_password(session, account.email, PASSWORD, Role.USER)
            session.flush()
            ids[account.email] = user.id
            job = Job(
                name=f"job {uuid.uuid4().hex[:6]}",
                owner_id=user.id,
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
            ids[f"job:{account.email}"] = job.id
        ids["admin"] = session.scalar(select(User.id).where(User.email == ADMIN.email)) or 0
    return ids


def _error(response: Any) -> str:
    assert response.status_code == 400, response.text
    return str(response.json()["error"]["message"])


def test_users_watch_their_own_jobs_in_app_and_admins_anything(
    client: TestClient[Litestar], settings: Settings, login: Login
) -> None:
    ids = _setup(settings)
    analyst, colleague, admin = (
        login(client, ANALYST),
        login(client, COLLEAGUE),
        login(client, ADMIN),
    )
    mine = str(ids[f"job:{ANALYST.email}"])
    theirs = str(ids[f"job:{COLLEAGUE.email}"])
    base = {"name": "my job failed", "condition": "run_failed", "scope": "job"}

    created = client.post("/api/alert-rules", json={**base, "scopeValue": mine}, headers=analyst)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["ownerId"] == ids[ANALYST.email] and rule["builtin"] is None

    refused = {
        f"no job {theirs} of yours": {**base, "scopeValue": theirs},
        "watch your own jobs": {**base, "scope": "all"},
        "only admins send alerts to channels": {**base, "scopeValue": mine, "channelIds": [1]},
        "needs one (seconds)": {**base, "scopeValue": mine, "condition": "duration_above"},
        "names the job's id": {**base, "scopeValue": "orders"},
    }
    for expected, body in refused.items():
        assert expected in _error(client.post("/api/alert-rules", json=body, headers=analyst))

    # Admins: any scope, service rules on 'all' only, percentages at most 100.
    watched = client.post(
        "/api/alert-rules",
        json={
            "name": "slow",
            "condition": "duration_above",
            "threshold": 600,
            "scope": "job",
            "scopeValue": theirs,
        },
        headers=admin,
    )
    assert watched.status_code == 201, watched.text
    service = {
        "name": "p95",
        "condition": "api_p95_above",
        "threshold": 250,
        "scope": "source",
        "scopeValue": "shop",
    }
    assert "use scope 'all'" in _error(client.post("/api/alert-rules", json=service, headers=admin))
    rate = {"name": "rate", "condition": "success_rate_below", "threshold": 120}
    assert "percentage" in _error(client.post("/api/alert-rules", json=rate, headers=admin))
    missing = {"name": "mail", "condition": "run_failed", "channelIds": [424242]}
    assert "no channel 424242" in _error(
        client.post("/api/alert-rules", json=missing, headers=admin)
    )

    # Each user lists their own; admins see all, the defaults included.
    listed = client.get("/api/alert-rules", headers=analyst).json()
    assert [r["id"] for r in listed["items"]] == [rule["id"]]
    assert client.get(f"/api/alert-rules/{rule['id']}", headers=colleague).status_code == 404
    everything = client.get("/api/alert-rules", params={"limit": 200}, headers=admin).json()
    builtins = {r["builtin"] for r in everything["items"] if r["builtin"]}
    assert builtins == {
        "job_failed",
        "job_success_rate",
        "cache_hit_rate",
        "api_error_rate",
        "api_p95_latency",
    }

    changed = client.patch(
        f"/api/alert-rules/{rule['id']}",
        json={"quietMinutes": 30, "enabled": False},
        headers=analyst,
    )
    assert changed.status_code == 200 and changed.json()["quietMinutes"] == 30

    default = next(r for r in everything["items"] if r["builtin"] == "job_failed")
    refused_delete = client.delete(f"/api/alert-rules/{default['id']}", headers=admin)
    assert refused_delete.status_code == 409
    assert "disable it instead" in refused_delete.text
    disabled = client.patch(
        f"/api/alert-rules/{default['id']}", json={"enabled": False}, headers=admin
    )
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert client.delete(f"/api/alert-rules/{rule['id']}", headers=analyst).status_code == 204

    # Deleting a job takes its rules with it: a job given the same id later inherits none.
    kept = client.post("/api/alert-rules", json={**base, "scopeValue": mine}, headers=analyst)
    assert kept.status_code == 201
    assert client.delete(f"/api/jobs/{mine}", headers=analyst).status_code == 204
    assert client.get(f"/api/alert-rules/{kept.json()['id']}", headers=analyst).status_code == 404


def test_each_user_sees_the_alerts_of_their_jobs(
    client: TestClient[Litestar], settings: Settings, login: Login
) -> None:
    ids = _setup(settings)
    with session_scope(settings.metadata_url) as session:
        rule = session.scalar(select(AlertRule).where(AlertRule.builtin == "job_failed"))
        assert rule is not None
        for email in (ANALYST.email, COLLEAGUE.email):
            apply(
                session,
                Finding(
                    rule=rule,
                    subject=f"job:{ids[f'job:{email}']}",
                    firing=True,
                    message=f"job of {email} failed",
                    owner_id=ids[email],
                ),
            )
    analyst, admin = login(client, ANALYST), login(client, ADMIN)
    mine = client.get("/api/alerts", headers=analyst).json()
    assert [a["message"] for a in mine["items"]] == [f"job of {ANALYST.email} failed"]
    assert mine["items"][0]["state"] == "firing" and mine["items"][0]["ruleName"] == rule.name
    assert client.get("/api/alerts", headers=admin).json()["total"] == 2
    resolved = client.get("/api/alerts", params={"state": "resolved"}, headers=admin).json()
    assert resolved["total"] == 0
    note = client.get("/api/notifications", headers=analyst).json()["items"][0]
    assert note["alertId"] == mine["items"][0]["id"] and note["level"] == "error"
