"""What every HTTP answer carries: security headers, request ids, caching and CORS rules;
a self-contained Swagger page; an OpenAPI document that declares its auth; Prometheus metrics."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
OpenClient = Callable[[Settings], Client]
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
APP_ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://evil.example.net"
PUBLIC_API_OPERATIONS = {("post", "/api/auth/login"), ("post", "/api/auth/refresh")}


@pytest.fixture(scope="module")
def api(shared_catalog: Any) -> Client:
    client: Client = shared_catalog.client
    return client


@pytest.fixture(scope="module")
def viewer_headers(shared_catalog: Any) -> dict[str, str]:
    headers: dict[str, str] = shared_catalog.viewer_headers
    return headers


# -- security headers and request ids --------------------------------------------------------

ANSWERS = {
    "200": ("GET", "/health", 200),
    "401": ("GET", "/api/users/me", 401),
    "router-404": ("GET", "/no/such/page", 404),
    "api-404": ("GET", "/api/no/such/thing", 404),
    "405": ("DELETE", "/health", 405),
    "openapi": ("GET", "/schema/openapi.json", 200),
    "swagger": ("GET", "/schema/swagger", 200),
    "asset": ("GET", "/schema/assets/swagger-ui.css", 200),
}


@pytest.mark.parametrize(("method", "path", "status"), ANSWERS.values(), ids=ANSWERS.keys())
def test_every_answer_carries_the_security_headers(
    api: Client, method: str, path: str, status: int
) -> None:
    response = api.request(method, path)
    assert response.status_code == status
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])
    if status >= 400:
        assert response.json()["error"]["requestId"] == response.headers["x-request-id"]


@pytest.mark.parametrize("given", ["abc-123", "trace.ID_42", "x" * 64])
def test_a_sane_request_id_is_echoed(api: Client, given: str) -> None:
    response = api.get("/api/users/me", headers={"X-Request-ID": given})
    assert response.headers["x-request-id"] == given
    assert response.json()["error"]["requestId"] == given


@pytest.mark.parametrize(
    "given", ["x" * 65, "a" * 200, "has spaces", "semi;colon", 'quote"d', "é-accent"]
)
def test_an_insane_request_id_is_replaced(api: Client, given: str) -> None:
    response = api.get("/api/users/me", headers=[(b"x-request-id", given.encode("utf-8"))])
    replaced = response.headers["x-request-id"]
    assert replaced != given
    assert GENERATED_ID.fullmatch(replaced)
    assert response.json()["error"]["requestId"] == replaced


# -- caching ----------------------------------------------------------------------------------


def test_token_answers_are_never_stored(api: Client, viewer: Any) -> None:
    login = api.post("/api/auth/login", json={"email": viewer.email, "password": viewer.password})
    assert login.status_code == 200
    refresh = api.post("/api/auth/refresh", json={"refreshToken": login.json()["refreshToken"]})
    assert refresh.status_code == 200
    failed = api.post("/api/auth/login", json={"email": viewer.email, "password": "wrong-one"})
    assert failed.status_code == 401
    for response in (login, refresh, failed):
        assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "path", ["/api/users/me", "/api/catalog/datasets", "/api/catalog/datasets/1", "/api/nope"]
)
def test_api_answers_are_never_stored(
    api: Client, viewer_headers: dict[str, str], path: str
) -> None:
    for headers in (viewer_headers, {}):
        assert api.get(path, headers=headers).headers["cache-control"] == "no-store"


# -- CORS -------------------------------------------------------------------------------------


def _preflight(client: Client, origin: str) -> httpx.Response:
    return client.options(
        "/api/catalog/datasets",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )


def test_cors_is_off_by_default(api: Client, viewer_headers: dict[str, str]) -> None:
    preflight = _preflight(api, APP_ORIGIN)
    assert "access-control-allow-origin" not in preflight.headers
    response = api.get("/api/catalog/datasets", headers={**viewer_headers, "Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_cors_allows_exactly_the_configured_origin(
    settings: Settings,
    dataset_ids: dict[str, int],
    client_for: OpenClient,
    login: Callable[[Client, Any], dict[str, str]],
    viewer: Any,
) -> None:
    client = client_for(settings.model_copy(update={"cors_origins": [APP_ORIGIN]}))
    headers = login(client, viewer)

    allowed = _preflight(client, APP_ORIGIN)
    assert allowed.status_code in (200, 204)
    assert allowed.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "GET" in allowed.headers["access-control-allow-methods"]
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()

    refused = _preflight(client, OTHER_ORIGIN)
    assert refused.headers.get("access-control-allow-origin") in (None, "")
    assert refused.status_code >= 400

    response = client.get("/api/catalog/datasets", headers={**headers, "Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    other = client.get("/api/catalog/datasets", headers={**headers, "Origin": OTHER_ORIGIN})
    assert "access-control-allow-origin" not in other.headers


# -- the Swagger page ---------------------------------------------------------------------------


class _Links(HTMLParser):
    """Every URL a browser would load from a page: src and href of any element."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append((tag, value))


EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def test_the_swagger_page_loads_everything_from_this_server(api: Client) -> None:
    page = api.get("/schema/swagger")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parser = _Links()
    parser.feed(page.text)
    tags = {tag for tag, _ in parser.urls}
    assert {"script", "link"} <= tags, parser.urls

    base = str(page.url)
    for _, url in parser.urls:
        absolute = urlsplit(urljoin(base, url))
        assert (absolute.scheme, absolute.netloc) == (urlsplit(base).scheme, urlsplit(base).netloc)
        asset = api.get(absolute.path)
        assert asset.status_code == 200, url
        assert asset.content, url
        suffix = absolute.path[absolute.path.rfind(".") :]
        assert EXPECTED_TYPES[suffix] in asset.headers["content-type"], (url, asset.headers)
    # Nor does any inline script or style name another host.
    origin = f"{urlsplit(base).scheme}://{urlsplit(base).netloc}"
    elsewhere = re.findall(r"https?://[^\s'\"<>]+", page.text)
    assert all(url.startswith(origin) for url in elsewhere), elsewhere


# -- the OpenAPI document ---------------------------------------------------------------------


def test_every_api_operation_but_sign_in_requires_the_bearer_token(api: Client) -> None:
    document = api.get("/schema/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["BearerToken"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    operations = [
        (method, path, item)
        for path, methods in document["paths"].items()
        if path.startswith("/api/")
        for method, item in methods.items()
    ]
    assert len(operations) > len(PUBLIC_API_OPERATIONS)
    for method, path, item in operations:
        security = item.get("security", document.get("security"))
        if (method, path) in PUBLIC_API_OPERATIONS:
            assert security == [{}], (method, path)
        else:
            assert security == [{"BearerToken": []}], (method, path)
            assert "401" in item["responses"], (method, path)


def test_operations_documented_as_protected_refuse_anonymous_callers(api: Client) -> None:
    document = api.get("/schema/openapi.json").json()
    for path, methods in document["paths"].items():
        for method, item in methods.items():
            if item.get("security", document.get("security")) != [{"BearerToken": []}]:
                continue
            url = re.sub(r"\{[^}]+\}", "1", path)
            response = api.request(method.upper(), url, json={} if method != "get" else None)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"


# -- metrics ----------------------------------------------------------------------------------


def _samples(client: Client, headers: dict[str, str] | None = None) -> dict[str, list[Any]]:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    families: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            families.setdefault(sample.name, []).append(sample)
    return families


def _value(families: dict[str, list[Any]], name: str, **labels: str) -> float:
    return sum(
        sample.value
        for sample in families.get(name, [])
        if all(sample.labels.get(key) == value for key, value in labels.items())
    )


def test_requests_are_counted_per_route_template(
    api: Client, viewer_headers: dict[str, str], shared_catalog: Any
) -> None:
    dataset_id = min(shared_catalog.dataset_ids.values())
    before = _samples(api)
    assert api.get(f"/api/catalog/datasets/{dataset_id}", headers=viewer_headers).status_code == 200
    assert api.get("/api/catalog/datasets/987654321", headers=viewer_headers).status_code == 404
    assert api.get("/no/such/page/987654321").status_code == 404
    after = _samples(api)

    counted = "headwater_http_requests_total"

    def increments(families: dict[str, list[Any]]) -> dict[tuple[str, str], float]:
        return {
            (sample.labels["route"], sample.labels["status"]): sample.value
            for sample in families[counted]
            if sample.labels["method"] == "GET"
        }

    old, new = increments(before), increments(after)
    changed = {key: value - old.get(key, 0) for key, value in new.items() if value != old.get(key)}
    [(template, _)] = [key for key in changed if key[1] == "200" and key[0] != "/metrics"]
    # The route template, as Litestar names it (the type suffix is optional), never the id.
    assert re.fullmatch(r"/api/catalog/datasets/\{dataset_id(:int)?\}", template), changed
    assert changed[(template, "200")] == 1
    assert changed[(template, "404")] == 1
    routes = {route for route, _ in new}
    assert not [route for route in routes if "987654321" in route or "no/such" in route], routes
    timed = "headwater_http_request_duration_seconds_count"
    assert _value(after, timed, route=template) - _value(before, timed, route=template) == 2
    assert after["headwater_http_request_duration_seconds_bucket"]


def test_cache_pool_and_build_metrics_are_exported(
    api: Client, viewer_headers: dict[str, str]
) -> None:
    api.get("/api/catalog/datasets", headers=viewer_headers)
    api.get("/api/catalog/datasets", headers=viewer_headers)
    families = _samples(api)
    for result in ("hit", "miss"):
        cached = {"namespace": "catalog", "result": result}
        cache = _value(families, "headwater_cache_requests_total", **cached)
        assert cache >= 1, result
    states = {sample.labels["state"] for sample in families["headwater_db_pool_connections"]}
    assert states == {"in_use", "idle", "overflow"}
    [build] = families["headwater_build_info"]
    assert build.labels["version"]
    assert build.value == 1


def test_failed_logins_are_counted(api: Client, viewer: Any) -> None:
    before = _value(_samples(api), "headwater_login_failures_total")
    failed = api.post("/api/auth/login", json={"email": viewer.email, "password": "nope-nope"})
    assert failed.status_code == 401
    assert _value(_samples(api), "headwater_login_failures_total") == before + 1
    ok = api.post("/api/auth/login", json={"email": viewer.email, "password": viewer.password})
    assert ok.status_code == 200
    assert _value(_samples(api), "headwater_login_failures_total") == before + 1


def test_refused_tokens_are_counted_as_401_not_500(api: Client) -> None:
    route = "/api/users/me"
    counted = "headwater_http_requests_total"
    before = _samples(api)
    assert api.get(route).status_code == 401
    assert api.get(route, headers={"Authorization": "Bearer x.y.z"}).status_code == 401
    after = _samples(api)
    for status, expected in (("401", 2), ("500", 0)):
        delta = _value(after, counted, route=route, status=status) - _value(
            before, counted, route=route, status=status
        )
        assert delta == expected, status


@pytest.fixture
def metrics_client(settings: Settings, client_for: OpenClient) -> Iterator[Client]:
    yield client_for(settings.model_copy(update={"metrics_token": SecretStr("scrape-me-token")}))


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "scrape-me-token", "Bearer scrape-me-token2"]
)
def test_metrics_need_the_token_when_one_is_set(
    metrics_client: Client, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = metrics_client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "headwater_" not in response.text


def test_metrics_answer_the_right_token(metrics_client: Client) -> None:
    families = _samples(metrics_client, {"Authorization": "Bearer scrape-me-token"})
    assert "headwater_build_info" in families
