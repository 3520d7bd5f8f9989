"""Request limits: body size, JSON depth, page sizes, 64-bit ids and offsets, header sizes.

Every refusal is a 4xx with the API's JSON error shape, never a 500, and the
server keeps answering afterwards. Unknown error classes answering 500 without
internals are covered by ``tests/unit/api/test_api_errors.py``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.limits import MAX_JSON_DEPTH
from api.schemas import MAX_ID
from benchmarks.api import REAL_APP, serve
from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
MAX_BODY_BYTES = 64 * 1024


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """``response`` is ``status`` with the API's error body, whose request id is the header's."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["requestId"] == response.headers["x-request-id"]
    return error


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    settings_maker: Callable[..., Settings],
    seed: Callable[[str], dict[str, int]],
) -> Iterator[Client]:
    """The API over a seeded store, with a 64 KiB body limit."""
    settings = settings_maker(tmp_path_factory.mktemp("limits"), max_body_bytes=MAX_BODY_BYTES)
    seed(settings.metadata_url)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def admin_headers(api: Client, admin: Any) -> dict[str, str]:
    response = api.post("/api/auth/login", json={"email": admin.email, "password": admin.password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def _login_body(size: int) -> bytes:
    """A login body of exactly ``size`` bytes (wrong credentials)."""
    head = b'{"email": "nobody@example.com", "password": "'
    tail = b'"}'
    return head + b"p" * (size - len(head) - len(tail)) + tail


# -- body size ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(api: Client) -> None:
    response = api.post(
        "/api/auth/login",
        content=_login_body(MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    error = assert_error(response, 413, "payload_too_large")
    assert str(MAX_BODY_BYTES) in error["message"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_streamed_body_over_the_limit_is_413(api: Client) -> None:
    """Without a Content-Length the limit holds too: the chunks are counted."""

    def chunks() -> Iterator[bytes]:
        body = _login_body(MAX_BODY_BYTES * 2)
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = api.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_a_body_at_the_limit_is_read(api: Client) -> None:
    """Exactly the limit is allowed: the login is refused for its credentials, not its size."""
    response = api.post(
        "/api/auth/login",
        content=_login_body(MAX_BODY_BYTES),
        headers={"content-type": "application/json"},
    )
    error = assert_error(response, 400, "invalid_request")
    assert error["details"][0]["key"] == "password"  # longer than 1024 characters


# -- JSON depth -----------------------------------------------------------------------------


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_json_nested_10000_deep_is_400_not_500(api: Client) -> None:
    body = (
        '{"email": "nobody@example.com", "password": "x", "x": ' + _nested(10_000) + "}"
    ).encode()
    assert len(body) < MAX_BODY_BYTES
    response = api.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "invalid_request")
    assert str(MAX_JSON_DEPTH) in error["message"]
    # The server is fine afterwards.
    assert api.get("/health").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/users"), ("PATCH", "/api/users/me"), ("PATCH", "/api/users/2")],
)
def test_deep_json_is_refused_on_every_write(
    api: Client, admin_headers: dict[str, str], method: str, path: str
) -> None:
    body = '{"name": ' + _nested(5000) + "}"  # well-formed JSON, only too deep
    response = api.request(
        method,
        path,
        content=body,
        headers={**admin_headers, "content-type": "application/json"},
    )
    error = assert_error(response, 400, "invalid_request")
    assert str(MAX_JSON_DEPTH) in error["message"]


def test_json_as_deep_as_allowed_is_read(api: Client, admin: Any) -> None:
    """The depth limit counts the body's own nesting: 32 levels pass, 33 do not."""

    def login(depth: int) -> httpx.Response:
        extra = _nested(depth - 1)  # inside the top-level object
        body = f'{{"email": "{admin.email}", "password": "{admin.password}", "x": {extra}}}'
        return api.post(
            "/api/auth/login", content=body, headers={"content-type": "application/json"}
        )

    allowed = login(MAX_JSON_DEPTH)
    assert allowed.status_code == 200, allowed.text
    assert_error(login(MAX_JSON_DEPTH + 1), 400, "invalid_request")


def test_brackets_inside_strings_do_not_count_as_depth(api: Client) -> None:
    """A password full of brackets is a password, not a deep document."""
    password = "[{" * 100 + '\\"[' * 10
    body = f'{{"email": "nobody@example.com", "password": "{password}"}}'
    response = api.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 401, "unauthorized")


# -- page sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "cap"),
    [("/api/catalog/datasets", 500), ("/api/users", 200), ("/api/audit-log", 500)],
)
def test_page_size_is_capped(
    api: Client, admin_headers: dict[str, str], path: str, cap: int
) -> None:
    at_cap = api.get(path, params={"limit": cap}, headers=admin_headers)
    assert at_cap.status_code == 200, at_cap.text
    assert at_cap.json()["limit"] == cap
    for limit in (cap + 1, 10**9, 0, -1):
        response = api.get(path, params={"limit": limit}, headers=admin_headers)
        error = assert_error(response, 400, "invalid_request")
        assert error["details"][0]["key"] == "limit"


# -- 64-bit ids and offsets -----------------------------------------------------------------

OUT_OF_RANGE = [str(MAX_ID + 1), str(2**64), str(10**30), "-1"]


@pytest.mark.parametrize("path", ["/api/catalog/datasets/{}", "/api/users/{}"])
@pytest.mark.parametrize("value", [*OUT_OF_RANGE, "0"])
def test_ids_out_of_range_are_400(
    api: Client, admin_headers: dict[str, str], path: str, value: str
) -> None:
    response = api.get(path.format(value), headers=admin_headers)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("PATCH", "/api/users/{}", {"name": "x"}), ("POST", "/api/users/{}/password", {})],
)
@pytest.mark.parametrize("value", OUT_OF_RANGE)
def test_ids_out_of_range_are_400_on_writes(
    api: Client,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    value: str,
) -> None:
    response = api.request(method, path.format(value), json=body, headers=admin_headers)
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("path", ["/api/catalog/datasets/{}", "/api/users/{}"])
def test_the_largest_id_is_a_plain_404(
    api: Client, admin_headers: dict[str, str], path: str
) -> None:
    response = api.get(path.format(MAX_ID), headers=admin_headers)
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/catalog/datasets", "offset"),
        ("/api/users", "offset"),
        ("/api/audit-log", "offset"),
        ("/api/audit-log", "actorId"),
    ],
)
def test_offsets_and_id_filters_out_of_range_are_400(
    api: Client, admin_headers: dict[str, str], path: str, name: str
) -> None:
    for value in OUT_OF_RANGE:
        response = api.get(path, params={name: value}, headers=admin_headers)
        assert_error(response, 400, "invalid_request")
    largest = api.get(path, params={name: str(MAX_ID)}, headers=admin_headers)
    assert largest.status_code == 200, largest.text
    assert largest.json()["items"] == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("actorId", "-1"),
        pytest.param("objectType", "x" * 65, id="objectType-too-long"),
        ("offset", "-1"),
    ],
)
def test_a_validation_error_names_the_parameter_as_sent(
    api: Client, admin_headers: dict[str, str], name: str, value: str
) -> None:
    response = api.get("/api/audit-log", params={name: value}, headers=admin_headers)
    error = assert_error(response, 400, "invalid_request")
    assert [detail["key"] for detail in error["details"]] == [name]


# -- headers --------------------------------------------------------------------------------


def test_an_oversized_authorization_header_is_401(api: Client) -> None:
    token = "a" * 4000 + "." + "b" * 4000 + "." + "c" * 2000
    response = api.get("/api/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real API in a uvicorn process on a free port; its base URL."""
    root = tmp_path_factory.mktemp("limits-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env["HEADWATER_HOME"] = str(root / "home")
    with serve(REAL_APP, env, cwd=root, log=root / "uvicorn.log") as api:
        yield api.base_url


def _send_raw(url: str, request: bytes) -> bytes:
    """Send ``request`` as is and return what comes back before the server closes or stalls."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return received


HUGE_HEADER = b"X-Padding: " + b"a" * 100_000 + b"\r\n"
MANY_HEADERS = b"".join(b"X-Header-%d: v\r\n" % i for i in range(10_000))


@pytest.mark.parametrize(
    "headers", [HUGE_HEADER, MANY_HEADERS], ids=["100kB-header", "10k-headers"]
)
def test_the_server_keeps_answering_after_oversized_headers(server: str, headers: bytes) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n" + headers + b"\r\n"
    answer = _send_raw(server, request)
    assert not answer.startswith(b"HTTP/1.1 5")
    health = httpx.get(f"{server}/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers", [HUGE_HEADER, MANY_HEADERS], ids=["100kB-header", "10k-headers"]
)
def test_oversized_headers_are_refused(server: str, headers: bytes) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: api\r\nConnection: close\r\n" + headers + b"\r\n"
    status_line = _send_raw(server, request).split(b"\r\n", 1)[0]
    assert status_line in (
        b"HTTP/1.1 431 Request Header Fields Too Large",
        b"HTTP/1.1 400 Bad Request",
    )


@pytest.mark.parametrize("path", ["/api/users/me", "/health"])
def test_a_huge_authorization_header_is_a_401(server: str, path: str) -> None:
    """An oversized token is a bad credential: 401, whatever the route, never 431 or 500."""
    token = b"Bearer " + b"a" * 60_000 + b".b.c"
    request = (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: api\r\nConnection: close\r\n"
        b"Authorization: " + token + b"\r\n\r\n"
    )
    answer = _send_raw(server, request)
    assert answer.split(b"\r\n", 1)[0] == b"HTTP/1.1 401 Unauthorized"
    assert b"www-authenticate: bearer" in answer.lower()
