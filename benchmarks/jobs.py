"""Jobs through a real API and a real Dagster, each figure beside a baseline measured in
the same run:

- job create → visible in Dagster (``POST /api/jobs`` until Dagster knows the job)
  vs Dagster's own ``reloadRepositoryLocation``;
- run launch → run STARTED (``POST /api/jobs/{id}/run``) vs Dagster's own ``launchRun``
  GraphQL call for the same job;
- with 1,000 jobs stored: the definitions load vs the same with a handful of jobs;
  ``GET /api/jobs`` p99 and ``GET /api/dashboard`` (cached) p99 vs ``GET /api/users/me``.

    uv run python -m benchmarks.jobs [--launches 5] [--jobs 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from benchmarks.api import REAL_APP, login, prepare_home, serve, server_environment
from benchmarks.dagster import dagster_services

ROOT = Path(__file__).resolve().parent.parent
SCALE = 0.05
LATENCY_REQUESTS = 400
VISIBLE_TIMEOUT_SECONDS = 120
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
STARTED = {"STARTED", *TERMINAL}


@dataclass(frozen=True)
class Figure:
    path: str
    ours: float
    baseline_name: str
    baseline: float
    target: str

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")


class Dagster:
    """GraphQL calls of the baseline, and the run status both sides wait on."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def query(self, text: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post("/graphql", json={"query": text, "variables": variables})
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        data: dict[str, Any] = body["data"]
        return data

    def has_job(self, name: str) -> bool:
        data = self.query(
            "query($s: PipelineSelector!) { pipelineOrError(params: $s) { __typename } }",
            {"s": selector(name)},
        )
        return bool(data["pipelineOrError"]["__typename"] == "Pipeline")

    def reload(self) -> None:
        self.query(
            'mutation { reloadRepositoryLocation(repositoryLocationName: "headwater") '
            "{ __typename } }",
            {},
        )

    def launch(self, name: str) -> str:
        data = self.query(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
            "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
            {"p": {"selector": selector(name)}},
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(result)
        run_id: str = result["run"]["runId"]
        return run_id

    def status(self, run_id: str) -> str:
        data = self.query(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )
        status: str = data["runOrError"]["status"]
        return status

    def wait(self, run_id: str, until: set[str], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while self.status(run_id) not in until:
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run_id} did not reach {until}")
            time.sleep(0.05)


def selector(name: str) -> dict[str, str]:
    return {
        "repositoryLocationName": "headwater",
        "repositoryName": "__repository__",
        "pipelineName": name,
    }


def p99_ms(client: httpx.Client, path: str, headers: dict[str, str]) -> float:
    for _ in range(20):  # warm: connections, caches
        client.get(path, headers=headers)
    timings = []
    for _ in range(LATENCY_REQUESTS):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:300]}")
    return statistics.quantiles(timings, n=100)[98]


def definitions_seconds(env: dict[str, str]) -> float:
    script = (
        "import time; t = time.perf_counter(); "
        "from orchestration.definitions import defs; defs.resolve_all_job_defs(); "
        "print(time.perf_counter() - t)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def add_jobs(home: Path, count: int, owner_id: int) -> None:
    """``count`` jobs straight into the store: varied tables, schedules and time zones."""
    from headwater.db import session_scope
    from headwater.settings import Settings
    from orchestration.models import Job

    settings = Settings(_env_file=None, home=home)
    tables = ["customers", "orders", "products", "order_items", "payments"]
    zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"]
    with session_scope(settings.metadata_url) as session:
        session.add_all(
            Job(
                name=f"bulk job {i}",
                owner_id=owner_id,
                source="shop",
                target="warehouse",
                tables=[tables[i % len(tables)]],
                transform="stg_shop__orders+" if i % 3 == 0 else None,
                schedule=f"{i % 60} {i % 24} * * *" if i % 2 == 0 else None,
                timezone=zones[i % len(zones)],
                retries=i % 3,
                retry_delay_seconds=30,
                enabled=True,
                shared=False,
            )
            for i in range(count)
        )


def run(launches: int, job_count: int) -> list[Figure]:
    from ingest.sample_data import generate

    figures: list[Figure] = []
    work = Path(tempfile.mkdtemp(prefix="headwater-jobs-bench-"))
    try:
        home = work / "home"
        env = server_environment(home)
        prepare_home(home, env)
        generate(home / "sample", scale=SCALE)
        with dagster_services(home, env) as dagster_url:
            dagster = Dagster(dagster_url)
            api_env = {**env, "HEADWATER_DAGSTER_URL": dagster_url}
            with serve(REAL_APP, api_env, cwd=work, log=work / "api.log") as api:
                session = login(api.base_url)
                auth = {"Authorization": f"Bearer {session.token}"}
                client = httpx.Client(base_url=api.base_url, timeout=120)
                me = client.get("/api/users/me", headers=auth).json()

                def create(index: int) -> int:
                    response = client.post(
                        "/api/jobs",
                        headers=auth,
                        json={"name": f"bench {index}", "sourceId": "shop", "tables": ["payments"]},
                    )
                    if response.status_code != 201:
                        raise RuntimeError(response.text)
                    job_id: int = response.json()["id"]
                    return job_id

                visible, reloads, job_ids = [], [], []
                for index in range(launches):
                    started = time.perf_counter()
                    job_id = create(index)
                    while not dagster.has_job(f"job_{job_id}"):
                        if time.perf_counter() - started > VISIBLE_TIMEOUT_SECONDS:
                            raise RuntimeError(f"job {job_id} never reached Dagster")
                        time.sleep(0.05)
                    visible.append(time.perf_counter() - started)
                    job_ids.append(job_id)
                    started = time.perf_counter()
                    dagster.reload()
                    reloads.append(time.perf_counter() - started)
                figures.append(
                    Figure(
                        "job create → visible in Dagster (median s)",
                        statistics.median(visible),
                        "Dagster reloadRepositoryLocation",
                        statistics.median(reloads),
                        "< 10 s",
                    )
                )

                ours, theirs = [], []
                for job_id in job_ids:
                    started = time.perf_counter()
                    response = client.post(f"/api/jobs/{job_id}/run", headers=auth)
                    if response.status_code != 202:
                        raise RuntimeError(response.text)
                    run_id = response.json()["runId"]
                    dagster.wait(run_id, STARTED)
                    ours.append(time.perf_counter() - started)
                    dagster.wait(run_id, TERMINAL)
                    started = time.perf_counter()
                    base_id = dagster.launch(f"job_{job_id}")
                    dagster.wait(base_id, STARTED)
                    theirs.append(time.perf_counter() - started)
                    dagster.wait(base_id, TERMINAL)
                figures.append(
                    Figure(
                        "run launch → STARTED (median s)",
                        statistics.median(ours),
                        "Dagster launchRun → STARTED",
                        statistics.median(theirs),
                        "< 5 s",
                    )
                )

                few = definitions_seconds(env)
                add_jobs(home, job_count - len(job_ids), int(me["id"]))
                many = definitions_seconds(env)
                figures.append(
                    Figure(
                        f"definitions load, {job_count:,} jobs (s)",
                        many,
                        f"the same, {len(job_ids)} jobs",
                        few,
                        "< 10 s",
                    )
                )
                base = p99_ms(client, "/api/users/me", auth)
                figures.append(
                    Figure(
                        f"GET /api/jobs p99, {job_count:,} jobs (ms)",
                        p99_ms(client, "/api/jobs?limit=50", auth),
                        "GET /api/users/me p99",
                        base,
                        "< 50 ms",
                    )
                )
                figures.append(
                    Figure(
                        "GET /api/dashboard p99, cached (ms)",
                        p99_ms(client, "/api/dashboard", auth),
                        "GET /api/users/me p99",
                        base,
                        "< 25 ms",
                    )
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def print_report(figures: list[Figure], console: Console) -> None:
    table = Table(title="Jobs through the API and Dagster (ratio = ours / baseline)")
    for column in ("hot path", "ours", "baseline", "", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("hot path", "baseline") else "right")
    for figure in figures:
        table.add_row(
            figure.path,
            f"{figure.ours:,.2f}",
            figure.baseline_name,
            f"{figure.baseline:,.2f}",
            f"{figure.ratio:.2f}",
            figure.target,
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--launches", type=int, default=5, help="jobs created and runs launched")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the store at the end")
    args = parser.parse_args()
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    print_report(run(args.launches, args.jobs), Console(width=130))


if __name__ == "__main__":
    main()
