"""Live events, each figure beside a baseline measured in the same run:

- run move → client: a real Dagster (webserver + daemon), a real API process (uvicorn)
  and a WebSocket client on ``/api/ws``; a one-table job over the sample data is run
  ``--runs`` times through the API, and for each move (started, succeeded) the time the
  client received its ``job_update`` is compared with the time Dagster recorded the
  move (the run's ``startTime`` and ``endTime``). Baseline: the moment the same move
  became visible in the ``runs`` table that the daemon's sensor mirrors (read every
  50 ms), which is what a client polling the REST API would see. Target: median < 1 s.
- broadcast to ``--clients`` WebSocket clients of one API process (pinned to one CPU;
  the clients, asyncio in this process, on the other): one ``job_update`` every client
  may see, published with ``headwater.events.publish``, until the last client has it,
  ``--broadcasts`` times after one that warms up. Baseline: a bare ``websockets``
  server (its own process, the same uvloop, the same per-message deflate) relaying the
  same message from Redis with ``websockets.broadcast``. Target: < 2 s. Also the
  server's memory per connection (its RSS before and after the clients connect) and
  the time to connect them all.

Both run with Redis (``HEADWATER_REDIS_URL``: the event arrives over pub/sub) and
without (the hub finds it in the store, read every quarter second), unless ``--redis``
says otherwise. Correctness is checked in the same run: every client received each
published event exactly once, with its id and payload, and nothing else; each run's
moves reached the client once each and in order, and the run ended as Dagster and the
``runs`` table say.

    uv run python -m benchmarks.events [--runs 5] [--clients 1000] [--broadcasts 10]
    uv run python -m benchmarks.events --redis off --no-latency
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    import httpx
    from websockets.asyncio.client import ClientConnection

    from benchmarks.jobs import Dagster

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
SCALE = 0.05
"""Sample data of the job whose runs are watched (50 customers: runs take seconds)."""
LATENCY_TARGET_SECONDS = 1.0
BROADCAST_TARGET_SECONDS = 2.0
MIRROR_POLL_SECONDS = 0.05
CONNECT_CONCURRENCY = 100
"""Clients opening their connection at the same time."""
SETTLE_SECONDS = 1.0
"""Pause after the clients connected, before the server's RSS is read."""
BROADCAST_GAPS_SECONDS = (0.2, 0.6)
"""Pause before each broadcast, drawn between these: each finds the hub's store read
at another point of its quarter second."""
WARMUP = 1
"""Broadcasts before those timed (first use of each connection's compressor)."""
DELIVERY_TIMEOUT_SECONDS = 15.0
QUIET_SECONDS = 3.5
"""Listening after the last broadcast with Redis: longer than the hub's store read then
(3 s), so an event delivered a second time would show."""
QUIET_WITHOUT_REDIS_SECONDS = 1.0
"""The same without Redis (the store is read every quarter second) and for the bare
server."""
RUN_TIMEOUT_SECONDS = 240.0
MIRROR_TIMEOUT_SECONDS = 60.0
SERVER_TIMEOUT_SECONDS = 60.0
USERS = 3
"""Ordinary users beside the admin: the clients take the four tokens in turn."""
USER_PASSWORD = "bench-user-password-long"  # noqa: S105 - a throwaway home's users
SHARED_JOB_ID = 999_999
"""The job the broadcast events name: none of the clients' users owns it; it is shared."""
TERMINAL_MOVES = ("succeeded", "failed", "cancelled")
STARTED = "started"
"""Not a status: when the ``runs`` row first showed a start time."""

T = TypeVar("T")

# A bare websockets server: every connection gets a "ready" message, then each message
# on the Redis channel goes to every connection with websockets' own broadcast. Same
# event loop (uvloop) and per-message deflate settings as uvicorn gives the API.
BARE_SERVER = """
import asyncio, resource, sys
import redis.asyncio as aioredis
import uvloop
from websockets.asyncio.server import broadcast, serve

port, channel, redis_url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and soft < hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
READY = '{"type":"ready","lastEventId":0}'


async def main():
    clients = set()

    async def handler(connection):
        clients.add(connection)
        try:
            await connection.send(READY)
            async for _ in connection:
                pass
        finally:
            clients.discard(connection)

    client = aioredis.Redis.from_url(redis_url)
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(channel)
        # websockets' default deflate: window 12 bits, memLevel 5, as uvicorn's.
        async with serve(handler, "127.0.0.1", port):
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    broadcast(clients, item["data"].decode())


uvloop.run(main())
"""


@dataclass(frozen=True)
class Figure:
    path: str
    ours: float
    baseline_name: str
    baseline: float
    target: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")


def label(redis: bool) -> str:
    return "Redis" if redis else "no Redis"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def quantile(values: Sequence[float], q: int) -> float:
    """The ``q``-th percentile (inclusive method: never beyond the largest value)."""
    if len(values) < 2:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[q - 1])


def raise_open_files(needed: int) -> None:
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it); enough for
    ``needed`` sockets, or a clear error."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < needed:
        raise SystemExit(f"{needed} clients need more open files than the limit ({soft})")


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (``VmRSS`` in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def redis_up() -> bool:
    import redis

    try:
        return bool(
            redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        )
    except Exception:
        return False


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """``work`` on a fresh uvloop event loop (the servers' loop too)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(work)


@contextmanager
def on_cpu(cpu: int | None) -> Iterator[None]:
    """This thread (and the threads it starts) on ``cpu`` until exit, when there are two."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpus() -> tuple[int | None, int | None]:
    """(the server's CPU, the clients' CPU), when there are at least two to share."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    available = sorted(os.sched_getaffinity(0))
    return (available[0], available[1]) if len(available) >= 2 else (None, None)


def payload(tag: str, seq: int) -> dict[str, Any]:
    """A ``job_update`` as the watcher publishes one: a run of a shared job started."""
    return {
        "jobId": SHARED_JOB_ID,
        "jobName": "Broadcast",
        "runId": f"{tag}-{seq}",
        "event": "started",
        "status": "running",
        "rows": 0,
        "startedAt": "2026-01-01T00:00:00+00:00",
        "finishedAt": None,
        "durationSeconds": None,
        "error": None,
    }


# --- broadcast to many clients ------------------------------------------------------


@dataclass(frozen=True)
class CrowdResult:
    connect_seconds: float
    bytes_per_connection: float
    last_seconds: list[float]
    """Per broadcast: publish → the last client received it."""
    each_seconds: list[float]
    """Per broadcast and client: publish → that client received it."""


class Crowd:
    """WebSocket clients in this process's event loop, each keeping what it receives."""

    def __init__(self, url: str, tokens: Sequence[str | None]) -> None:
        self.url = url
        self.tokens = tokens
        self.connections: list[ClientConnection] = []
        self.received: list[list[tuple[float, dict[str, Any]]]] = []
        self.arrived: dict[str, int] = {}
        self.everyone: dict[str, asyncio.Event] = {}
        self.readers: list[asyncio.Task[None]] = []

    async def connect(self, count: int) -> float:
        """Connect ``count`` clients (each has its ``ready`` message); the seconds it took."""
        from websockets.asyncio.client import connect

        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        slots: list[ClientConnection | None] = [None] * count

        async def one(index: int) -> None:
            token = self.tokens[index % len(self.tokens)]
            headers = {"Authorization": f"Bearer {token}"} if token else None
            async with gate:
                connection = await connect(
                    self.url,
                    additional_headers=headers,
                    proxy=None,
                    ping_interval=None,  # as a browser: the server pings
                    open_timeout=SERVER_TIMEOUT_SECONDS,
                    close_timeout=2,
                )
                first = json.loads(await asyncio.wait_for(connection.recv(), 30))
            if first.get("type") != "ready":
                raise RuntimeError(f"client {index} was answered {first}")
            slots[index] = connection

        started = time.perf_counter()
        try:
            await asyncio.gather(*(one(i) for i in range(count)))
        finally:
            self.connections = [c for c in slots if c is not None]  # closed by close()
        elapsed = time.perf_counter() - started
        self.received = [[] for _ in self.connections]
        self.readers = [
            asyncio.create_task(self._read(index, connection))
            for index, connection in enumerate(self.connections)
        ]
        return elapsed

    async def _read(self, index: int, connection: ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        inbox = self.received[index]
        with suppress(ConnectionClosed):
            async for text in connection:
                at = time.perf_counter()
                message = json.loads(text)
                inbox.append((at, message))
                data = message.get("data")
                run_id = data.get("runId") if isinstance(data, dict) else None
                if run_id is None:
                    continue
                count = self.arrived[run_id] = self.arrived.get(run_id, 0) + 1
                everyone = self.everyone.get(run_id)
                if everyone is not None and count >= len(self.connections):
                    everyone.set()

    async def broadcast(
        self, count: int, tag: str, publish: Callable[[int], tuple[int, dict[str, Any]]]
    ) -> tuple[list[float], list[float], list[tuple[int, dict[str, Any]]]]:
        """``count`` events (after :data:`WARMUP` more), one at a time, each until every
        client has it: the seconds to the last client of each, to each client of each, and
        what was published (all of them, checked alike)."""
        gaps = random.Random(count)  # noqa: S311 - the same pauses for ours and the baseline
        last: list[float] = []
        each: list[float] = []
        sent: list[tuple[int, dict[str, Any]]] = []
        for seq in range(WARMUP + count):
            await asyncio.sleep(gaps.uniform(*BROADCAST_GAPS_SECONDS))
            run_id = payload(tag, seq)["runId"]
            everyone = self.everyone[run_id] = asyncio.Event()
            started = time.perf_counter()
            sent.append(await asyncio.to_thread(publish, seq))
            try:
                await asyncio.wait_for(everyone.wait(), DELIVERY_TIMEOUT_SECONDS)
            except TimeoutError:
                raise RuntimeError(
                    f"{self.arrived.get(run_id, 0)} of {len(self.connections)} clients received "
                    f"event {sent[-1][0]} within {DELIVERY_TIMEOUT_SECONDS:g} s"
                ) from None
            stamps = [
                next(at for at, m in inbox if m.get("data", {}).get("runId") == run_id)
                for inbox in self.received
            ]
            if seq >= WARMUP:
                last.append(max(stamps) - started)
                each += [stamp - started for stamp in stamps]
        return last, each, sent

    def check(self, sent: list[tuple[int, dict[str, Any]]]) -> None:
        """Every client received exactly ``sent``, in order: ids, payloads, nothing twice."""
        expected = [{"type": "job_update", "id": i, "data": data} for i, data in sent]
        for index, inbox in enumerate(self.received):
            got = [message for _, message in inbox]
            if got == expected:
                continue
            ids = [int(m.get("id") or 0) for m in got]
            twice = sorted({i for i in ids if ids.count(i) > 1})
            missing = [i for i, _ in sent if i not in ids]
            raise RuntimeError(
                f"client {index} of {len(self.received)} received ids {ids}, expected "
                f"{[i for i, _ in sent]} (twice: {twice}, missing: {missing})"
                + ("" if twice or missing else f"; first difference: {_difference(got, expected)}")
            )

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in self.connections), return_exceptions=True)


def _difference(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> str:
    for mine, theirs in zip(got, expected, strict=False):
        if mine != theirs:
            return f"{mine} instead of {theirs}"
    return f"{len(got)} messages instead of {len(expected)}"


async def crowd_run(
    url: str,
    tokens: Sequence[str | None],
    pid: int,
    clients: int,
    broadcasts: int,
    tag: str,
    publish: Callable[[int], tuple[int, dict[str, Any]]],
    quiet: float,
) -> CrowdResult:
    """Connect ``clients`` to ``url`` (a server whose process is ``pid``), broadcast, check."""
    before = rss_bytes(pid)
    crowd = Crowd(url, tokens)
    try:
        connect_seconds = await crowd.connect(clients)
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_bytes(pid)
        # A collection of this process's heap (earlier crowds left plenty) in the middle
        # of a broadcast would be timed as the server's: none while they run.
        gc.collect()
        gc.disable()
        try:
            last, each, sent = await crowd.broadcast(broadcasts, tag, publish)
        finally:
            gc.enable()
        await asyncio.sleep(quiet)
        crowd.check(sent)
    finally:
        await crowd.close()
    return CrowdResult(connect_seconds, (after - before) / clients, last, each)


@contextmanager
def bare_server(channel: str, cpu: int | None, log: Path) -> Iterator[tuple[str, int]]:
    """The bare websockets server in its own process: (its ws:// URL, its pid)."""
    from benchmarks.api import free_port

    port = free_port()
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-c", BARE_SERVER, str(port), channel, REDIS_URL],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        if cpu is not None:
            os.sched_setaffinity(process.pid, {cpu})
        deadline = time.monotonic() + SERVER_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the bare server exited:\n{log.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the bare server did not listen in time") from None
                time.sleep(0.05)
        yield f"ws://127.0.0.1:{port}", process.pid
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def user_tokens(base_url: str, admin_token: str, create: bool) -> list[str | None]:
    """The admin's token and those of :data:`USERS` ordinary users (created if ``create``)."""
    import httpx

    from benchmarks.api import login

    tokens: list[str | None] = [admin_token]
    for n in range(USERS):
        email = f"events-bench-{n}@example.com"
        if create:
            made = httpx.post(
                f"{base_url}/api/users",
                json={"email": email, "password": USER_PASSWORD, "role": "user"},
                headers={"Authorization": f"Bearer {admin_token}"},
                timeout=30,
            )
            if made.status_code != 201:
                raise RuntimeError(f"creating {email} answered {made.status_code}: {made.text}")
        tokens.append(login(base_url, email, USER_PASSWORD).token)
    return tokens


def broadcast_figures(
    work: Path, env: dict[str, str], clients: int, broadcasts: int, modes: Sequence[bool]
) -> list[Figure]:
    """Connect, memory and broadcast figures of the API (each mode) beside the bare server."""
    import redis

    from benchmarks.api import REAL_APP, free_port, login, serve
    from headwater import events
    from headwater.settings import Settings

    settings = Settings(_env_file=None, home=Path(env["HEADWATER_HOME"]))
    server_cpu, client_cpu = cpus()
    results: dict[str, CrowdResult] = {}
    created = False
    # Runs are not watched here: the API's watcher asks a port where nothing answers.
    quiet_dagster = f"http://127.0.0.1:{free_port()}"
    for redis_on in modes:
        api_env = {**env, "HEADWATER_DAGSTER_URL": quiet_dagster}
        api_env.pop("HEADWATER_REDIS_URL", None)
        if redis_on:
            api_env["HEADWATER_REDIS_URL"] = REDIS_URL
        name = label(redis_on)
        log = work / f"api-broadcast-{name.replace(' ', '-')}.log"
        with serve(REAL_APP, api_env, cwd=work, log=log, cpu=server_cpu) as api:
            tokens = user_tokens(api.base_url, login(api.base_url).token, create=not created)
            created = True
            tag = f"ours-{'redis' if redis_on else 'store'}"
            redis_url = REDIS_URL if redis_on else None

            def publish(
                seq: int, tag: str = tag, redis_url: str | None = redis_url
            ) -> tuple[int, dict[str, Any]]:
                data = payload(tag, seq)
                item = events.publish(
                    settings.metadata_url,
                    redis_url,
                    "job_update",
                    data,
                    key=f"bench:{data['runId']}",
                    job_id=SHARED_JOB_ID,
                    owner_id=None,
                    shared=True,
                )
                if item is None:
                    raise RuntimeError(f"event {data['runId']} was published before")
                return int(item["id"]), data

            ws_url = api.base_url.replace("http://", "ws://") + "/api/ws"
            with on_cpu(client_cpu):
                results[name] = run_async(
                    crowd_run(
                        ws_url,
                        tokens,
                        api.process.pid,
                        clients,
                        broadcasts,
                        tag,
                        publish,
                        QUIET_SECONDS if redis_on else QUIET_WITHOUT_REDIS_SECONDS,
                    )
                )
            if api.process.poll() is not None:
                raise RuntimeError(f"the API exited during the broadcasts:\n{api.log_tail()}")

    channel = f"headwater-bench-bare:{uuid.uuid4().hex[:12]}"
    client = redis.Redis.from_url(REDIS_URL)

    def publish_bare(seq: int) -> tuple[int, dict[str, Any]]:
        data = payload("bare", seq)
        text = json.dumps(
            {"type": "job_update", "id": seq + 1, "data": data}, separators=(",", ":")
        )
        if client.publish(channel, text) != 1:
            raise RuntimeError("the bare server is not subscribed to its channel")
        return seq + 1, data

    with (
        bare_server(channel, server_cpu, work / "bare-server.log") as (url, pid),
        on_cpu(client_cpu),
    ):
        bare = run_async(
            crowd_run(
                url,
                [None],
                pid,
                clients,
                broadcasts,
                "bare",
                publish_bare,
                QUIET_WITHOUT_REDIS_SECONDS,
            )
        )
    client.close()

    figures: list[Figure] = []
    for name, ours in results.items():
        figures += [
            Figure(
                f"connect {clients:,} clients (s) ({name})",
                ours.connect_seconds,
                "bare websockets server",
                bare.connect_seconds,
            ),
            Figure(
                f"server memory per connection (KB) ({name})",
                ours.bytes_per_connection / 1024,
                "bare websockets server",
                bare.bytes_per_connection / 1024,
            ),
            Figure(
                f"publish → last of {clients:,} clients, p50 (ms) ({name})",
                median(ours.last_seconds) * 1000,
                "bare websockets: Redis → broadcast",
                median(bare.last_seconds) * 1000,
                f"< {BROADCAST_TARGET_SECONDS * 1000:,.0f} ms",
            ),
            Figure(
                f"publish → last of {clients:,} clients, p99 (ms) ({name})",
                quantile(ours.last_seconds, 99) * 1000,
                "bare websockets: Redis → broadcast",
                quantile(bare.last_seconds, 99) * 1000,
                f"< {BROADCAST_TARGET_SECONDS * 1000:,.0f} ms",
            ),
            Figure(
                f"publish → last of {clients:,} clients, max (ms) ({name})",
                max(ours.last_seconds) * 1000,
                "bare websockets: Redis → broadcast",
                max(bare.last_seconds) * 1000,
                f"< {BROADCAST_TARGET_SECONDS * 1000:,.0f} ms",
            ),
            Figure(
                f"publish → each client, p50 (ms) ({name})",
                median(ours.each_seconds) * 1000,
                "bare websockets: Redis → broadcast",
                median(bare.each_seconds) * 1000,
            ),
        ]
    return figures


# --- a run's moves reaching a client ------------------------------------------------


class Listener:
    """One WebSocket client in a thread, keeping each message with its arrival time."""

    def __init__(self, url: str, token: str) -> None:
        from websockets.sync.client import connect

        self.exits = ExitStack()
        self.connection = self.exits.enter_context(
            connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                proxy=None,
                open_timeout=SERVER_TIMEOUT_SECONDS,
                close_timeout=2,
            )
        )
        first = json.loads(self.connection.recv(timeout=30))
        if first.get("type") != "ready":
            raise RuntimeError(f"the WebSocket answered {first}")
        self.heard: list[tuple[float, dict[str, Any]]] = []
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, name="events-listener", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        with suppress(ConnectionClosed):
            for text in self.connection:
                at = time.time()
                message = json.loads(text)
                with self.changed:
                    self.heard.append((at, message))
                    self.changed.notify_all()

    def moves(self, run_id: str) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, message) of each ``job_update`` of run ``run_id``, as they came."""
        with self.changed:
            return [
                (at, m)
                for at, m in self.heard
                if m.get("type") == "job_update" and m.get("data", {}).get("runId") == run_id
            ]

    def wait_end(self, run_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not any(m["data"].get("event") in TERMINAL_MOVES for _, m in self.moves(run_id)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(
                        f"no end of run {run_id} heard in {timeout:g} s: "
                        f"{[m['data'].get('event') for _, m in self.moves(run_id)]}"
                    )
                self.changed.wait(remaining)

    def close(self) -> None:
        self.exits.close()
        self.thread.join(5)


class Mirror:
    """Reads the ``runs`` rows of one job every 50 ms, as a client polling the REST API
    would, keeping when each run was first seen in each status."""

    def __init__(self, metadata_url: str, job_id: int) -> None:
        self.metadata_url = metadata_url
        self.job_id = job_id
        self.seen: dict[str, dict[str, float]] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="runs-mirror", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from sqlalchemy import select

        from headwater.db import session_scope
        from orchestration.models import Run

        try:
            while not self.stopping.is_set():
                with session_scope(self.metadata_url) as session:
                    rows = session.execute(
                        select(Run.id, Run.status, Run.started_at).where(Run.job_id == self.job_id)
                    ).all()
                at = time.time()
                with self.lock:
                    for run_id, status, started_at in rows:
                        seen = self.seen.setdefault(run_id, {})
                        seen.setdefault(status, at)
                        if started_at is not None:
                            seen.setdefault(STARTED, at)
                self.stopping.wait(MIRROR_POLL_SECONDS)
        except BaseException as exc:
            self.error = exc

    def first(self, run_id: str, statuses: Sequence[str]) -> float | None:
        with self.lock:
            times = [at for s, at in self.seen.get(run_id, {}).items() if s in statuses]
        return min(times) if times else None

    def wait(self, run_ids: Sequence[str], status: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(self.first(run_id, (status,)) is None for run_id in run_ids):
            if self.error is not None:
                raise RuntimeError(f"reading the runs table failed: {self.error!r}")
            if time.monotonic() > deadline:
                with self.lock:
                    raise RuntimeError(f"the runs table did not show {status} in time: {self.seen}")
            time.sleep(MIRROR_POLL_SECONDS)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)


@dataclass(frozen=True)
class Moves:
    """Seconds from Dagster recording each move to a client hearing of it."""

    started: list[float]
    succeeded: list[float]
    mirror_started: list[float]
    mirror_succeeded: list[float]


def create_job(client: httpx.Client, dagster: Dagster) -> int:
    response = client.post(
        "/api/jobs",
        json={"name": "Events benchmark", "sourceId": "shop", "tables": ["payments"]},
    )
    if response.status_code != 201:
        raise RuntimeError(f"creating the job answered {response.status_code}: {response.text}")
    job_id = int(response.json()["id"])
    deadline = time.monotonic() + 120
    while not dagster.has_job(f"job_{job_id}"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} never reached Dagster")
        time.sleep(0.1)
    return job_id


def dagster_moments(dagster: Dagster, run_id: str) -> tuple[str, float, float]:
    """(status, ``startTime``, ``endTime``) of a finished run, as Dagster recorded them."""
    data = dagster.query(
        "query($id: ID!) { runOrError(runId: $id) { __typename "
        "... on Run { status startTime endTime } } }",
        {"id": run_id},
    )
    run = data["runOrError"]
    if run["__typename"] != "Run" or run["startTime"] is None or run["endTime"] is None:
        raise RuntimeError(f"Dagster has no finished run {run_id}: {run}")
    return str(run["status"]), float(run["startTime"]), float(run["endTime"])


def check_moves(run_id: str, job_id: int, heard: list[tuple[float, dict[str, Any]]]) -> None:
    """Each move once, in order (queued, started, progress…, succeeded), of the right job."""
    events = [m["data"]["event"] for _, m in heard]
    ids = [m["id"] for _, m in heard]
    if len(set(ids)) != len(ids):
        raise RuntimeError(f"run {run_id}: an event arrived twice: {ids} {events}")
    moves = [e for e in events if e != "progress"]
    if moves != ["queued", "started", "succeeded"]:
        raise RuntimeError(f"run {run_id}: the client heard {events}")
    if ids != sorted(ids):
        raise RuntimeError(f"run {run_id}: events out of order: {ids} {events}")
    last = heard[-1][1]["data"]
    if last["status"] != "success" or last["jobId"] != job_id:
        raise RuntimeError(f"run {run_id} ended as {last}")


def watch_runs(
    api_url: str, metadata_url: str, dagster: Dagster, job_id: int | None, runs: int
) -> tuple[int, Moves]:
    """Run the job ``runs`` times through the API at ``api_url`` (creating it first when
    ``job_id`` is None); the job and the seconds each move took to reach the client."""
    import httpx

    from benchmarks.api import login

    token = login(api_url).token
    with httpx.Client(
        base_url=api_url, timeout=120, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        if job_id is None:
            job_id = create_job(client, dagster)
        listener = Listener(api_url.replace("http://", "ws://") + "/api/ws", token)
        mirror = Mirror(metadata_url, job_id)
        try:
            run_ids = []
            for _ in range(runs):
                response = client.post(f"/api/jobs/{job_id}/run")
                if response.status_code != 202:
                    raise RuntimeError(f"launch answered {response.status_code}: {response.text}")
                run_ids.append(str(response.json()["runId"]))
                listener.wait_end(run_ids[-1], RUN_TIMEOUT_SECONDS)
            mirror.wait(run_ids, "success", MIRROR_TIMEOUT_SECONDS)
        finally:
            mirror.close()
            listener.close()
    moves = Moves([], [], [], [])
    for run_id in run_ids:
        status, started_at, ended_at = dagster_moments(dagster, run_id)
        if status != "SUCCESS":
            raise RuntimeError(f"run {run_id} ended {status} in Dagster")
        heard = listener.moves(run_id)
        check_moves(run_id, job_id, heard)
        at = {m["data"]["event"]: when for when, m in heard}
        mirror_started = mirror.first(run_id, (STARTED,))
        mirror_succeeded = mirror.first(run_id, ("success",))
        if mirror_started is None or mirror_succeeded is None:
            raise RuntimeError(f"the runs table never showed run {run_id} end")
        moves.started.append(at["started"] - started_at)
        moves.succeeded.append(at["succeeded"] - ended_at)
        moves.mirror_started.append(mirror_started - started_at)
        moves.mirror_succeeded.append(mirror_succeeded - ended_at)
    return job_id, moves


def latency_figures(
    work: Path, env: dict[str, str], runs: int, modes: Sequence[bool], console: Console
) -> list[Figure]:
    """Run moves → client figures (each mode) beside the ``runs`` table mirror."""
    from benchmarks.api import REAL_APP, serve
    from benchmarks.dagster import dagster_services
    from benchmarks.jobs import Dagster
    from headwater.settings import Settings
    from ingest.sample_data import generate

    home = Path(env["HEADWATER_HOME"])
    generate(home / "sample", scale=SCALE)
    settings = Settings(_env_file=None, home=home)
    # The daemon's sensor and the runs' steps announce on Redis when there is one; an
    # API process without Redis finds their events in the store all the same.
    dagster_env = {**env, "HEADWATER_REDIS_URL": REDIS_URL} if any(modes) else dict(env)
    figures: list[Figure] = []
    with dagster_services(home, dagster_env) as dagster_url:
        dagster = Dagster(dagster_url)
        job_id: int | None = None
        for redis_on in modes:
            api_env = {**env, "HEADWATER_DAGSTER_URL": dagster_url}
            api_env.pop("HEADWATER_REDIS_URL", None)
            if redis_on:
                api_env["HEADWATER_REDIS_URL"] = REDIS_URL
            name = label(redis_on)
            log = work / f"api-latency-{name.replace(' ', '-')}.log"
            with serve(REAL_APP, api_env, cwd=work, log=log) as api:
                job_id, moves = watch_runs(
                    api.base_url, settings.metadata_url, dagster, job_id, runs
                )
            ours = moves.started + moves.succeeded
            mirror = moves.mirror_started + moves.mirror_succeeded
            figures += [
                Figure(
                    f"run move → client, median of {len(ours)} (s) ({name})",
                    median(ours),
                    "runs table (sensor), 50 ms poll",
                    median(mirror),
                    f"< {LATENCY_TARGET_SECONDS:g} s",
                ),
                Figure(
                    f"run move → client, p90 (s) ({name})",
                    quantile(ours, 90),
                    "runs table (sensor), 50 ms poll",
                    quantile(mirror, 90),
                ),
            ]
            console.print(
                f"({name}) median s, client / runs table: started "
                f"{median(moves.started):.3f} / {median(moves.mirror_started):.3f}, "
                f"succeeded {median(moves.succeeded):.3f} / "
                f"{median(moves.mirror_succeeded):.3f}; worst client {max(ours):.3f}"
            )
    return figures


# --- the whole benchmark ----------------------------------------------------------


def run(
    clients: int = 1000,
    broadcasts: int = 10,
    runs: int = 5,
    redis: str = "both",
    latency: bool = True,
    crowd: bool = True,
    console: Console | None = None,
) -> list[Figure]:
    from benchmarks.api import prepare_home, server_environment

    console = console or Console(width=130)
    raise_open_files(clients + 200)
    wanted = {"both": [False, True], "on": [True], "off": [False]}[redis]
    if True in wanted and not redis_up():
        console.print(f"Redis does not answer at {REDIS_URL}: measuring without it only")
        wanted = [False]
    figures: list[Figure] = []
    work = Path(tempfile.mkdtemp(prefix="headwater-events-bench-"))
    try:
        home = work / "home"
        env = server_environment(home)
        prepare_home(home, env)
        if crowd:
            figures += broadcast_figures(work, env, clients, broadcasts, wanted)
        if latency:
            figures += latency_figures(work, env, runs, wanted, console)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def print_report(figures: list[Figure], console: Console) -> None:
    table = Table(title="Live events (ratio = ours / baseline, lower is better)")
    for column in ("hot path", "ours", "baseline", "", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("hot path", "baseline") else "right")
    for figure in figures:
        table.add_row(
            figure.path,
            f"{figure.ours:,.3f}" if figure.ours < 10 else f"{figure.ours:,.1f}",
            figure.baseline_name,
            f"{figure.baseline:,.3f}" if figure.baseline < 10 else f"{figure.baseline:,.1f}",
            f"{figure.ratio:.2f}",
            figure.target,
        )
    console.print(table)


def report(console: Console, **options: Any) -> None:
    """Run the benchmark (``options`` as :func:`run` takes them) and print its table."""
    print_report(run(console=console, **options), console)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients connected")
    parser.add_argument("--broadcasts", type=int, default=10, help="events broadcast to them")
    parser.add_argument("--runs", type=int, default=5, help="runs of the job whose moves count")
    parser.add_argument(
        "--redis",
        choices=("both", "on", "off"),
        default="both",
        help="measure with Redis, without it, or both",
    )
    parser.add_argument(
        "--latency",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run moves → client, with a real Dagster",
    )
    parser.add_argument(
        "--broadcast",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one event to --clients clients",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    console = Console(width=130)
    report(
        console,
        clients=args.clients,
        broadcasts=args.broadcasts,
        runs=args.runs,
        redis=args.redis,
        latency=args.latency,
        crowd=args.broadcast,
    )


if __name__ == "__main__":
    main()
