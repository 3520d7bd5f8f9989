from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from pydantic import SecretStr

from headwater.migrate import upgrade
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


def test_health_is_ok_with_a_migrated_store_and_a_warehouse_file(client: Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"metadataStore", "warehouse"}
    assert body["checks"]["metadataStore"]["status"] == "ok"
    assert "0001" in body["checks"]["metadataStore"]["detail"]
    assert body["checks"]["warehouse"]["status"] == "ok"


def test_health_is_503_when_the_warehouse_file_is_missing(
    settings: Settings, tmp_path: Path, client_for: OpenClient
) -> None:
    upgrade(settings.metadata_url)
    missing = tmp_path / "nowhere" / "warehouse.duckdb"
    response = client_for(_settings(settings, warehouse_path=missing)).get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["metadataStore"]["status"] == "ok"
    assert body["checks"]["warehouse"]["status"] == "missing"
    assert str(tmp_path) not in response.text
    assert not missing.exists()  # the probe must not create the file


def test_health_reports_an_uninitialised_metadata_store(
    settings: Settings, client: Client, client_for: OpenClient
) -> None:
    fresh = _settings(settings, database_url=f"sqlite:///{settings.home_dir / 'empty.db'}")
    response = client_for(fresh).get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["metadataStore"]["status"] == "missing"


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


def test_health_reports_a_busy_warehouse_while_another_process_writes(
    client: Client, duckdb_writer: None
) -> None:
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["warehouse"]["status"] == "busy"
    assert response.headers["retry-after"].isdigit()


def test_health_checks_redis_when_configured(
    settings: Settings, dataset_ids: dict[str, int], client_for: OpenClient
) -> None:
    response = client_for(_settings(settings, redis_url=REDIS_URL)).get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["redis"] == {"status": "ok", "detail": "Redis answered PING"}


def test_health_is_503_when_redis_is_down_and_hides_its_url(
    settings: Settings, dataset_ids: dict[str, int], client_for: OpenClient
) -> None:
    port = _free_port()
    url = f"redis://:redis-secret-pw@127.0.0.1:{port}/0"
    started = time.monotonic()
    response = client_for(_settings(settings, redis_url=url)).get("/health")
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "unreachable"
    assert "redis-secret-pw" not in response.text
    assert str(port) not in response.text


def test_postgres_warehouse_is_checked_without_leaking_credentials(
    settings: Settings, dataset_ids: dict[str, int], client_for: OpenClient
) -> None:
    reachable = _settings(settings, warehouse="postgres", warehouse_dbname="test")
    response = client_for(reachable).get("/health")
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
    response = client_for(unreachable).get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["warehouse"]["status"] == "unreachable"
    for secret in ("pg-secret-pw", "warehouse_owner", str(port)):
        assert secret not in response.text
