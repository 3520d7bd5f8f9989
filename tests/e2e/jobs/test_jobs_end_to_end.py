"""Jobs end to end: the REST API in front, a real Dagster (webserver + daemon, started
here on a free port) doing the work, real databases behind.

Create a job through the API → Dagster shows it → run it → the run succeeds, the rows
are in the warehouse, the runs and logs endpoints show it; a job with bad credentials
fails at once with a clear summary; a transient failure is retried by Dagster and
succeeds; a long run is cancelled; a retry re-executes only the failed step; a
schedule fires on its minute; live events of a run reach WebSocket and Socket.IO
clients connected to another API process, through Redis.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import duckdb
import httpx
import pytest
import redis
import socketio
import websocket
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from benchmarks.api import free_port
from benchmarks.dagster import dagster_services
from headwater import events
from headwater.settings import Settings
from ingest.runner import run_all
from ingest.sample_data import generate
from orchestration.client import DagsterClient
from orchestration.transform import run_dbt
from tests.conftest import make_settings
from tests.integration.api.conftest import ADMIN, TEST_SECRET, seed_metadata

pytestmark = pytest.mark.e2e

SCALE = 0.05
RUN_TIMEOUT_SECONDS = 240.0
SCHEDULE_LEAD = 75  # seconds from creating the scheduled job to its minute


@dataclass
class Stack:
    client: TestClient[Litestar]
    settings: Settings
    dagster_url: str
    headers: dict[str, str]
    scheduled: dict[str, Any] | None = None  # a job whose schedule fires during the module

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post("/api/jobs", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def run(self, job_id: int) -> str:
        response = self.client.post(f"/api/jobs/{job_id}/run", headers=self.headers)
        assert response.status_code == 202, response.text
        run_id: str = response.json()["runId"]
        return run_id

    def get_run(self, run_id: str) -> dict[str, Any]:
        response = self.client.get(f"/api/runs/{run_id}", headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait(
        self, run_id: str, until: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        """The run once it finished (or once ``until`` holds), as the API shows it."""
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        while True:
            run = self.get_run(run_id)
            done = until(run) if until else run["status"] in ("success", "failed", "cancelled")
            if done:
                return run
            assert time.monotonic() < deadline, f"run {run_id} stuck: {run}"
            time.sleep(1)

    def logs(self, run_id: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        after = None
        while True:
            query = {**params, **({"after": after} if after else {})}
            response = self.client.get(
                f"/api/runs/{run_id}/logs", params=query, headers=self.headers
            )
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["items"]
            if not page["hasMore"]:
                return items
            after = page["cursor"]

    def until(
        self, path: str, match: Callable[[dict[str, Any]], bool], *, what: str
    ) -> dict[str, Any]:
        """The first item of list ``path`` that ``match`` accepts, waiting for it."""
        deadline = time.monotonic() + 60
        while True:
            page = self.client.get(path, params={"limit": 200}, headers=self.headers).json()
            found = [item for item in page["items"] if match(item)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no {what} in {path}: {page['items']}"
            time.sleep(0.5)

    def dagster_has(self, job_id: int) -> bool:
        async def ask() -> bool:
            client = DagsterClient(self.dagster_url, "headwater")
            try:
                return await client.has_job(f"job_{job_id}")
            finally:
                await client.close()

        return anyio.run(ask)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("e2e_jobs")
    base = make_settings(home, sample_scale=SCALE, secret_key=TEST_SECRET)
    generate(base.sample_dir, scale=SCALE)
    seed_metadata(base.metadata_url)
    run_all(base)  # the warehouse a job runs against has been built once
    run_dbt(base, "build")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(
        HEADWATER_SECRET_KEY=TEST_SECRET,
        HEADWATER_SAMPLE_SCALE=str(SCALE),
        # One attempt inside a step: retries are Dagster's, visible in the run.
        HEADWATER_INGEST_ATTEMPTS="1",
    )
    with dagster_services(home, env) as url:
        settings = make_settings(home, sample_scale=SCALE, secret_key=TEST_SECRET, dagster_url=url)
        with TestClient(create_app(settings)) as client:
            login = client.post(
                "/api/auth/login", json={"email": ADMIN.email, "password": ADMIN.password}
            )
            headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
            stack = Stack(client, settings, url, headers)
            # Created first so that its minute comes while the other tests run: the last
            # test only checks that it fired, instead of waiting a minute or two for it.
            stack.scheduled = stack.create(
                {
                    "name": "On its minute",
                    "sourceId": "shop",
                    "tables": ["payments"],
                    "schedule": cron_at(datetime.now(UTC) + timedelta(seconds=SCHEDULE_LEAD)),
                }
            )
            yield stack


def cron_at(moment: datetime) -> str:
    """A daily cron expression for the first whole minute at or after ``moment`` (UTC)."""
    minute = (moment + timedelta(seconds=59)).replace(second=0, microsecond=0)
    return f"{minute.minute} {minute.hour} * * *"


def warehouse(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return [tuple(row) for row in connection.execute(sql).fetchall()]


def test_a_job_created_through_the_api_runs_in_dagster(stack: Stack) -> None:
    started = time.monotonic()
    job = stack.create(
        {
            "name": "Customers",
            "sourceId": "shop",
            "tables": ["customers"],
            "writeDisposition": "replace",
            "transform": "stg_shop__customers",
        }
    )
    while not stack.dagster_has(job["id"]):
        assert time.monotonic() - started < 10, "the job did not reach Dagster in 10 s"
        time.sleep(0.2)

    run_id = stack.run(job["id"])
    run = stack.wait(run_id)
    assert run["status"] == "success", run
    assert run["rowsPerTable"] == {"shop/customers": 50}
    assert run["rowsLoaded"] == 50
    assert run["testsPassed"] > 0 and run["testsFailed"] == 0
    assert run["durationSeconds"] > 0
    assert warehouse(stack.settings, "select count(*) from raw_shop.customers") == [(50,)]

    listed = stack.client.get(f"/api/jobs/{job['id']}/runs", headers=stack.headers).json()
    assert [r["id"] for r in listed["items"]] == [run_id]
    shown = stack.client.get(f"/api/jobs/{job['id']}", headers=stack.headers).json()
    assert shown["status"] == "success" and shown["lastRun"]["id"] == run_id
    lines = stack.logs(run_id)
    assert any("loaded 50 rows" in line["message"] for line in lines)
    assert {line["step"] for line in lines if line["step"]} >= {"ingest_shop", "dbt_models"}
    errors = stack.logs(run_id, level="error")
    assert errors == []


def test_bad_credentials_fail_at_once_with_a_clear_summary(stack: Stack) -> None:
    source = {
        "name": f"crm_{uuid.uuid4().hex[:6]}",
        "kind": "database",
        "connection": "mysql+pymysql://root:wrong-password-42@127.0.0.1:3306/test",
        "tables": {"accounts": {}},
    }
    created = stack.client.post("/api/sources", json=source, headers=stack.headers)
    assert created.status_code == 201, created.text
    job = stack.create(
        {"name": "Bad login", "sourceId": source["name"], "retries": 3, "retryDelaySeconds": 1}
    )
    run = stack.wait(stack.run(job["id"]))
    assert run["status"] == "failed"
    assert "Access denied" in run["error"], run["error"]
    assert "wrong-password-42" not in run["error"]
    events = {line["event"] for line in stack.logs(run["id"])}
    assert "ExecutionStepRestartEvent" not in events  # a permanent error is not retried

    # The default rule tells the job's owner, in-app, once; the alert is firing.
    note = stack.until(
        "/api/notifications", lambda n: n["subject"] == f"job:{job['id']}", what="notification"
    )
    assert note["level"] == "error" and "Access denied" in note["title"], note
    assert "wrong-password-42" not in json.dumps(note)
    alert = stack.until("/api/alerts", lambda a: a["subject"] == f"job:{job['id']}", what="alert")
    assert alert["state"] == "firing" and alert["runId"] == run["id"]


class LateProxy:
    """A TCP port that refuses connections until ``open()``, then forwards to PostgreSQL:
    a source database that is down, then up again."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._server: socket.socket | None = None

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", 5432))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def test_a_transient_failure_is_retried_by_dagster_and_succeeds(stack: Stack) -> None:
    proxy = LateProxy()
    name = f"late_{uuid.uuid4().hex[:6]}"
    source = {
        "name": name,
        "kind": "database",
        "connection": f"postgresql://postgres@127.0.0.1:{proxy.port}/test",
        "tables": {"numbers": {"query": "select 1 as id union all select 2"}},
    }
    created = stack.client.post("/api/sources", json=source, headers=stack.headers)
    assert created.status_code == 201, created.text
    job = stack.create(
        {"name": "Late source", "sourceId": name, "retries": 3, "retryDelaySeconds": 3}
    )
    run_id = stack.run(job["id"])
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        # The first attempt meets a closed port; Dagster schedules another.
        while "ExecutionStepUpForRetryEvent" not in {e["event"] for e in stack.logs(run_id)}:
            assert stack.get_run(run_id)["status"] in ("queued", "running")
            assert time.monotonic() < deadline
            time.sleep(0.5)
        proxy.open()
        run = stack.wait(run_id)
    finally:
        proxy.close()
    assert run["status"] == "success", run
    assert run["rowsLoaded"] == 2
    events = [line["event"] for line in stack.logs(run_id)]
    assert "ExecutionStepRestartEvent" in events


class SlowApi:
    """A REST API answering one page a second, each linking to the next, without end."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                time.sleep(1)
                page = int(parse_qs(urlsplit(self.path).query).get("page", ["1"])[0])
                body = json.dumps({"items": [{"id": page}], "next": f"/items?page={page + 1}"})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_long_run_is_cancelled(stack: Stack) -> None:
    api = SlowApi()
    name = f"slow_{uuid.uuid4().hex[:6]}"
    source = {
        "name": name,
        "kind": "rest_api",
        "client": {
            "base_url": api.url,
            "paginator": {"type": "json_link", "next_url_path": "next"},
        },
        "tables": {"items": {"endpoint": {"path": "items", "data_selector": "items"}}},
    }
    try:
        created = stack.client.post("/api/sources", json=source, headers=stack.headers)
        assert created.status_code == 201, created.text
        job = stack.create({"name": "Endless", "sourceId": name})
        run_id = stack.run(job["id"])
        stack.wait(run_id, until=lambda run: run["status"] == "running")
        time.sleep(5)
        cancel = stack.client.post(f"/api/runs/{run_id}/cancel", headers=stack.headers)
        assert cancel.status_code == 202, cancel.text
        started = time.monotonic()
        run = stack.wait(run_id)
        assert run["status"] == "cancelled"
        assert time.monotonic() - started < 60
    finally:
        api.close()


def test_a_retry_runs_only_the_failed_step(stack: Stack) -> None:
    job = stack.create(
        {
            "name": "Products and model",
            "sourceId": "shop",
            "tables": ["products"],
            "transform": "stg_shop__products",
        }
    )
    # A duplicate the load does not touch (its oldest row: the cursor is past it): the
    # load succeeds, then dbt's unique test on the model fails the build step.
    with duckdb.connect(str(stack.settings.duckdb_path)) as connection:
        connection.execute(
            "insert into raw_shop.products "
            "select * from raw_shop.products order by updated_at limit 1"
        )
    failed = stack.wait(stack.run(job["id"]))
    assert failed["status"] == "failed", failed
    assert "dbt" in failed["error"].lower() or "unique" in failed["error"].lower(), failed
    with duckdb.connect(str(stack.settings.duckdb_path)) as connection:
        connection.execute(
            "delete from raw_shop.products where rowid = (select max(rowid) "
            "from raw_shop.products where id = (select id from raw_shop.products "
            "order by updated_at limit 1))"
        )

    retry = stack.client.post(f"/api/runs/{failed['id']}/retry", headers=stack.headers)
    assert retry.status_code == 202, retry.text
    retried = stack.wait(retry.json()["runId"])
    assert retried["status"] == "success", retried
    assert retried["parentRunId"] == failed["id"]
    started = {
        line["step"]
        for line in stack.logs(retried["id"])
        if line["event"] == "ExecutionStepStartEvent"
    }
    assert started == {"dbt_models"}  # the load that succeeded is not run again


def test_a_schedule_fires_on_its_minute(stack: Stack) -> None:
    assert stack.scheduled is not None
    job = stack.scheduled
    deadline = time.monotonic() + SCHEDULE_LEAD + 120
    path = f"/api/jobs/{job['id']}/runs"
    try:
        while not stack.client.get(path, headers=stack.headers).json()["items"]:
            assert time.monotonic() < deadline, f"the schedule {job['schedule']!r} did not fire"
            time.sleep(2)
    finally:
        stack.client.post(f"/api/jobs/{job['id']}/disable", headers=stack.headers)
    run = stack.client.get(path, headers=stack.headers).json()["items"][0]
    assert stack.wait(run["id"])["status"] == "success"


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def replicas(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two ``headwater api`` processes over the stack's store and Dagster, behind one Redis."""
    logs = tmp_path_factory.mktemp("replicas")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(
        HEADWATER_HOME=str(stack.settings.home),
        HEADWATER_SECRET_KEY=TEST_SECRET,
        HEADWATER_REDIS_URL=REDIS_URL,
        HEADWATER_DAGSTER_URL=stack.dagster_url,
    )
    # Each process listens to the events channel once it is up: count them in.
    bus = redis.Redis.from_url(REDIS_URL)
    channel = events.channel(stack.settings.metadata_url)
    listening = dict(bus.pubsub_numsub(channel)).get(channel.encode(), 0)
    processes, urls = [], []
    try:
        for n in range(2):
            port = free_port()
            handle = (logs / f"api-{n}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [str(Path(sys.executable).parent / "headwater"), "api"],
                    env={**env, "HEADWATER_API_PORT": str(port)},
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for n, url in enumerate(urls):
            deadline = time.monotonic() + 60
            while True:
                assert processes[n].poll() is None, (logs / f"api-{n}.log").read_text()
                with suppress(httpx.TransportError):
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, "an API process did not start"
                time.sleep(0.2)
        # Healthy is not yet subscribed: an event published before a process listens
        # reaches it from the store instead, and the test could not tell Redis worked.
        deadline = time.monotonic() + 30
        while dict(bus.pubsub_numsub(channel)).get(channel.encode(), 0) < listening + 2:
            assert time.monotonic() < deadline, "the API processes never listened on Redis"
            time.sleep(0.1)
        yield urls
    finally:
        bus.close()
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _token(base: str, email: str, password: str) -> str:
    response = httpx.post(
        f"{base}/api/auth/login", json={"email": email, "password": password}, timeout=30
    )
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


def test_a_runs_live_events_reach_clients_of_another_api_process(
    stack: Stack, replicas: list[str]
) -> None:
    first, second = replicas
    outsider = {"email": f"outsider-{uuid.uuid4().hex[:6]}@example.com", "password": "x" * 16}
    made = stack.client.post("/api/users", json=outsider, headers=stack.headers)
    assert made.status_code == 201, made.text
    job = stack.create(
        {"name": "Live", "sourceId": "shop", "tables": ["payments"], "writeDisposition": "replace"}
    )
    deadline = time.monotonic() + 10
    while not stack.dagster_has(job["id"]):
        assert time.monotonic() < deadline, "the job did not reach Dagster in 10 s"
        time.sleep(0.2)

    # A channel that cannot be reached, on a rule that fires when this job succeeds.
    broken = stack.client.post(
        "/api/notification-channels",
        json={"name": "unreachable hook", "url": f"json://hook:pw@127.0.0.1:{free_port()}/x"},
        headers=stack.headers,
    )
    assert broken.status_code == 201, broken.text
    rule = stack.client.post(
        "/api/alert-rules",
        json={
            "name": "Live loaded too little",
            "condition": "rows_below",
            "threshold": 10**9,
            "scope": "job",
            "scopeValue": str(job["id"]),
            "channelIds": [broken.json()["id"]],
        },
        headers=stack.headers,
    )
    assert rule.status_code == 201, rule.text

    admin_token = _token(second, ADMIN.email, ADMIN.password)
    port = urlsplit(second).port
    watching = websocket.create_connection(
        f"ws://127.0.0.1:{port}/api/ws", header=[f"Authorization: Bearer {admin_token}"]
    )
    outsider_token = _token(second, outsider["email"], outsider["password"])
    outside = websocket.create_connection(f"ws://127.0.0.1:{port}/api/ws?token={outsider_token}")
    for connection in (watching, outside):
        connection.settimeout(10)
        assert json.loads(connection.recv())["type"] == "ready"
    heard: list[dict[str, Any]] = []
    sio = socketio.Client(reconnection=False)
    sio.on("job_update", heard.append)
    sio.connect(second, auth={"token": admin_token}, transports=["websocket"])

    # Launched through the first process; the clients are on the second.
    launched = httpx.post(
        f"{first}/api/jobs/{job['id']}/run",
        headers={"Authorization": f"Bearer {_token(first, ADMIN.email, ADMIN.password)}"},
        timeout=60,
    )
    assert launched.status_code == 202, launched.text
    run_id = launched.json()["runId"]
    events: list[dict[str, Any]] = []
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while not events or events[-1]["event"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"no end of run {run_id} heard: {events}"
        try:
            message = json.loads(watching.recv())
        except websocket.WebSocketTimeoutException:
            continue  # a run takes a while to start: wait on, up to the deadline
        if message["data"].get("runId") == run_id:
            events.append({"id": message["id"], **message["data"]})
    moves = [e["event"] for e in events]
    assert moves[0] == "queued" and moves[-1] == "succeeded", moves
    assert "started" in moves and "progress" in moves, moves
    assert len(set(moves)) == len(moves), f"a move announced twice: {moves}"
    progress = next(e for e in events if e["event"] == "progress")
    assert progress["table"] == "shop.payments" and progress["tableRows"] > 0
    done = events[-1]
    assert done["jobId"] == job["id"] and done["status"] == "success"
    assert done["rows"] == progress["tableRows"]
    assert done["durationSeconds"] > 0
    assert stack.wait(run_id)["rowsLoaded"] == done["rows"]

    deadline = time.monotonic() + 5
    while len([e for e in heard if e.get("runId") == run_id]) < len(events):
        assert time.monotonic() < deadline, f"Socket.IO heard {heard}, the WebSocket {events}"
        time.sleep(0.05)
    assert [e["id"] for e in heard if e.get("runId") == run_id] == [e["id"] for e in events]
    sio.disconnect()

    # The queued event was published by the first process: it came over Redis.
    metrics = httpx.get(f"{second}/metrics", timeout=10).text
    assert re.search(r'headwater_events_received_total\{via="redis"\} [1-9]', metrics), metrics
    # A user who may not see the job heard nothing of it.
    outside.settimeout(0.5)
    with pytest.raises(websocket.WebSocketTimeoutException):
        while True:
            message = json.loads(outside.recv())
            assert message["data"].get("runId") != run_id, message
    watching.close()
    outside.close()

    # The broken channel did not change the job's result; its message waits for a retry,
    # and the in-app one arrived once.
    assert stack.get_run(run_id)["status"] == "success"
    channel_path = f"/api/notification-channels/{broken.json()['id']}"
    deadline = time.monotonic() + 60
    while not (channel := stack.client.get(channel_path, headers=stack.headers).json())[
        "lastError"
    ]:
        assert time.monotonic() < deadline, f"the broken channel was never tried: {channel}"
        time.sleep(0.5)
    assert "pw" not in channel["url"] and "refused" in channel["lastError"].lower()
    notes = stack.client.get("/api/notifications", params={"limit": 200}, headers=stack.headers)
    titles = [n["title"] for n in notes.json()["items"] if n["subject"] == f"job:{job['id']}"]
    assert len(titles) == 1 and "loaded" in titles[0], titles
