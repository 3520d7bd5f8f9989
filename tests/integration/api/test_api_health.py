from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from pydantic import SecretStr

from headwater.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient[Litestar]
OpenClient = Callable[[Settings], Client]
REDIS_URL = "redis://127.0.0.1:6379/0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update=changes)


def test_liveness_touches_no_dependency(settings: Settings, client_for: OpenClient) -> None:
    unreachable = _settings(
        settings, database_url=f"postgresql://nobody@127.0.0.1:{_free_port()}/none"
    )
    client = client_for(unreachable)  # the app's start-up is not what is measured here
    started = time.monotonic()
    response = client.get("/health")
    assert time.monotonic() - started < 1
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "redis": "not configured"}


def _head() -> str:
    from alembic.script import ScriptDirectory

    from headwater.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


HEAD = _head()


def test_ready_is_ok_with_a_migrated_store_and_a_warehouse_file(client: Client) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["metadataStore"] == {
        "status": "ok",
        "detail": f"sqlite metadata store at revision {HEAD}",
    }
    assert body["checks"]["warehouse"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "not configured"


def test_ready_is_degraded_when_the_warehouse_file_is_missing(
    settings: Settings, client: Client
) -> None:
    settings.duckdb_path.unlink()
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["warehouse"]["status"] == "missing"
    assert str(settings.home_dir) not in response.text


def test_ready_is_503_for_an_uninitialised_metadata_store(
    settings: Settings, client: Client, client_for: OpenClient
) -> None:
    fresh = _settings(settings, database_url=f"sqlite:///{settings.home_dir / 'empty.db'}")
    response = client_for(fresh).get("/health/ready")
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    assert response.json()["checks"]["metadataStore"]["status"] == "missing"
    assert not (settings.home_dir / "empty.db").exists()


@pytest.fixture
def duckdb_writer(settings: Settings) -> Iterator[None]:
    """Another process holding the DuckDB file open for writing, as a load does."""
    script = (
        "import duckdb, sys, time\n"
        "c = duckdb.connect(sys.argv[1])\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(settings.duckdb_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_health_never_opens_the_duckdb_file(
    settings: Settings, client: Client, duckdb_writer: None
) -> None:
    """A probe holding even a read handle would make the writer's next open fail."""
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["warehouse"]["status"] == "ok"


def test_ready_checks_redis_when_configured(
    settings: Settings, dataset_ids: dict[str, int], client_for: OpenClient
) -> None:
    response = client_for(_settings(settings, redis_url=REDIS_URL)).get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == {"status": "ok", "detail": "Redis answered PING"}


def test_redis_down_is_degraded_not_down_and_hides_its_url(
    settings: Settings, dataset_ids: dict[str, int], client_for: OpenClient
) -> None:
    port = _free_port()
    url = f"redis://:redis-secret-pw@127.0.0.1:{port}/0"
    client = client_for(_settings(settings, redis_url=url))
    started = time.monotonic()
    ready = client.get("/health/ready")
    assert time.monotonic() - started < 5
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["redis"]["status"] == "down"
    live = client.get("/health")
    assert live.status_code == 200
    assert live.json() == {"status": "degraded", "redis": "down"}
    for text in (ready.text, live.text):
        assert "redis-secret-pw" not in text
        assert str(port) not in text


def test_postgres_warehouse_is_checked_without_leaking_credentials(
    settings: Settings, dataset_ids: dict[str, int], client_for: OpenClient
) -> None:
    reachable = _settings(settings, warehouse="postgres", warehouse_dbname="test")
    response = client_for(reachable).get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["warehouse"]["status"] == "ok"

    port = _free_port()
    unreachable = _settings(
        settings,
        warehouse="postgres",
        warehouse_port=port,
        warehouse_user="warehouse_owner",
        warehouse_password=SecretStr("pg-secret-pw"),
    )
    response = client_for(unreachable).get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["warehouse"]["status"] == "unreachable"
    for secret in ("pg-secret-pw", "warehouse_owner", str(port)):
        assert secret not in response.text
