"""The API as a client meets it: a real uvicorn process, real HTTP, configured by environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest

from catalog.models import Dataset, DatasetColumn
from headwater.db import session_scope
from headwater.settings import Settings

pytestmark = pytest.mark.e2e

ADMIN_EMAIL = "e2e-admin@example.com"
ADMIN_PASSWORD = "e2e-admin-password-long"
STARTUP_TIMEOUT_SECONDS = 60

INIT_SCRIPT = """
from api.users.services import ensure_admin
from headwater.migrate import upgrade
from headwater.settings import get_settings

settings = get_settings()
upgrade(settings.metadata_url)
print("generated" if ensure_admin(settings) else "configured")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(
        HEADWATER_HOME=str(home),
        HEADWATER_ADMIN_EMAIL=ADMIN_EMAIL,
        HEADWATER_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    return env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HEADWATER_HOME with a migrated store, the admin, one dataset and a warehouse file."""
    home = tmp_path / "home"
    init = subprocess.run(
        [sys.executable, "-c", INIT_SCRIPT],
        cwd=tmp_path,
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    assert init.stdout.strip() == "configured"
    settings = Settings(_env_file=None, home=home)  # type: ignore[call-arg]
    with session_scope(settings.metadata_url) as session:
        session.add(
            Dataset(
                name="marts.orders",
                kind="model",
                schema_name="marts",
                table_name="orders",
                description="One row per order",
                columns=[DatasetColumn(name="order_id", data_type="BIGINT", position=1)],
            )
        )
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.execute("CREATE TABLE t AS SELECT 1 AS x")
    return home


@pytest.fixture
def server(home: Path, tmp_path: Path) -> Iterator[str]:
    """``headwater api``, as a user runs it, on a free port; its base URL."""
    port = _free_port()
    log = (tmp_path / "uvicorn.log").open("w")
    env = _environment(home)
    env.update(HEADWATER_API_PORT=str(port), HEADWATER_LOGIN_ATTEMPTS_PER_ADDRESS="4")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "headwater"), "api"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            assert process.poll() is None, (tmp_path / "uvicorn.log").read_text()
            try:
                httpx.get(f"{base_url}/health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "API did not start in time"
                time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def test_log_in_and_list_datasets_over_http(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        health = client.get("/health")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"

        assert client.get("/api/catalog/datasets").status_code == 401
        wrong = client.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": "not-the-password"}
        )
        assert wrong.status_code == 401

        login = client.post(
            "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        token = login.json()["accessToken"]

        listing = client.get("/api/catalog/datasets", headers={"Authorization": f"Bearer {token}"})
        assert listing.status_code == 200
        page = listing.json()
        assert page["total"] == 1
        [dataset] = page["items"]
        assert dataset["name"] == "marts.orders"
        assert dataset["columns"][0]["dataType"] == "BIGINT"

        schema = client.get("/schema/openapi.json")
        assert schema.status_code == 200
        assert schema.json()["info"]["title"] == "Headwater API"


def test_a_forged_forwarded_for_does_not_escape_the_address_throttle(server: str) -> None:
    """No proxy is trusted by default: X-Forwarded-For cannot make each attempt a new client."""
    with httpx.Client(base_url=server, timeout=30) as client:
        statuses = [
            client.post(
                "/api/auth/login",
                json={"email": ADMIN_EMAIL, "password": "not-the-password"},
                headers={"X-Forwarded-For": f"203.0.113.{n}"},
            ).status_code
            for n in range(6)
        ]
    assert statuses[:4] == [401] * 4
    assert statuses[4:] == [429, 429]
