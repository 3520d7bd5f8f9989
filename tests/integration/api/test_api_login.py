from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select, update

from api.auth.services import create_access_token
from api.users.models import User
from headwater.db import session_scope
from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
GENERIC = "Invalid email or password"


def _post_login(client: Client, email: str, password: str) -> Any:
    return client.post("/api/auth/login", json={"email": email, "password": password})


def test_login_returns_a_bearer_token_for_the_user(
    client: Client, settings: Settings, admin: Any
) -> None:
    response = _post_login(client, admin.email, admin.password)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"accessToken", "tokenType", "expiresIn"}
    assert body["tokenType"] == "bearer"
    assert body["expiresIn"] == settings.jwt_ttl_minutes * 60
    claims = jwt.decode(body["accessToken"], settings.jwt_secret(), algorithms=["HS256"])
    with session_scope(settings.metadata_url) as session:
        admin_id = session.scalar(select(User.id).where(User.email == admin.email))
    assert claims["sub"] == str(admin_id)
    assert claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == settings.jwt_ttl_minutes * 60


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
        assert response.json() == {"statusCode": 401, "detail": GENERIC}
        assert response.headers["www-authenticate"] == "Bearer"
        assert "accessToken" not in response.text


def test_malformed_login_body_is_a_400_that_does_not_echo_the_password(client: Client) -> None:
    response = client.post("/api/auth/login", json={"email": "a@b.co", "password": 12345678901})
    assert response.status_code == 400
    assert response.json()["statusCode"] == 400
    assert "12345678901" not in response.text
    assert client.post("/api/auth/login", json={"email": "a@b.co"}).status_code == 400


def test_catalog_requires_a_token(client: Client) -> None:
    response = client.get("/api/catalog/datasets")
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not-a-jwt", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Bearer a.b.c"],
)
def test_garbage_tokens_are_rejected(client: Client, authorization: str) -> None:
    response = client.get("/api/catalog/datasets", headers={"Authorization": authorization})
    assert response.status_code == 401


def test_expired_token_is_rejected(client: Client, settings: Settings) -> None:
    expired = create_access_token(
        user_id=1,
        role="admin",
        secret=settings.jwt_secret(),
        ttl=timedelta(minutes=1),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    response = client.get("/api/catalog/datasets", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401


def test_token_signed_with_another_key_is_rejected(client: Client) -> None:
    forged = create_access_token(user_id=1, role="admin", secret="x" * 48, ttl=timedelta(minutes=5))
    response = client.get("/api/catalog/datasets", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_deactivating_a_user_revokes_their_token_at_once(
    client: Client,
    settings: Settings,
    viewer: Any,
    login: Callable[[Client, Any], dict[str, str]],
) -> None:
    headers = login(client, viewer)
    assert client.get("/api/catalog/datasets", headers=headers).status_code == 200
    with session_scope(settings.metadata_url) as session:
        session.execute(update(User).where(User.email == viewer.email).values(is_active=False))
    assert client.get("/api/catalog/datasets", headers=headers).status_code == 401


def test_openapi_document_is_public_and_every_operation_has_an_id(client: Client) -> None:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    operations = [
        operation
        for path_item in document["paths"].values()
        for method, operation in path_item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert {op["operationId"] for op in operations} >= {
        "login",
        "getHealth",
        "listDatasets",
        "getDataset",
    }
    assert len({op["operationId"] for op in operations}) == len(operations)
    assert "BearerToken" in document["components"]["securitySchemes"]
    # Documented error bodies are the camelCase ones the API sends.
    error_400 = document["paths"]["/api/catalog/datasets"]["get"]["responses"]["400"]
    assert error_400["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
