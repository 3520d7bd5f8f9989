"""The audit log: every change, who made it, from where, under which request id, before and
after (never a password or its hash); filters and paging; admins only; failures leave
nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.integration.api.conftest import Account

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
Login = Callable[[Client, Account], dict[str, str]]
TEST_CLIENT_ADDRESS = "testclient"  # what Litestar's TestClient presents as the peer
FIRST = "first-passphrase-123"
SECOND = "second-passphrase-456"
THIRD = "third-passphrase-789"
ENTRY_FIELDS = {
    "id",
    "at",
    "actorId",
    "actorEmail",
    "action",
    "objectType",
    "objectId",
    "clientAddress",
    "requestId",
    "before",
    "after",
}


def _json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _audit(client: Client, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    page: dict[str, Any] = _json(client.get("/api/audit-log", headers=headers, params=params))
    return page


def _everything(client: Client, headers: dict[str, str]) -> list[dict[str, Any]]:
    page = _audit(client, headers, limit=500)
    assert page["total"] == len(page["items"])
    items: list[dict[str, Any]] = page["items"]
    return items


def _sign_in(client: Client, email: str, password: str) -> tuple[httpx.Response, dict[str, str]]:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    body = _json(response)
    return response, {"Authorization": f"Bearer {body['accessToken']}"}


def _session_of(response: httpx.Response) -> str:
    claims = jwt.decode(response.json()["accessToken"], options={"verify_signature": False})
    return str(claims["sid"])


def _when(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00"))


def test_every_change_is_recorded_with_actor_object_address_and_request_id(
    client: Client, admin: Account
) -> None:
    started = datetime.now(UTC)
    admin_login, admin_headers = _sign_in(client, admin.email, admin.password)
    admin_id = admin_login.json()["user"]["id"]
    expected: list[tuple[httpx.Response, str, int, str, str, Any, Any]] = []
    # (response, action, actor id, object type, object id, before, after)

    expected.append(
        (admin_login, "auth.login", admin_id, "session", _session_of(admin_login), None, None)
    )
    created = client.post(
        "/api/users",
        headers={**admin_headers, "X-Request-ID": "create-ann-1"},
        json={"email": "ann@example.com", "name": "Ann", "role": "user", "password": FIRST},
    )
    assert created.headers["x-request-id"] == "create-ann-1"
    ann_id = _json(created, 201)["id"]
    ann = {"email": "ann@example.com", "name": "Ann", "role": "user", "isActive": True}
    expected.append((created, "user.create", admin_id, "user", str(ann_id), None, dict(ann)))

    url = f"/api/users/{ann_id}"

    def admin_patch(action: str, body: dict[str, Any], changes: dict[str, Any]) -> None:
        before = dict(ann)
        response = client.patch(url, headers=admin_headers, json=body)
        _json(response)
        ann.update(changes)
        expected.append((response, action, admin_id, "user", str(ann_id), before, dict(ann)))

    admin_patch("user.update", {"name": "Ann B"}, {"name": "Ann B"})
    admin_patch("user.set_role", {"role": "viewer"}, {"role": "viewer"})
    admin_patch("user.deactivate", {"isActive": False}, {"isActive": False})
    admin_patch("user.reactivate", {"isActive": True}, {"isActive": True})

    masked = {"password": "***"}
    given = client.post(f"{url}/password", headers=admin_headers, json={"password": SECOND})
    _json(given)
    expected.append((given, "user.reset_password", admin_id, "user", str(ann_id), None, masked))
    generated = client.post(f"{url}/password", headers=admin_headers, json={})
    new_password = _json(generated)["newPassword"]
    expected.append((generated, "user.reset_password", admin_id, "user", str(ann_id), None, masked))

    ann_login, ann_headers = _sign_in(client, "ann@example.com", new_password)
    expected.append(
        (ann_login, "auth.login", ann_id, "session", _session_of(ann_login), None, None)
    )
    renamed = client.patch("/api/users/me", headers=ann_headers, json={"name": "Ann C"})
    _json(renamed)
    before, ann["name"] = dict(ann), "Ann C"
    expected.append((renamed, "user.update", ann_id, "user", str(ann_id), before, dict(ann)))
    changed = client.patch(
        "/api/users/me",
        headers=ann_headers,
        json={"password": THIRD, "currentPassword": new_password},
    )
    _json(changed)
    expected.append((changed, "user.change_password", ann_id, "user", str(ann_id), None, masked))
    again, ann_headers = _sign_in(client, "ann@example.com", THIRD)
    expected.append((again, "auth.login", ann_id, "session", _session_of(again), None, None))
    logout = client.post("/api/auth/logout", headers=ann_headers)
    assert logout.status_code == 204
    expected.append((logout, "auth.logout", ann_id, "session", _session_of(again), None, None))
    finished = datetime.now(UTC)

    response = client.get("/api/audit-log", headers=admin_headers, params={"limit": 500})
    for secret in (admin.password, FIRST, SECOND, THIRD, new_password, "$argon2"):
        assert secret not in response.text
    entries = _json(response)["items"]
    emails = {admin_id: admin.email, ann_id: "ann@example.com"}
    recorded = []
    for change, action, actor_id, object_type, object_id, before, after in expected:
        request_id = change.headers["x-request-id"]
        matching = [entry for entry in entries if entry["requestId"] == request_id]
        assert len(matching) == 1, (action, matching)
        entry = matching[0]
        assert set(entry) == ENTRY_FIELDS
        assert {key: entry[key] for key in ENTRY_FIELDS - {"id", "at", "requestId"}} == {
            "actorId": actor_id,
            "actorEmail": emails[actor_id],
            "action": action,
            "objectType": object_type,
            "objectId": object_id,
            "clientAddress": TEST_CLIENT_ADDRESS,
            "before": before,
            "after": after,
        }, action
        assert started <= _when(entry) <= finished
        recorded.append(entry["id"])
    # Newest first.
    ours = [entry["id"] for entry in entries if entry["id"] in recorded]
    assert ours == sorted(recorded, reverse=True)
    assert recorded == sorted(recorded)


@pytest.fixture
def scene(client: Client, admin: Account, viewer: Account) -> dict[str, Any]:
    """Seeded users (created by the system), then: admin signs in, creates three users,
    the viewer signs in."""
    login, headers = _sign_in(client, admin.email, admin.password)
    created = [
        _json(
            client.post(
                "/api/users",
                headers=headers,
                json={"email": f"u{i}@example.com", "password": FIRST},
            ),
            201,
        )["id"]
        for i in range(3)
    ]
    viewer_login, _ = _sign_in(client, viewer.email, viewer.password)
    return {
        "headers": headers,
        "admin_id": login.json()["user"]["id"],
        "viewer_id": viewer_login.json()["user"]["id"],
        "created": created,
    }


def test_the_audit_log_filters_by_actor_action_and_object(
    client: Client, scene: dict[str, Any]
) -> None:
    headers, admin_id = scene["headers"], scene["admin_id"]

    def actions(**params: Any) -> list[tuple[str, str | None]]:
        page = _audit(client, headers, **params)
        assert page["total"] == len(page["items"])
        return [(entry["action"], entry["objectId"]) for entry in page["items"]]

    first, second, third = (str(user_id) for user_id in scene["created"])
    everything = _everything(client, headers)
    assert len(everything) == 3 + 1 + 3 + 1  # seeded users, admin login, creations, viewer login
    assert actions(actorId=admin_id) == [
        ("user.create", third),
        ("user.create", second),
        ("user.create", first),
        ("auth.login", everything[-4]["objectId"]),
    ]
    assert len(actions(action="user.create")) == 6
    assert len(actions(action="user.create", actorId=admin_id)) == 3
    assert [a for a, _ in actions(actorId=scene["viewer_id"])] == ["auth.login"]
    assert [a for a, _ in actions(objectType="session")] == ["auth.login", "auth.login"]
    assert actions(objectType="user", objectId=second) == [("user.create", second)]
    assert actions(objectId=second) == [("user.create", second)]
    assert actions(action="user.delete") == []
    assert actions(actorId=999_999) == []


def test_the_audit_log_pages_newest_first(client: Client, scene: dict[str, Any]) -> None:
    headers = scene["headers"]
    everything = _everything(client, headers)
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    first = _audit(client, headers, limit=3)
    second = _audit(client, headers, limit=3, offset=3)
    last = _audit(client, headers, limit=3, offset=6)
    assert [page["total"] for page in (first, second, last)] == [len(everything)] * 3
    assert (second["limit"], second["offset"]) == (3, 3)
    assert first["items"] + second["items"] + last["items"] == everything
    assert len(last["items"]) == len(everything) - 6
    assert _audit(client, headers, offset=100)["items"] == []
    assert _audit(client, headers, limit=500)["limit"] == 500


def test_the_audit_log_filters_by_time(client: Client, scene: dict[str, Any]) -> None:
    headers = scene["headers"]
    everything = _everything(client, headers)
    pivot = everything[3]
    newer_ids = [e["id"] for e in everything[:4]]
    older_ids = [e["id"] for e in everything[4:]]
    assert _when(everything[3]) > _when(everything[4])  # distinct times around the pivot

    def ids(**params: Any) -> list[int]:
        return [entry["id"] for entry in _audit(client, headers, **params)["items"]]

    # since is inclusive, until exclusive: together they split the log exactly.
    assert ids(since=pivot["at"]) == newer_ids
    assert ids(until=pivot["at"]) == older_ids
    assert ids(since=everything[-1]["at"], until=pivot["at"]) == older_ids
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (_when(everything[-1]) - timedelta(hours=1)).isoformat()
    assert ids(since=future) == []
    assert ids(until=past) == []
    assert ids(since=past, until=future) == [e["id"] for e in everything]


def test_time_filters_honour_the_offset_they_are_given(
    client: Client, scene: dict[str, Any]
) -> None:
    headers = scene["headers"]
    newest = _everything(client, headers)[0]
    at = _when(newest)
    east = timezone(timedelta(hours=5))
    west = timezone(timedelta(hours=-5))
    # The same instants as the UTC ones, written in other zones.
    since = (at - timedelta(seconds=1)).astimezone(east).isoformat()
    until = (at + timedelta(seconds=1)).astimezone(west).isoformat()
    assert newest["id"] in [e["id"] for e in _audit(client, headers, since=since)["items"]]
    assert newest["id"] in [e["id"] for e in _audit(client, headers, until=until)["items"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 501},
        {"limit": 0},
        {"offset": -1},
        {"actorId": 2**63},
        {"actorId": 0},
        {"actorId": "admin"},
        {"since": "yesterday"},
        {"until": "2024-13-01T00:00:00Z"},
        {"action": "x" * 65},
        {"objectId": "1" * 65},
    ],
    ids=[
        "limit above 500",
        "limit 0",
        "negative offset",
        "actor id of 64 bits",
        "actor id 0",
        "actor id not a number",
        "since not a time",
        "until not a date",
        "long action",
        "long object id",
    ],
)
def test_the_audit_log_rejects_bad_parameters(
    client: Client, login: Login, admin: Account, params: dict[str, Any]
) -> None:
    response = client.get("/api/audit-log", headers=login(client, admin), params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_only_admins_read_the_audit_log(
    client: Client, login: Login, admin: Account, viewer: Account
) -> None:
    headers = login(client, admin)
    user = {"email": "plain@example.com", "role": "user", "password": FIRST}
    _json(client.post("/api/users", headers=headers, json=user), 201)
    assert client.get("/api/audit-log").status_code == 401
    for email, password in ((viewer.email, viewer.password), (user["email"], FIRST)):
        _, other_headers = _sign_in(client, email, password)
        response = client.get("/api/audit-log", headers=other_headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert "items" not in response.json()


def test_a_change_that_fails_leaves_no_entry(
    client: Client, admin: Account, viewer: Account
) -> None:
    admin_login, headers = _sign_in(client, admin.email, admin.password)
    _, viewer_headers = _sign_in(client, viewer.email, viewer.password)
    admin_url = f"/api/users/{admin_login.json()['user']['id']}"
    before = _everything(client, headers)

    failures = [
        (client.patch(admin_url, headers=headers, json={"role": "user", "name": "X"}), 409),
        (client.patch(admin_url, headers=headers, json={"isActive": False}), 409),
        (client.post("/api/users", headers=headers, json={"email": viewer.email}), 409),
        (
            client.post(
                "/api/users", headers=headers, json={"email": "s@example.com", "password": "short"}
            ),
            400,
        ),
        (client.patch("/api/users/777", headers=headers, json={"name": "Nobody"}), 404),
        (client.post("/api/users/777/password", headers=headers, json={}), 404),
        (
            client.patch(
                "/api/users/me",
                headers=viewer_headers,
                json={"password": SECOND, "currentPassword": "not-the-password"},
            ),
            401,
        ),
        (client.post("/api/users", headers=viewer_headers, json={"email": "v@example.com"}), 403),
    ]
    assert [response.status_code for response, _ in failures] == [s for _, s in failures]
    assert _everything(client, headers) == before
    # And the refused admin change changed nothing either: the name stays, the role too.
    kept = _json(client.get(admin_url, headers=headers))
    assert (kept["name"], kept["role"]) == ("", "admin")


def test_a_change_that_changes_nothing_is_not_recorded(
    client: Client, admin: Account, viewer: Account
) -> None:
    admin_login, headers = _sign_in(client, admin.email, admin.password)
    admin_url = f"/api/users/{admin_login.json()['user']['id']}"
    before = _everything(client, headers)
    _json(client.patch(admin_url, headers=headers, json={}))
    _json(client.patch(admin_url, headers=headers, json={"role": "admin", "isActive": True}))
    _json(client.patch("/api/users/me", headers=headers, json={"name": "  "}))
    assert _everything(client, headers) == before
