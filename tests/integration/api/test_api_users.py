"""The users API end to end: your own account, and account management by an admin."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from headwater.settings import Settings
from tests.integration.api.conftest import Account

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
Login = Callable[[Client, Account], dict[str, str]]
USER_FIELDS = {"id", "email", "name", "role", "isActive", "createdAt", "lastLoginAt"}
NEW_PASSWORD = "a-brand-new-passphrase"


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(item) for item in value))
    return set()


def _ok(response: httpx.Response, status: int = 200) -> Any:
    """The body of a successful answer, which never shows a password hash."""
    assert response.status_code == status, response.text
    assert "$argon2" not in response.text
    body = response.json()
    assert not {key for key in _keys(body) if "hash" in key.lower()}
    return body


def _error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    return error


def _sign_in(client: Client, email: str, password: str) -> int:
    return client.post("/api/auth/login", json={"email": email, "password": password}).status_code


def _bearer(client: Client, email: str, password: str) -> dict[str, str]:
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def _user_id(client: Client, headers: dict[str, str], email: str) -> int:
    page = _ok(client.get("/api/users", headers=headers, params={"search": email}))
    matches = [user["id"] for user in page["items"] if user["email"] == email]
    assert len(matches) == 1, page
    return int(matches[0])


def _create(client: Client, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = _ok(client.post("/api/users", headers=headers, json=body), 201)
    return created


@pytest.fixture
def admin_headers(client: Client, login: Login, admin: Account) -> dict[str, str]:
    return login(client, admin)


@dataclass(frozen=True)
class Shared:
    """One seeded store for the tests whose requests are all refused: they change nothing."""

    client: Client
    admin_headers: dict[str, str]


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory,
    settings_maker: Callable[..., Settings],
    seed: Callable[[str], dict[str, int]],
    login: Login,
    admin: Account,
) -> Iterator[Shared]:
    settings = settings_maker(tmp_path_factory.mktemp("users"), login_attempts_per_address=1000)
    seed(settings.metadata_url)
    with TestClient(create_app(settings)) as test_client:
        yield Shared(test_client, login(test_client, admin))


# --------------------------------------------------------------------------- your account


def test_me_is_your_own_account(client: Client, login: Login, viewer: Account) -> None:
    me = _ok(client.get("/api/users/me", headers=login(client, viewer)))
    assert set(me) == USER_FIELDS
    assert (me["email"], me["role"], me["isActive"], me["name"]) == (
        viewer.email,
        "viewer",
        True,
        "",
    )
    assert me["lastLoginAt"] is not None


def test_a_viewer_may_rename_themselves(client: Client, login: Login, viewer: Account) -> None:
    headers = login(client, viewer)
    renamed = _ok(client.patch("/api/users/me", headers=headers, json={"name": "  Vera   Viewer "}))
    assert renamed["name"] == "Vera Viewer"
    assert renamed["role"] == "viewer"
    assert _ok(client.get("/api/users/me", headers=headers))["name"] == "Vera Viewer"


def test_you_cannot_give_yourself_a_role_or_anything_but_a_name_or_password(
    shared: Shared, login: Login, viewer: Account
) -> None:
    client = shared.client
    headers = login(client, viewer)
    for body in ({"role": "admin"}, {"isActive": True}, {"email": "x@example.com"}):
        _error(client.patch("/api/users/me", headers=headers, json=body), 400, "invalid_request")
    assert _ok(client.get("/api/users/me", headers=headers))["role"] == "viewer"


def test_changing_your_password_needs_the_current_one(
    client: Client, login: Login, viewer: Account
) -> None:
    headers = login(client, viewer)
    missing = client.patch("/api/users/me", headers=headers, json={"password": NEW_PASSWORD})
    assert "currentPassword" in _error(missing, 400, "invalid_request")["message"]
    wrong = client.patch(
        "/api/users/me",
        headers=headers,
        json={"password": NEW_PASSWORD, "currentPassword": "not-my-password"},
    )
    _error(wrong, 401, "unauthorized")
    too_short = client.patch(
        "/api/users/me",
        headers=headers,
        json={"password": "short", "currentPassword": viewer.password},
    )
    _error(too_short, 400, "invalid_request")
    alone = client.patch("/api/users/me", headers=headers, json={"currentPassword": "x" * 12})
    assert alone.status_code == 200  # without a new password it is simply not needed
    # None of the refused attempts changed anything: the token and the password still work.
    assert client.get("/api/users/me", headers=headers).status_code == 200
    assert _sign_in(client, viewer.email, NEW_PASSWORD) == 401

    changed = client.patch(
        "/api/users/me",
        headers=headers,
        json={"password": NEW_PASSWORD, "currentPassword": viewer.password},
    )
    _ok(changed)
    assert NEW_PASSWORD not in changed.text
    assert client.get("/api/users/me", headers=headers).status_code == 401
    assert _sign_in(client, viewer.email, viewer.password) == 401
    assert _sign_in(client, viewer.email, NEW_PASSWORD) == 200


def test_you_may_change_name_and_password_at_once(
    client: Client, login: Login, viewer: Account
) -> None:
    headers = login(client, viewer)
    body = {"name": "Vera", "password": NEW_PASSWORD, "currentPassword": viewer.password}
    assert _ok(client.patch("/api/users/me", headers=headers, json=body))["name"] == "Vera"
    me = _ok(client.get("/api/users/me", headers=_bearer(client, viewer.email, NEW_PASSWORD)))
    assert me["name"] == "Vera"


# --------------------------------------------------------------------------- creating users


def test_admin_creates_a_user_with_a_given_password(
    client: Client, admin_headers: dict[str, str]
) -> None:
    created = _create(
        client,
        admin_headers,
        email="  Ann@Example.COM ",
        name="Ann Analyst",
        role="user",
        password=NEW_PASSWORD,
    )
    assert set(created) == USER_FIELDS | {"initialPassword"}
    assert created["initialPassword"] is None
    assert (created["email"], created["name"], created["role"], created["isActive"]) == (
        "ann@example.com",
        "Ann Analyst",
        "user",
        True,
    )
    assert created["lastLoginAt"] is None
    assert _sign_in(client, "ANN@example.com", NEW_PASSWORD) == 200
    fetched = _ok(client.get(f"/api/users/{created['id']}", headers=admin_headers))
    assert fetched["email"] == "ann@example.com"
    assert fetched["lastLoginAt"] is not None


def test_a_generated_password_is_shown_once_and_works(
    client: Client, admin_headers: dict[str, str]
) -> None:
    created = _create(client, admin_headers, email="gen@example.com")
    password = created["initialPassword"]
    assert isinstance(password, str)
    assert len(password) >= 12
    assert created["role"] == "user"  # the default role
    assert _sign_in(client, "gen@example.com", password) == 200
    again = client.get(f"/api/users/{created['id']}", headers=admin_headers)
    assert password not in again.text
    assert "initialPassword" not in _ok(again)
    other = _create(client, admin_headers, email="gen2@example.com")
    assert other["initialPassword"] != password


def test_a_duplicate_email_is_a_conflict_whatever_its_case(shared: Shared, viewer: Account) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    response = client.post(
        "/api/users", headers=admin_headers, json={"email": viewer.email.upper(), "role": "user"}
    )
    _error(response, 409, "conflict")
    page = _ok(client.get("/api/users", headers=admin_headers, params={"search": "viewer@"}))
    assert page["total"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email"},
        {"email": "a@b"},
        {"email": "short@example.com", "password": "elevenchars"},
        {"email": "role@example.com", "role": "superuser"},
        {"email": "field@example.com", "isAdmin": True},
        {"email": "hash@example.com", "passwordHash": "$argon2id$v=19$m=65536,t=3,p=4$x$y"},
        {"role": "user"},
        {"email": "long@example.com", "name": "n" * 201},
    ],
    ids=[
        "bad email",
        "no domain dot",
        "short password",
        "unknown role",
        "unknown field",
        "hash field",
        "no email",
        "long name",
    ],
)
def test_creating_a_user_rejects_bad_input(shared: Shared, body: dict[str, Any]) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    _error(client.post("/api/users", headers=admin_headers, json=body), 400, "invalid_request")
    assert _ok(client.get("/api/users", headers=admin_headers))["total"] == 3


# --------------------------------------------------------------------------- listing


def test_list_users_pages_in_email_order(client: Client, admin_headers: dict[str, str]) -> None:
    for name in ("b", "d", "f"):
        _create(client, admin_headers, email=f"{name}@example.org", password=NEW_PASSWORD)
    everyone = _ok(client.get("/api/users", headers=admin_headers))
    emails = [user["email"] for user in everyone["items"]]
    assert emails == sorted(emails)
    assert (everyone["total"], everyone["limit"], everyone["offset"]) == (6, 50, 0)
    page = _ok(client.get("/api/users", headers=admin_headers, params={"limit": 2, "offset": 3}))
    assert [user["email"] for user in page["items"]] == emails[3:5]
    assert (page["total"], page["limit"], page["offset"]) == (6, 2, 3)
    beyond = _ok(client.get("/api/users", headers=admin_headers, params={"offset": 10}))
    assert (beyond["items"], beyond["total"]) == ([], 6)
    assert set(everyone["items"][0]) == USER_FIELDS


def test_list_users_filters_by_role_activity_and_search(
    client: Client, admin_headers: dict[str, str], retired: Account
) -> None:
    _create(client, admin_headers, email="carla@example.org", name="Carla Percent", role="viewer")

    def emails(**params: Any) -> list[str]:
        page = _ok(client.get("/api/users", headers=admin_headers, params=params))
        assert page["total"] == len(page["items"])
        return [user["email"] for user in page["items"]]

    assert emails(role="viewer") == ["carla@example.org", "viewer@example.com"]
    assert emails(role="admin") == ["admin@example.com"]
    assert emails(active="false") == [retired.email]
    assert retired.email not in emails(active="true")
    assert len(emails(active="true")) == 3
    assert emails(role="user", active="false") == [retired.email]
    assert emails(search="EXAMPLE.ORG") == ["carla@example.org"]
    assert emails(search="percent") == ["carla@example.org"]  # the name matches too
    # Wildcards are matched literally, not as SQL patterns.
    assert emails(search="%") == []
    assert emails(search="_") == []


@pytest.mark.parametrize(
    "params",
    [{"limit": 201}, {"limit": 0}, {"offset": -1}, {"role": "superuser"}, {"active": "maybe"}],
    ids=["limit above 200", "limit 0", "negative offset", "unknown role", "not a boolean"],
)
def test_list_users_rejects_bad_parameters(shared: Shared, params: dict[str, Any]) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    _error(client.get("/api/users", headers=admin_headers, params=params), 400, "invalid_request")


def test_list_users_accepts_the_largest_page(shared: Shared) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    page = _ok(client.get("/api/users", headers=admin_headers, params={"limit": 200}))
    assert (page["limit"], page["total"]) == (200, 3)


# --------------------------------------------------------------------------- one user


def test_get_a_user_and_the_answers_for_ids_that_do_not_exist(
    shared: Shared, viewer: Account
) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    viewer_id = _user_id(client, admin_headers, viewer.email)
    user = _ok(client.get(f"/api/users/{viewer_id}", headers=admin_headers))
    assert (user["id"], user["email"], user["role"]) == (viewer_id, viewer.email, "viewer")
    error = _error(client.get("/api/users/999999", headers=admin_headers), 404, "not_found")
    assert error["requestId"]
    _error(client.get(f"/api/users/{2**63 - 1}", headers=admin_headers), 404, "not_found")
    for bad in (str(2**63), str(2**64), "0", "-1"):
        for method, suffix, body in (
            ("GET", "", None),
            ("PATCH", "", {"name": "x"}),
            ("POST", "/password", {"password": NEW_PASSWORD}),
        ):
            response = client.request(
                method, f"/api/users/{bad}{suffix}", headers=admin_headers, json=body
            )
            _error(response, 400, "invalid_request")


def test_changes_to_a_user_that_does_not_exist_are_404(shared: Shared) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    patched = client.patch("/api/users/424242", headers=admin_headers, json={"role": "viewer"})
    _error(patched, 404, "not_found")
    reset = client.post("/api/users/424242/password", headers=admin_headers, json={})
    _error(reset, 404, "not_found")


# --------------------------------------------------------------------------- changing users


def test_admin_changes_name_role_and_active_flag(
    client: Client, admin_headers: dict[str, str], viewer: Account
) -> None:
    viewer_id = _user_id(client, admin_headers, viewer.email)
    url = f"/api/users/{viewer_id}"
    renamed = _ok(client.patch(url, headers=admin_headers, json={"name": " Vera  V "}))
    assert (renamed["name"], renamed["role"], renamed["isActive"]) == ("Vera V", "viewer", True)

    promoted = _ok(client.patch(url, headers=admin_headers, json={"role": "user"}))
    assert promoted["role"] == "user"
    assert _sign_in(client, viewer.email, viewer.password) == 200
    assert _ok(client.get(url, headers=admin_headers))["role"] == "user"

    deactivated = _ok(client.patch(url, headers=admin_headers, json={"isActive": False}))
    assert deactivated["isActive"] is False
    assert _sign_in(client, viewer.email, viewer.password) == 401

    reactivated = _ok(client.patch(url, headers=admin_headers, json={"isActive": True}))
    assert reactivated["isActive"] is True
    assert _sign_in(client, viewer.email, viewer.password) == 200
    assert _ok(client.get(url, headers=admin_headers))["name"] == "Vera V"


def test_a_deactivated_user_can_be_reactivated(
    client: Client, admin_headers: dict[str, str], retired: Account
) -> None:
    assert _sign_in(client, retired.email, retired.password) == 401
    retired_id = _user_id(client, admin_headers, retired.email)
    body = {"isActive": True}
    _ok(client.patch(f"/api/users/{retired_id}", headers=admin_headers, json=body))
    assert _sign_in(client, retired.email, retired.password) == 200


@pytest.mark.parametrize(
    "body",
    [{"role": "root"}, {"isActive": "yes"}, {"name": "n" * 201}, {"passwordHash": "x"}, {"id": 1}],
    ids=["unknown role", "not a boolean", "long name", "hash field", "id field"],
)
def test_changing_a_user_rejects_bad_input(
    shared: Shared, viewer: Account, body: dict[str, Any]
) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    viewer_id = _user_id(client, admin_headers, viewer.email)
    response = client.patch(f"/api/users/{viewer_id}", headers=admin_headers, json=body)
    _error(response, 400, "invalid_request")
    assert _sign_in(client, viewer.email, viewer.password) == 200


def test_the_last_active_admin_can_be_neither_demoted_nor_deactivated(
    client: Client, admin_headers: dict[str, str], admin: Account
) -> None:
    admin_id = _user_id(client, admin_headers, admin.email)
    url = f"/api/users/{admin_id}"
    for body in ({"role": "user"}, {"role": "viewer"}, {"isActive": False}):
        error = _error(client.patch(url, headers=admin_headers, json=body), 409, "conflict")
        assert "last active admin" in error["message"]
    # Nothing changed, and the admin's token still works.
    kept = _ok(client.get(url, headers=admin_headers))
    assert (kept["role"], kept["isActive"]) == ("admin", True)

    # An inactive admin does not count.
    dormant = _create(
        client, admin_headers, email="dormant@example.com", role="admin", password=NEW_PASSWORD
    )
    dormant_url = f"/api/users/{dormant['id']}"
    _ok(client.patch(dormant_url, headers=admin_headers, json={"isActive": False}))
    _error(client.patch(url, headers=admin_headers, json={"role": "user"}), 409, "conflict")

    # Once another active admin exists, the first may step down.
    _ok(client.patch(dormant_url, headers=admin_headers, json={"isActive": True}))
    demoted = _ok(client.patch(url, headers=admin_headers, json={"role": "viewer"}))
    assert demoted["role"] == "viewer"
    assert client.get("/api/users", headers=admin_headers).status_code == 401  # tokens ended
    other_admin = _bearer(client, "dormant@example.com", NEW_PASSWORD)
    # Now the other one is the last admin.
    last = client.patch(dormant_url, headers=other_admin, json={"isActive": False})
    _error(last, 409, "conflict")
    reactivated_first = client.patch(url, headers=other_admin, json={"role": "admin"})
    assert _ok(reactivated_first)["role"] == "admin"
    deactivated = _ok(client.patch(url, headers=other_admin, json={"isActive": False}))
    assert deactivated["isActive"] is False


# --------------------------------------------------------------------------- passwords


def test_admin_resets_a_password_to_a_given_one(
    client: Client, admin_headers: dict[str, str], viewer: Account
) -> None:
    viewer_id = _user_id(client, admin_headers, viewer.email)
    viewer_token = _bearer(client, viewer.email, viewer.password)
    reset = client.post(
        f"/api/users/{viewer_id}/password", headers=admin_headers, json={"password": NEW_PASSWORD}
    )
    body = _ok(reset)
    assert NEW_PASSWORD not in reset.text
    assert body["newPassword"] is None
    assert set(body["user"]) == USER_FIELDS
    assert body["user"]["id"] == viewer_id
    assert client.get("/api/users/me", headers=viewer_token).status_code == 401
    assert _sign_in(client, viewer.email, viewer.password) == 401
    assert _sign_in(client, viewer.email, NEW_PASSWORD) == 200


def test_admin_resets_a_password_to_a_generated_one(
    client: Client, admin_headers: dict[str, str], viewer: Account
) -> None:
    viewer_id = _user_id(client, admin_headers, viewer.email)
    body = _ok(client.post(f"/api/users/{viewer_id}/password", headers=admin_headers, json={}))
    generated = body["newPassword"]
    assert isinstance(generated, str)
    assert len(generated) >= 12
    assert _sign_in(client, viewer.email, viewer.password) == 401
    assert _sign_in(client, viewer.email, generated) == 200


@pytest.mark.parametrize(
    "body",
    [{"password": "too-short"}, {"password": None, "notify": True}, {"newPassword": "x" * 20}],
    ids=["short", "unknown field", "response field"],
)
def test_a_bad_reset_changes_nothing(shared: Shared, viewer: Account, body: dict[str, Any]) -> None:
    client, admin_headers = shared.client, shared.admin_headers
    viewer_id = _user_id(client, admin_headers, viewer.email)
    response = client.post(f"/api/users/{viewer_id}/password", headers=admin_headers, json=body)
    _error(response, 400, "invalid_request")
    assert _sign_in(client, viewer.email, viewer.password) == 200


def test_no_response_carries_a_password_hash(
    client: Client, admin_headers: dict[str, str], login: Login, viewer: Account
) -> None:
    """Every users endpoint, success and error alike (``_ok`` checks each success)."""
    created = _create(client, admin_headers, email="h@example.com", password=NEW_PASSWORD)
    url = f"/api/users/{created['id']}"
    _ok(client.get("/api/users", headers=admin_headers, params={"limit": 200}))
    _ok(client.get(url, headers=admin_headers))
    _ok(client.patch(url, headers=admin_headers, json={"name": "H", "role": "viewer"}))
    _ok(client.post(f"{url}/password", headers=admin_headers, json={}))
    viewer_headers = login(client, viewer)
    _ok(client.get("/api/users/me", headers=viewer_headers))
    _ok(client.patch("/api/users/me", headers=viewer_headers, json={"name": "V"}))
    for response in (
        client.post("/api/users", headers=admin_headers, json={"email": "h@example.com"}),
        client.patch(
            "/api/users/me",
            headers=viewer_headers,
            json={"password": NEW_PASSWORD, "currentPassword": "wrong-password"},
        ),
    ):
        assert response.status_code in (401, 409)
        assert "$argon2" not in response.text
        assert "wrong-password" not in response.text


def test_wrong_current_passwords_count_against_the_account(
    client_for: Callable[[Settings], Client], settings_maker: Any, seed: Any, tmp_path: Any
) -> None:
    """A stolen access token must not turn into unlimited guesses at the password."""
    settings = settings_maker(tmp_path, login_failures_per_account=2)
    seed(settings.metadata_url)
    throttled = client_for(settings)
    headers = _bearer(throttled, "viewer@example.com", "a-long-enough-password")
    body = {"password": NEW_PASSWORD, "currentPassword": "not-my-password"}
    first = throttled.patch("/api/users/me", headers=headers, json=body)
    second = throttled.patch("/api/users/me", headers=headers, json=body)
    assert [first.status_code, second.status_code] == [401, 401]
    right = {"password": NEW_PASSWORD, "currentPassword": "a-long-enough-password"}
    blocked = throttled.patch("/api/users/me", headers=headers, json=right)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert _sign_in(throttled, "viewer@example.com", "a-long-enough-password") == 429


def test_an_admin_resetting_their_own_password_is_audited_as_a_reset(
    client: Client, admin_headers: dict[str, str], admin: Account
) -> None:
    own_id = _user_id(client, admin_headers, admin.email)
    reset = client.post(
        f"/api/users/{own_id}/password", headers=admin_headers, json={"password": NEW_PASSWORD}
    )
    assert reset.status_code == 200
    headers = _bearer(client, admin.email, NEW_PASSWORD)
    entries = client.get(
        "/api/audit-log", headers=headers, params={"objectId": str(own_id), "objectType": "user"}
    ).json()["items"]
    assert entries[0]["action"] == "user.reset_password"
