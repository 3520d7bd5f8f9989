"""API benchmark: authenticated hot paths at 32 connections, beside bare Litestar endpoints.

    uv run python -m benchmarks.api                 # only the API benchmark
    uv run python -m benchmarks.api --repeat 3 --duration 10
    uv run python -m benchmarks                     # runs it after the pipeline benchmarks

A fresh HEADWATER_HOME (migrated store, the admin, a handful of catalog datasets
with columns) is served by the real API, ``uvicorn api.app:create_app --factory``,
and the baseline, ``uvicorn benchmarks.bare_api:create_app --factory``: a bare
Litestar app answering JSON of the same shape and about the same size, with no
Headwater code. Both run with the same uvicorn options (uvloop, httptools, no
access log), pinned to one CPU; the load generator (``benchmarks.loadgen``, its
own process) is pinned to another.

Each path is measured ``--repeat`` times, ours and its baseline in turns; the run
with the highest throughput counts (its latencies are shown). Targets: throughput
at least half the bare endpoint's and p99 below 25 ms. Every answer is counted by
status: a non-2xx answer or a transport error (reset, timeout) fails the benchmark,
since a fast run made of 401s measures nothing.

The helpers that prepare a home and start a server are shared with
``tests/e2e/api/test_load.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.bare_api import sample_datasets
from benchmarks.loadgen import LoadResult

ROOT = Path(__file__).resolve().parent.parent
ADMIN_EMAIL = "bench-admin@example.com"
ADMIN_PASSWORD = "bench-admin-password-long"  # noqa: S105 - a throwaway home's admin
REAL_APP = "api.app:create_app"
BARE_APP = "benchmarks.bare_api:create_app"
# How the API is served, for ours and the baseline alike.
UVICORN_OPTIONS = (
    "--factory",
    "--host",
    "127.0.0.1",
    "--log-level",
    "warning",
    "--no-access-log",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
)
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
THROUGHPUT_TARGET = 0.5  # ours / bare, requests per second
P99_TARGET_MS = 25.0
BUSY_LOAD_AVERAGE = 0.5  # one-minute load average above which figures are suspect

INIT_SCRIPT = """
from api.users.services import ensure_admin
from headwater.migrate import upgrade
from headwater.settings import get_settings

settings = get_settings()
upgrade(settings.metadata_url)
print("generated" if ensure_admin(settings) else "configured")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_environment(home: Path, **extra: str) -> dict[str, str]:
    """This environment without any HEADWATER_* variable, plus a home, the admin and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    python_path = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env.update(
        HEADWATER_HOME=str(home),
        HEADWATER_ADMIN_EMAIL=ADMIN_EMAIL,
        HEADWATER_ADMIN_PASSWORD=ADMIN_PASSWORD,
        PYTHONPATH=os.pathsep.join(python_path),
    )
    env.update(extra)
    return env


def prepare_home(
    home: Path, env: Mapping[str, str], datasets: Sequence[Mapping[str, Any]] = ()
) -> None:
    """Migrate a fresh home, create its admin, add ``datasets`` and an empty warehouse file.

    Migrations and the admin run in a child process with ``env``, as `headwater up`
    would; the datasets (dicts as :func:`benchmarks.bare_api.sample_datasets` makes)
    go through the catalog's own models.
    """
    import duckdb

    from catalog.models import Dataset, DatasetColumn
    from headwater.db import session_scope
    from headwater.settings import Settings

    home.mkdir(parents=True, exist_ok=True)
    init = subprocess.run(
        [sys.executable, "-c", INIT_SCRIPT],
        cwd=home.parent,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if init.returncode != 0 or init.stdout.strip() != "configured":
        raise RuntimeError(f"initialising {home} failed:\n{init.stdout}{init.stderr}")
    settings = Settings(_env_file=None, home=home)
    with session_scope(settings.metadata_url) as session:
        for record in datasets:
            fields = {k: v for k, v in record.items() if k != "columns"}
            columns = [DatasetColumn(**column) for column in record.get("columns", ())]
            session.add(Dataset(**fields, columns=columns))
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS bench AS SELECT 1 AS x")


@dataclass
class Server:
    """A uvicorn process in its own process group."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL if it has not exited in time."""
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        # Anything the server started in its group goes too.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)


def http_request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request with the standard library: status, headers (lower-case names), body."""
    if not url.startswith("http://"):
        raise ValueError(f"plain http URLs only, not {url!r}")
    # Only ever http://127.0.0.1 URLs of servers started here.
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method=method, headers=dict(headers or {})
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@contextmanager
def serve(
    app: str,
    env: Mapping[str, str],
    *,
    cwd: Path,
    log: Path,
    ready_path: str = "/health",
    cpu: int | None = None,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> Iterator[Server]:
    """``python -m uvicorn <app>`` with :data:`UVICORN_OPTIONS` on a free port, until exit.

    Ready once ``ready_path`` answers anything at all over HTTP; pinned to ``cpu``
    when given (Linux). On exit the process group is terminated, then killed.
    """
    port = free_port()
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, *UVICORN_OPTIONS, "--port", str(port)],
            cwd=cwd,
            env=dict(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            # Threads started later (the handler pool) inherit the mask.
            os.sched_setaffinity(process.pid, {cpu})
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{app} exited with {process.returncode} before it answered:\n"
                    + server.log_tail()
                )
            try:
                http_request(server.base_url + ready_path, timeout=2)
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{app} did not answer within {timeout:g} s:\n{server.log_tail()}"
                    ) from None
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


@dataclass
class Session:
    """An access token and when it stops being valid (``time.monotonic()``), if it says."""

    token: str
    expires_at: float | None

    def lasts(self, seconds: float) -> bool:
        return self.expires_at is None or time.monotonic() + seconds < self.expires_at


def login(base_url: str, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> Session:
    """``POST /api/auth/login``: the access token and its expiry (from ``expiresIn``)."""
    started = time.monotonic()
    status, _, body = http_request(
        f"{base_url}/api/auth/login",
        method="POST",
        headers={"Content-Type": "application/json"},
        body=json.dumps({"email": email, "password": password}).encode(),
        timeout=30,
    )
    if status != 200:
        raise RuntimeError(f"login answered {status}: {body[:500]!r}")
    answer = json.loads(body)
    expires_in = answer.get("expiresIn")
    return Session(
        answer["accessToken"], started + expires_in if isinstance(expires_in, int) else None
    )


def measure(
    url: str,
    headers: Sequence[str] = (),
    *,
    connections: int,
    duration: float,
    warmup: float,
    cpu: int | None,
    method: str = "GET",
    data: str | None = None,
) -> LoadResult:
    """One timed run of ``python -m benchmarks.loadgen`` in its own process."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        "--url",
        url,
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--json",
    ]
    for header in headers:
        command += ["--header", header]
    if method != "GET":
        command += ["--method", method]
    if data is not None:
        command += ["--data", data]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=duration + warmup + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed on {url}:\n{done.stderr}")
    return LoadResult.from_json(json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass(frozen=True)
class HotPath:
    """A path of the real API and the bare endpoint that answers a similar payload."""

    label: str
    path: str
    bare_path: str


HOT_PATHS = (
    HotPath(
        "GET /api/catalog/datasets (cached)",
        "/api/catalog/datasets?limit=50",
        "/bare/datasets?limit=50",
    ),
    HotPath("GET /api/users/me", "/api/users/me", "/bare/me"),
)


def _check_catalog_page(body: bytes, datasets: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a catalog page is not the datasets that were inserted, or None when it is."""
    try:
        page = json.loads(body)
        names = sorted(item["name"] for item in page["items"])
        columns = sum(len(item["columns"]) for item in page["items"])
    except (ValueError, KeyError, TypeError) as exc:
        return f"not a catalog page ({type(exc).__name__}: {exc})"
    expected = sorted(d["name"] for d in datasets)
    expected_columns = sum(len(d["columns"]) for d in datasets)
    if names != expected or columns != expected_columns or page.get("total") != len(expected):
        return f"expected {expected} with {expected_columns} columns, got {names} ({columns})"
    return None


def _best(results: Sequence[LoadResult]) -> LoadResult:
    return max(results, key=lambda r: r.requests_per_s)


def _verdict(ok: bool) -> str:
    return "[green]PASS[/green]" if ok else "[red]FAIL[/red]"


def run_api_benchmark(
    console: Console,
    *,
    repeat: int = 2,
    duration: float = 5.0,
    warmup: float = 1.0,
    connections: int = 32,
    pin: bool = True,
) -> bool:
    """Measure every hot path beside its bare baseline and print the table.

    Returns whether every target passed. Raises SystemExit, after the table, when
    any answer was not 2xx or any request failed at the transport level.
    """
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > BUSY_LOAD_AVERAGE:
        console.print(
            f"[yellow]warning: load average {load:.1f} before the API benchmark; other work on "
            "this machine will show in the figures[/yellow]"
        )
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu, loadgen_cpu = (cpus[0], cpus[1]) if pin and len(cpus) >= 2 else (None, None)
    datasets = sample_datasets()
    ours: dict[str, list[LoadResult]] = {}
    bare: dict[str, list[LoadResult]] = {}
    missing: dict[str, str] = {}
    payload_bytes: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory(prefix="headwater-api-bench-") as tmp:
        work = Path(tmp)
        env = server_environment(work / "home")
        prepare_home(work / "home", env, datasets)
        with (
            serve(REAL_APP, env, cwd=work, log=work / "api.log", cpu=server_cpu) as api,
            serve(
                BARE_APP,
                env,
                cwd=work,
                log=work / "bare.log",
                ready_path="/bare/me",
                cpu=server_cpu,
            ) as baseline,
        ):
            session = login(api.base_url)
            authorization = f"Bearer {session.token}"
            active: list[HotPath] = []
            for hot in HOT_PATHS:
                status, _, body = http_request(
                    api.base_url + hot.path, headers={"Authorization": authorization}
                )
                if status == 404:
                    missing[hot.label] = "n/a (404)"
                    continue
                if status != 200:
                    raise SystemExit(
                        f"{hot.label} answered {status} before any load: {body[:300]!r}"
                    )
                if hot.path.partition("?")[0] == "/api/catalog/datasets":
                    problem = _check_catalog_page(body, datasets)
                    if problem:
                        raise SystemExit(f"{hot.label}: {problem}")
                bare_status, _, bare_body = http_request(baseline.base_url + hot.bare_path)
                assert bare_status == 200, bare_body
                payload_bytes[hot.label] = (len(body), len(bare_body))
                active.append(hot)
            console.print(
                f"API: {connections} connections, {warmup:g} s warm-up + {duration:g} s per run, "
                f"best of {repeat} (highest req/s) in turns with the bare endpoint; "
                + (
                    f"servers on CPU {server_cpu}, load generator on CPU {loadgen_cpu}"
                    if server_cpu is not None
                    else "not pinned"
                )
            )
            for round_number in range(repeat):
                for hot in active:
                    if not session.lasts(2 * (warmup + duration) + 30):
                        session = login(api.base_url)  # the token would expire mid-run
                        authorization = f"Bearer {session.token}"
                    runs = [
                        (bare, baseline.base_url + hot.bare_path, ()),
                        (ours, api.base_url + hot.path, (f"Authorization: {authorization}",)),
                    ]
                    if round_number % 2:
                        runs.reverse()
                    for store, url, headers in runs:
                        result = measure(
                            url,
                            headers,
                            connections=connections,
                            duration=duration,
                            warmup=warmup,
                            cpu=loadgen_cpu,
                        )
                        store.setdefault(hot.label, []).append(result)

    table = Table(
        title=f"Headwater API, {connections} connections "
        "(ratio = req/s ÷ bare req/s, higher is better)",
        caption=f"each path above its bare Litestar baseline; best of {repeat} runs by req/s",
    )
    for column in (
        "path", "req/s", "p50 ms", "p99 ms", "max ms", "bytes", "ratio",
        f"≥{THROUGHPUT_TARGET:g}x", f"p99<{P99_TARGET_MS:g}ms",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == "path" else "right", no_wrap=True)
    passed = True
    broken: list[str] = []
    for hot in HOT_PATHS:
        if hot.label in missing:
            table.add_row(hot.label, missing[hot.label], *[""] * 7, end_section=True)
            continue
        mine, base = _best(ours[hot.label]), _best(bare[hot.label])
        ratio = mine.requests_per_s / base.requests_per_s if base.requests_per_s else 0.0
        fast_enough = ratio >= THROUGHPUT_TARGET
        quick_enough = mine.requests > 0 and mine.p99_ms < P99_TARGET_MS
        passed = passed and fast_enough and quick_enough
        ours_bytes, bare_bytes = payload_bytes[hot.label]
        for label, result, size, cells in (
            (
                hot.label,
                mine,
                ours_bytes,
                (f"{ratio:.2f}", *map(_verdict, (fast_enough, quick_enough))),
            ),
            (f"  bare: GET {hot.bare_path}", base, bare_bytes, ("1.00", "", "")),
        ):
            table.add_row(
                label,
                f"{result.requests_per_s:,.0f}",
                f"{result.p50_ms:.2f}",
                f"{result.p99_ms:.2f}",
                f"{result.max_ms:.1f}",
                f"{size:,}",
                *cells,
                style=None if result is mine else "dim",
            )
        table.rows[-1].end_section = True
        for result in (*ours[hot.label], *bare[hot.label]):
            if result.failed or not result.requests:
                broken.append(
                    f"{result.url}: {result.requests} answers, statuses {result.statuses}, "
                    f"transport errors {result.errors}"
                )
    console.print(table)
    if broken:
        raise SystemExit(
            "answers that were not 2xx, or requests that got no answer, under load:\n  "
            + "\n  ".join(broken)
        )
    return passed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per figure; the best counts")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="do not pin servers and generator"
    )
    args = parser.parse_args(argv)
    passed = run_api_benchmark(
        Console(width=160),
        repeat=args.repeat,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        pin=args.pin,
    )
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
