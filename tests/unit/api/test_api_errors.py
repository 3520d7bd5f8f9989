from __future__ import annotations

import logging

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from api.errors import (
    EXCEPTION_HANDLERS,
    GENERIC_SERVER_ERROR,
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    TooManyRequests,
    status_for,
)
from api.http import add_response_headers
from headwater.errors import ConfigError, HeadwaterError
from ingest.errors import SpecError

pytestmark = pytest.mark.unit


class DomainError(HeadwaterError):
    """An error class no one mapped: a bug, so a 500 that says nothing of it."""


class DatasetGone(NotFound):
    pass


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("x"), 400),
        (AuthenticationFailed("x"), 401),
        (PermissionDenied("x"), 403),
        (NotFound("x"), 404),
        (DatasetGone("x"), 404),
        (Conflict("x"), 409),
        (ServiceUnavailable("x"), 503),
        (ConfigError("x"), 500),
        (TooManyRequests("x", retry_after=3), 429),
        (SpecError("x"), 400),
        (DomainError("x"), 500),
        (HeadwaterError("x"), 500),
    ],
)
def test_status_for_maps_each_error_class(error: HeadwaterError, status: int) -> None:
    assert status_for(error) == status


@get("/not-found", sync_to_thread=False)
def _not_found() -> None:
    raise DatasetGone("Dataset 9 not found", hint="list datasets to see ids")


@get("/busy", sync_to_thread=False)
def _busy() -> None:
    raise ServiceUnavailable("Warehouse is busy", retry_after=7)


@get("/unauthenticated", sync_to_thread=False)
def _unauthenticated() -> None:
    raise AuthenticationFailed("Invalid email or password")


@get("/crash", sync_to_thread=False)
def _crash() -> None:
    raise RuntimeError("connection to postgresql://admin:hunter2@db failed")


@get("/misconfigured", sync_to_thread=False)
def _misconfigured() -> None:
    raise ConfigError("HEADWATER_SECRET_KEY=hunter2 is too short")


@get("/typed/{number:int}", sync_to_thread=False)
def _typed(number: int, size: int = 1) -> int:
    return number * size


@pytest.fixture
def client() -> TestClient[Litestar]:
    app = Litestar(
        route_handlers=[_not_found, _busy, _unauthenticated, _crash, _misconfigured, _typed],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        before_send=[add_response_headers],
    )
    return TestClient(app)


def test_headwater_error_keeps_message_and_hint(client: TestClient[Litestar]) -> None:
    response = client.get("/not-found")
    assert response.status_code == 404
    body = response.json()["error"]
    assert body["code"] == "not_found"
    assert body["message"] == "Dataset 9 not found"
    assert body["details"] == {"hint": "list datasets to see ids"}
    assert body["requestId"] == response.headers["x-request-id"]


def test_service_unavailable_sets_retry_after(client: TestClient[Litestar]) -> None:
    response = client.get("/busy")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"


def test_authentication_failure_asks_for_bearer(client: TestClient[Litestar]) -> None:
    response = client.get("/unauthenticated")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("path", ["/crash", "/misconfigured"])
def test_server_errors_are_generic_and_logged(
    client: TestClient[Litestar], path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="headwater.api"):
        response = client.get(path)
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert error["message"] == GENERIC_SERVER_ERROR
    assert error["details"] is None
    assert len(error["requestId"]) == 32
    assert "hunter2" not in response.text
    assert error["requestId"] in caplog.text
    assert any(record.exc_info for record in caplog.records)


def test_framework_errors_use_the_same_body(client: TestClient[Litestar]) -> None:
    invalid = client.get("/typed/3", params={"size": "big"})
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid_request"
    assert invalid.json()["error"]["details"][0]["key"] == "size"
    missing = client.get("/no-such-route")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
