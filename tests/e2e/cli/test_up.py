"""`headwater up` as a new user runs it: pipeline, API and Dagster up, Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from headwater.settings import PROJECT_ROOT

pytestmark = pytest.mark.e2e

READY_TIMEOUT = 420


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_up_serves_the_loaded_platform_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, dagster_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADWATER_", "DAGSTER_"))}
    env.update(
        HEADWATER_HOME=str(tmp_path / "home"),
        HEADWATER_SAMPLE_SCALE="0.05",
        HEADWATER_API_PORT=str(api_port),
        HEADWATER_DAGSTER_PORT=str(dagster_port),
    )
    headwater = str(Path(sys.executable).with_name("headwater"))
    output = tmp_path / "up.log"
    with output.open("w") as log:
        process = subprocess.Popen(
            [headwater, "up"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "Press Ctrl-C to stop." not in output.read_text():
            assert process.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(1)
        text = output.read_text()
        match = re.search(r"not stored\): (\S+)", text)
        assert match, text
        api = f"http://127.0.0.1:{api_port}"
        assert httpx.get(f"{api}/health", timeout=10).json()["status"] == "ok"
        login = httpx.post(
            f"{api}/api/auth/login",
            json={"email": "admin@headwater.local", "password": match.group(1)},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        token = login.json()["accessToken"]
        datasets = httpx.get(
            f"{api}/api/catalog/datasets",
            params={"search": "customers"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
        assert "marts.customers" in {d["name"] for d in datasets["items"]}
        dagster = httpx.get(f"http://127.0.0.1:{dagster_port}/server_info", timeout=10)
        assert dagster.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0, output.read_text()
    assert "stopped." in output.read_text()
    time.sleep(1)
    assert port_is_free(api_port) and port_is_free(dagster_port), "a child process outlived `up`"
    # Running it again is safe: nothing regenerated, the admin is not created twice.
    second = subprocess.run(
        [headwater, "pipeline"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert "shown once" not in second.stderr
    lines = second.stderr.splitlines()
    shop = next(i for i, line in enumerate(lines) if "ingest shop" in line)
    # Every table is listed, those with no new rows too.
    assert lines[shop + 1].strip() == (
        "customers: 0, order_items: 0, orders: 0, payments: 0, products: 0"
    ), second.stderr
