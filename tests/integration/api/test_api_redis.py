"""Redis as the API uses it: shared cache and login counters, and life without it.

Each test starts its own ``redis-server`` on a free port (never the shared one on
6379), so it can kill it mid-test and start it again on the same port.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from litestar import Litestar
from litestar.testing import TestClient

from api.kv import PROBE_INTERVAL_SECONDS
from catalog.models import Dataset
from catalog.refresh import CACHE_NAMESPACE
from headwater.cache import PREFIX, invalidate
from headwater.db import session_scope
from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
OpenClient = Callable[[Settings], Client]
DATASETS = "/api/catalog/datasets"
FAILURES_PER_ACCOUNT = 3
RECOVERY_SECONDS = 2 * PROBE_INTERVAL_SECONDS + 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` of this test's own, without persistence."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, "redis-server exited"
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def redis_settings(
    settings: Settings, dataset_ids: dict[str, int], redis_server: RedisServer
) -> Settings:
    """The seeded store, our Redis, a minute of caching and a low per-account failure limit."""
    return settings.model_copy(
        update={
            "redis_url": redis_server.url,
            "cache_ttl_seconds": 60,
            "login_failures_per_account": FAILURES_PER_ACCOUNT,
            "login_attempts_per_address": 1000,
        }
    )


def _bearer(client: Client, account: Any) -> dict[str, str]:
    response = client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def _login(client: Client, email: str, password: str) -> int:
    return client.post("/api/auth/login", json={"email": email, "password": password}).status_code


def _names(response: Any) -> list[str]:
    return [item["name"] for item in response.json()["items"]]


def test_catalog_answers_are_cached_in_redis_and_shared(
    redis_settings: Settings, redis_server: RedisServer, client_for: OpenClient, viewer: Any
) -> None:
    first, second = client_for(redis_settings), client_for(redis_settings)
    headers = _bearer(first, viewer)
    store = redis_server.client()

    miss = first.get(DATASETS, headers=headers)
    assert miss.status_code == 200
    assert miss.headers["x-cache"] == "miss"
    keys = store.keys(f"{PREFIX}{CACHE_NAMESPACE}:*")
    assert any(DATASETS.encode() in key for key in keys), keys

    hit = first.get(DATASETS, headers=headers)
    assert hit.headers["x-cache"] == "hit"
    assert hit.json() == miss.json()
    # Another API process answers from the same cache.
    elsewhere = second.get(DATASETS, headers=headers)
    assert elsewhere.headers["x-cache"] == "hit"
    assert elsewhere.json() == miss.json()


def test_a_catalog_refresh_elsewhere_drops_the_cached_answers(
    redis_settings: Settings, redis_server: RedisServer, client_for: OpenClient, viewer: Any
) -> None:
    client = client_for(redis_settings)
    headers = _bearer(client, viewer)
    before = client.get(DATASETS, headers=headers)
    assert client.get(DATASETS, headers=headers).headers["x-cache"] == "hit"

    # What `headwater catalog refresh` does from its own process: change the store, invalidate.
    with session_scope(redis_settings.metadata_url) as session:
        session.add(
            Dataset(name="marts.new_mart", kind="model", schema_name="marts", table_name="new_mart")
        )
    stale = client.get(DATASETS, headers=headers)
    assert stale.headers["x-cache"] == "hit"
    assert "marts.new_mart" not in _names(stale)

    invalidate(redis_settings.redis_url, CACHE_NAMESPACE)
    assert redis_server.client().keys(f"{PREFIX}{CACHE_NAMESPACE}:*") == []
    fresh = client.get(DATASETS, headers=headers)
    assert fresh.headers["x-cache"] == "miss"
    assert "marts.new_mart" in _names(fresh)
    assert fresh.json()["total"] == before.json()["total"] + 1


def test_login_throttle_counters_are_shared_between_instances(
    redis_settings: Settings,
    redis_server: RedisServer,
    client_for: OpenClient,
    viewer: Any,
) -> None:
    first, second = client_for(redis_settings), client_for(redis_settings)
    assert _login(first, viewer.email, "wrong-password-1") == 401
    assert _login(second, viewer.email, "wrong-password-2") == 401
    assert _login(first, viewer.email, "wrong-password-3") == 401
    store = redis_server.client()
    account_key = f"headwater:rate:login:account:{viewer.email}"
    assert store.get(account_key) == str(FAILURES_PER_ACCOUNT).encode()
    assert 0 < store.ttl(account_key) <= redis_settings.login_window_seconds
    assert store.keys("headwater:rate:login:address:*")

    # Over the limit on both instances, even with the right password.
    for client in (second, first):
        refused = client.post(
            "/api/auth/login", json={"email": viewer.email, "password": viewer.password}
        )
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"]["code"] == "rate_limited"


def _health(client: Client) -> dict[str, Any]:
    response = client.get("/health")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_the_api_keeps_serving_while_redis_is_down_and_recovers(
    redis_settings: Settings,
    redis_server: RedisServer,
    client_for: OpenClient,
    admin: Any,
    viewer: Any,
) -> None:
    client = client_for(redis_settings)
    admin_headers = _bearer(client, admin)
    viewer_headers = _bearer(client, viewer)
    cached = client.get(DATASETS, headers=viewer_headers)
    assert client.get(DATASETS, headers=viewer_headers).headers["x-cache"] == "hit"
    assert _health(client) == {"status": "ok", "redis": "ok"}

    redis_server.kill()

    listing = client.get(DATASETS, headers=viewer_headers)
    assert listing.status_code == 200
    assert listing.json() == cached.json()
    assert _health(client) == {"status": "degraded", "redis": "down"}
    ready = client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["redis"]["status"] == "down"
    assert ready.json()["checks"]["metadataStore"]["status"] == "ok"

    # Signing in and being signed in work without Redis.
    fresh_admin = _bearer(client, admin)
    me = client.get("/api/users/me", headers=fresh_admin)
    assert me.status_code == 200
    assert me.json()["email"] == admin.email
    assert client.get("/api/users/me", headers=viewer_headers).status_code == 200

    # Login throttling goes on, counted in this process.
    for attempt in range(FAILURES_PER_ACCOUNT):
        assert _login(client, "guesser@example.com", f"guess-{attempt}") == 401
    throttled = client.post(
        "/api/auth/login", json={"email": "guesser@example.com", "password": "guess-x"}
    )
    assert throttled.status_code == 429
    assert int(throttled.headers["retry-after"]) > 0

    # Revocation does not depend on Redis: logout and a role change end tokens at once.
    assert client.post("/api/auth/logout", headers=fresh_admin).status_code == 204
    assert client.get("/api/users/me", headers=fresh_admin).status_code == 401
    viewer_id = next(
        user["id"]
        for user in client.get("/api/users", headers=admin_headers).json()["items"]
        if user["email"] == viewer.email
    )
    demoted = client.patch(f"/api/users/{viewer_id}", json={"role": "user"}, headers=admin_headers)
    assert demoted.status_code == 200, demoted.text
    assert client.get("/api/users/me", headers=viewer_headers).status_code == 401
    assert client.get("/api/users/me", headers=admin_headers).status_code == 200

    # Redis comes back on the same address: health notices within a couple of probes.
    redis_server.start()
    deadline = time.monotonic() + RECOVERY_SECONDS
    while _health(client) != {"status": "ok", "redis": "ok"}:
        assert time.monotonic() < deadline, "health did not notice that Redis is back"
        time.sleep(0.25)
    ready = client.get("/health/ready")
    assert ready.json()["status"] == "ok"
    assert ready.json()["checks"]["redis"]["status"] == "ok"

    # ...and the cache lives in Redis again.
    assert client.get(DATASETS, headers=admin_headers).headers["x-cache"] == "miss"
    assert client.get(DATASETS, headers=admin_headers).headers["x-cache"] == "hit"
    assert redis_server.client().keys(f"{PREFIX}{CACHE_NAMESPACE}:*")
