"""Sign-in, refresh rotation, sign-out and every way an existing token stops counting."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select, update

from api.auth import tokens
from api.users.models import User
from headwater.db import session_scope, sqlite_path
from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
GENERIC = "Invalid email or password"


def _post_login(client: Client, email: str, password: str) -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tokens(client: Client, account: Any) -> dict[str, Any]:
    response = _post_login(client, account.email, account.password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _me(client: Client, access: str) -> int:
    return client.get("/api/users/me", headers=_bearer(access)).status_code


def test_login_returns_tokens_and_the_user(client: Client, settings: Settings, admin: Any) -> None:
    response = _post_login(client, admin.email, admin.password)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {
        "accessToken",
        "refreshToken",
        "tokenType",
        "expiresIn",
        "refreshExpiresIn",
        "user",
    }
    assert body["tokenType"] == "bearer"
    assert body["expiresIn"] == settings.jwt_ttl_minutes * 60 <= 900
    with session_scope(settings.metadata_url) as session:
        admin_id = session.scalar(select(User.id).where(User.email == admin.email))
    assert body["user"] == {"id": admin_id, "email": admin.email, "role": "admin", "name": ""}
    claims = jwt.decode(
        body["accessToken"],
        settings.jwt_secret(),
        algorithms=["HS256"],
        audience="headwater-api",
        issuer="headwater",
    )
    assert claims["sub"] == str(admin_id)
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == settings.jwt_ttl_minutes * 60


def test_access_tokens_live_at_most_15_minutes(settings_maker: Any, tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="less than or equal to 15"):
        settings_maker(tmp_path, jwt_ttl_minutes=60)


def test_login_ignores_email_case_and_blanks(client: Client, viewer: Any) -> None:
    response = _post_login(client, f"  {viewer.email.upper()} ", viewer.password)
    assert response.status_code == 200


def test_wrong_password_unknown_email_and_inactive_user_look_the_same(
    client: Client, viewer: Any, retired: Any
) -> None:
    wrong_password = _post_login(client, viewer.email, viewer.password + "x")
    unknown_email = _post_login(client, "nobody@example.com", viewer.password)
    inactive = _post_login(client, retired.email, retired.password)
    for response in (wrong_password, unknown_email, inactive):
        assert response.status_code == 401
        error = response.json()["error"]
        assert (error["code"], error["message"]) == ("unauthorized", GENERIC)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "accessToken" not in response.text


def test_malformed_login_body_is_a_400_that_does_not_echo_the_password(client: Client) -> None:
    response = client.post("/api/auth/login", json={"email": "a@b.co", "password": 12345678901})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "12345678901" not in response.text
    assert client.post("/api/auth/login", json={"email": "a@b.co"}).status_code == 400


def test_catalog_requires_a_token(client: Client) -> None:
    response = client.get("/api/catalog/datasets")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-jwt",
        "Bearer ",
        "Basic YWRtaW46YWRtaW4=",
        "Bearer a.b.c",
        "Bearer " + "A" * 100_00 + ".b.c",
    ],
)
def test_garbage_tokens_are_rejected(client: Client, authorization: str) -> None:
    response = client.get("/api/catalog/datasets", headers={"Authorization": authorization})
    assert response.status_code == 401


def test_the_token_is_read_only_from_a_bearer_header(client: Client, viewer: Any) -> None:
    access = _tokens(client, viewer)["accessToken"]
    assert _me(client, access) == 200
    for header in (f"Basic {access}", f"Token {access}", access, f"Bearer {access} x"):
        response = client.get("/api/users/me", headers={"Authorization": header})
        assert response.status_code == 401, header
    assert client.get("/api/users/me", params={"token": access}).status_code == 401


def test_refresh_token_is_not_an_access_token(client: Client, viewer: Any) -> None:
    refresh = _tokens(client, viewer)["refreshToken"]
    assert _me(client, refresh) == 401


def test_refresh_rotates_and_reuse_revokes_the_whole_family(client: Client, viewer: Any) -> None:
    first = _tokens(client, viewer)
    second = client.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200
    rotated = second.json()
    assert rotated["refreshToken"] != first["refreshToken"]
    assert _me(client, rotated["accessToken"]) == 200
    # The old refresh token again: a replay. The family dies, including the new tokens.
    replay = client.post("/api/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert replay.status_code == 401
    assert _me(client, rotated["accessToken"]) == 401
    assert _me(client, first["accessToken"]) == 401
    again = client.post("/api/auth/refresh", json={"refreshToken": rotated["refreshToken"]})
    assert again.status_code == 401
    # Another login is another family: unaffected.
    assert _me(client, _tokens(client, viewer)["accessToken"]) == 200


def test_an_access_token_is_not_a_refresh_token(client: Client, viewer: Any) -> None:
    access = _tokens(client, viewer)["accessToken"]
    response = client.post("/api/auth/refresh", json={"refreshToken": access})
    assert response.status_code == 401


def test_logout_ends_the_session_only(client: Client, viewer: Any) -> None:
    kept = _tokens(client, viewer)
    ended = _tokens(client, viewer)
    response = client.post("/api/auth/logout", headers=_bearer(ended["accessToken"]))
    assert response.status_code == 204
    assert _me(client, ended["accessToken"]) == 401
    refresh = client.post("/api/auth/refresh", json={"refreshToken": ended["refreshToken"]})
    assert refresh.status_code == 401
    assert _me(client, kept["accessToken"]) == 200


def test_expired_token_is_rejected(client: Client, settings: Settings, viewer: Any) -> None:
    access = _tokens(client, viewer)["accessToken"]
    claims = tokens.decode(access, secret=settings.jwt_secret(), expected="access")
    expired = tokens.encode(
        secret=settings.jwt_secret(),
        token_type="access",
        user_id=claims.user_id,
        session_id=claims.session_id,
        version=claims.version,
        ttl_seconds=60,
        now=claims.issued_at - 3600,
    )
    assert _me(client, expired) == 401


def test_token_signed_with_another_key_is_rejected(
    client: Client, settings: Settings, viewer: Any
) -> None:
    access = _tokens(client, viewer)["accessToken"]
    claims = tokens.decode(access, secret=settings.jwt_secret(), expected="access")
    forged = tokens.encode(
        secret="x" * 48,
        token_type="access",
        user_id=claims.user_id,
        session_id=claims.session_id,
        version=claims.version,
        ttl_seconds=600,
    )
    assert _me(client, forged) == 401


def _admin_patch(client: Client, admin_headers: dict[str, str], user_id: int, **body: Any) -> int:
    return client.patch(f"/api/users/{user_id}", headers=admin_headers, json=body).status_code


def test_role_change_deactivation_and_new_password_end_tokens_at_once(
    client: Client,
    settings: Settings,
    admin: Any,
    viewer: Any,
    login: Callable[[Client, Any], dict[str, str]],
) -> None:
    admin_headers = login(client, admin)
    with session_scope(settings.metadata_url) as session:
        viewer_id = session.scalar(select(User.id).where(User.email == viewer.email))
    assert viewer_id is not None

    token = _tokens(client, viewer)
    assert _admin_patch(client, admin_headers, viewer_id, role="user") == 200
    assert _me(client, token["accessToken"]) == 401
    refresh = client.post("/api/auth/refresh", json={"refreshToken": token["refreshToken"]})
    assert refresh.status_code == 401

    token = _tokens(client, viewer)
    assert _admin_patch(client, admin_headers, viewer_id, isActive=False) == 200
    assert _me(client, token["accessToken"]) == 401
    assert _post_login(client, viewer.email, viewer.password).status_code == 401
    assert _admin_patch(client, admin_headers, viewer_id, isActive=True) == 200

    token = _tokens(client, viewer)
    new_password = "a-brand-new-passphrase"
    changed = client.patch(
        "/api/users/me",
        headers=_bearer(token["accessToken"]),
        json={"password": new_password, "currentPassword": viewer.password},
    )
    assert changed.status_code == 200, changed.text
    assert _me(client, token["accessToken"]) == 401
    assert _post_login(client, viewer.email, viewer.password).status_code == 401
    assert _post_login(client, viewer.email, new_password).status_code == 200


def test_a_change_made_directly_in_the_store_counts_too(
    client: Client, settings: Settings, viewer: Any
) -> None:
    """The CLI changes the store from another process: no cache may hide it."""
    access = _tokens(client, viewer)["accessToken"]
    assert _me(client, access) == 200
    with session_scope(settings.metadata_url) as session:
        session.execute(update(User).where(User.email == viewer.email).values(is_active=False))
    assert _me(client, access) == 401


def test_a_session_revoked_by_another_process_ends_on_the_next_request(
    client: Client, settings: Settings, viewer: Any
) -> None:
    """The authenticator remembers the rows it read while SQLite's data_version holds:
    a commit from any other process must end that at once."""
    access = _tokens(client, viewer)["accessToken"]
    assert [_me(client, access) for _ in range(3)] == [200, 200, 200]  # remembered now
    revoke = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute(\"UPDATE auth_sessions SET revoked_at = '2020-01-01 00:00:00'\"); c.commit()"
    )
    subprocess.run(
        [sys.executable, "-c", revoke, str(sqlite_path(settings.metadata_url))],
        check=True,
        timeout=60,
    )
    assert _me(client, access) == 401


def test_login_is_throttled_per_account_with_the_same_answer_for_unknown_emails(
    client_for: Callable[[Settings], Client], settings_maker: Any, seed: Any, tmp_path: Any
) -> None:
    settings = settings_maker(tmp_path, login_failures_per_account=3)
    seed(settings.metadata_url)
    throttled = client_for(settings)
    for email in ("viewer@example.com", "ghost@example.com"):
        statuses = [
            _post_login(throttled, email, "wrong-password-here").status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 401]
        blocked = _post_login(throttled, email, "a-long-enough-password")
        assert blocked.status_code == 429
        assert blocked.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(blocked.headers["retry-after"]) <= settings.login_window_seconds + 1
    # Other accounts are not affected by these failures.
    assert _post_login(throttled, "admin@example.com", "a-long-enough-password").status_code == 200


def test_login_is_throttled_per_client_address(
    client_for: Callable[[Settings], Client], settings_maker: Any, seed: Any, tmp_path: Any
) -> None:
    settings = settings_maker(tmp_path, login_attempts_per_address=4, login_window_seconds=60)
    seed(settings.metadata_url)
    throttled = client_for(settings)
    statuses = [
        _post_login(throttled, f"user{i}@example.com", "wrong-password-here").status_code
        for i in range(4)
    ]
    assert statuses == [401] * 4
    response = _post_login(throttled, "admin@example.com", "a-long-enough-password")
    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 61
