"""A thin client of the Dagster webserver's GraphQL API: what the REST API needs to
reload the code location and to launch, re-execute, cancel and read runs.

Every failure is a DagsterUnavailable (the webserver cannot be reached or answered
an error) or a RunNotFound; the caller never sees GraphQL's shapes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from headwater.errors import HeadwaterError

log = logging.getLogger(__name__)

REPOSITORY = "__repository__"
"""The repository name Dagster gives a ``Definitions`` object."""
TIMEOUT_SECONDS = 30.0
TERMINATE_WAIT_SECONDS = 5.0

DAGSTER_STATUS = {
    "QUEUED": "queued",
    "NOT_STARTED": "queued",
    "MANAGED": "queued",
    "STARTING": "running",
    "STARTED": "running",
    "CANCELING": "running",
    "SUCCESS": "success",
    "FAILURE": "failed",
    "CANCELED": "cancelled",
}
"""Dagster's run statuses, as Headwater names them."""


class DagsterUnavailable(HeadwaterError):
    """The Dagster webserver cannot be reached, or refused what was asked.
    ``unreachable``: nothing answered at its address; ``timed_out``: the request
    reached it, the answer did not come in time."""

    unreachable = False
    timed_out = False


class RunNotFound(HeadwaterError):
    """No run has this id."""


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    job_name: str
    status: str
    """Headwater's name: queued, running, success, failed, cancelled."""
    tags: dict[str, str]
    started_at: datetime | None
    finished_at: datetime | None
    parent_run_id: str | None
    created_at: datetime | None = None
    updated: float = 0.0
    """When Dagster last changed the run (a timestamp)."""


LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str
    step: str | None
    message: str
    kind: str

    def at_least(self, level: str | None) -> bool:
        """Whether this line is of ``level`` or above (a level Dagster made up: kept)."""
        if level is None or self.level not in LEVELS:
            return True
        return LEVELS.index(self.level) >= LEVELS.index(level)


RUN_FIELDS = """
runId jobName status startTime endTime creationTime updateTime parentRunId
tags { key value }
"""


def _time(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _run(node: dict[str, Any]) -> RunInfo:
    return RunInfo(
        run_id=node["runId"],
        job_name=node["jobName"],
        status=DAGSTER_STATUS.get(node["status"], node["status"].lower()),
        tags={tag["key"]: tag["value"] for tag in node.get("tags") or []},
        started_at=_time(node.get("startTime")),
        finished_at=_time(node.get("endTime")),
        parent_run_id=node.get("parentRunId"),
        created_at=_time(node.get("creationTime")),
        updated=float(node.get("updateTime") or 0.0),
    )


def _failure(result: dict[str, Any]) -> str:
    """The message of a GraphQL error union member."""
    if result.get("message"):
        return str(result["message"]).splitlines()[0][:500]
    errors = result.get("errors") or []
    if errors:
        return "; ".join(str(e.get("message", "")) for e in errors)[:500]
    return str(result.get("__typename", "unknown error"))


class DagsterClient:
    """One webserver, one code location; an ``httpx.AsyncClient`` kept open."""

    def __init__(self, url: str, location: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.location = location
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def _query(
        self, query: str, variables: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        started = time.perf_counter()
        operation = query.split("{", 1)[-1].split("(", 1)[0].strip()
        options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            response = await self._http.post(
                "/graphql", json={"query": query, "variables": variables or {}}, **options
            )
        except httpx.HTTPError as exc:
            error = DagsterUnavailable(
                f"Dagster at {self.url} cannot be reached ({type(exc).__name__})",
                hint="is the Dagster webserver up? (`headwater up` starts it)",
            )
            error.unreachable = isinstance(exc, httpx.ConnectError)
            error.timed_out = isinstance(exc, httpx.ReadTimeout)
            raise error from None
        finally:
            log.debug("dagster %s: %.3f s", operation, time.perf_counter() - started)
        if response.status_code != 200:
            raise DagsterUnavailable(f"Dagster answered HTTP {response.status_code}")
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise DagsterUnavailable(f"Dagster refused the request: {_failure(body)}")
        data: dict[str, Any] = body["data"]
        return data

    async def reload(self) -> None:
        """Reload the code location (jobs changed); waits until it has loaded."""
        data = await self._query(
            """mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
                __typename
                ... on WorkspaceLocationEntry { locationOrLoadError { __typename
                    ... on PythonError { message } } }
                ... on PythonError { message }
                ... on RepositoryLocationNotFound { message }
                ... on UnauthorizedError { message } } }""",
            {"name": self.location},
        )
        result = data["reloadRepositoryLocation"]
        if result["__typename"] != "WorkspaceLocationEntry":
            raise DagsterUnavailable(f"reloading the definitions failed: {_failure(result)}")
        loaded = result.get("locationOrLoadError") or {}
        if loaded.get("__typename") == "PythonError":
            raise DagsterUnavailable(f"the definitions failed to load: {_failure(loaded)}")

    async def has_job(self, job_name: str) -> bool:
        data = await self._query(
            """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) {
                __typename } }""",
            {"selector": self._selector(job_name)},
        )
        return bool(data["pipelineOrError"]["__typename"] == "Pipeline")

    def _selector(self, job_name: str) -> dict[str, str]:
        return {
            "repositoryLocationName": self.location,
            "repositoryName": REPOSITORY,
            "pipelineName": job_name,
        }

    async def launch(self, job_name: str, tags: dict[str, str]) -> str:
        """Launch ``job_name``; its run id."""
        data = await self._query(
            """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on PythonError { message }
                ... on RunConfigValidationInvalid { errors { message } }
                ... on PipelineNotFoundError { message }
                ... on InvalidSubsetError { message }
                ... on RunConflict { message }
                ... on UnauthorizedError { message }
                ... on PresetNotFoundError { message }
                ... on ConflictingExecutionParamsError { message }
                ... on NoModeProvidedError { message } } }""",
            {
                "params": {
                    "selector": self._selector(job_name),
                    "executionMetadata": {
                        "tags": [{"key": k, "value": v} for k, v in tags.items()]
                    },
                }
            },
        )
        result = data["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise DagsterUnavailable(f"Dagster did not launch {job_name}: {_failure(result)}")
        run_id: str = result["run"]["runId"]
        return run_id

    async def reexecute(self, run_id: str, *, from_failure: bool = True) -> str:
        """Run ``run_id`` again (from its failed steps); the new run's id."""
        data = await self._query(
            """mutation($params: ReexecutionParams!) {
                launchRunReexecution(reexecutionParams: $params) {
                __typename
                ... on LaunchRunSuccess { run { runId } }
                ... on PythonError { message }
                ... on RunConfigValidationInvalid { errors { message } }
                ... on PipelineNotFoundError { message }
                ... on InvalidSubsetError { message }
                ... on RunConflict { message }
                ... on UnauthorizedError { message } } }""",
            {
                "params": {
                    "parentRunId": run_id,
                    "strategy": "FROM_FAILURE" if from_failure else "ALL_STEPS",
                }
            },
        )
        result = data["launchRunReexecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise DagsterUnavailable(f"Dagster did not re-execute {run_id}: {_failure(result)}")
        new_id: str = result["run"]["runId"]
        return new_id

    async def terminate(self, run_id: str) -> None:
        """Ask Dagster to cancel run ``run_id``.

        Dagster answers once the run worker acknowledged; a worker busy in a long call
        may take a while, so past TERMINATE_WAIT_SECONDS the request counts as made
        (Dagster keeps processing it, and the run's status says when it stopped).
        """
        try:
            data = await self._query(
                """mutation($id: String!) { terminateRun(runId: $id) {
                __typename
                ... on TerminateRunFailure { message }
                ... on RunNotFoundError { message }
                ... on UnauthorizedError { message }
                ... on PythonError { message } } }""",
                {"id": run_id},
                timeout=TERMINATE_WAIT_SECONDS,
            )
        except DagsterUnavailable as exc:
            if not exc.timed_out:
                raise
            log.info("cancelling run %s: Dagster has not acknowledged yet", run_id)
            return
        result = data["terminateRun"]
        if result["__typename"] == "RunNotFoundError":
            raise RunNotFound(f"no run {run_id}")
        if result["__typename"] != "TerminateRunSuccess":
            raise DagsterUnavailable(f"Dagster did not cancel {run_id}: {_failure(result)}")

    async def run(self, run_id: str) -> RunInfo:
        data = await self._query(
            f"""query($id: ID!) {{ runOrError(runId: $id) {{
                __typename ... on Run {{ {RUN_FIELDS} }}
                ... on RunNotFoundError {{ message }} ... on PythonError {{ message }} }} }}""",
            {"id": run_id},
        )
        result = data["runOrError"]
        if result["__typename"] == "RunNotFoundError":
            raise RunNotFound(f"no run {run_id}")
        if result["__typename"] != "Run":
            raise DagsterUnavailable(f"Dagster could not read run {run_id}: {_failure(result)}")
        return _run(result)

    async def runs(self, tags: dict[str, str], limit: int = 50) -> list[RunInfo]:
        """The newest runs carrying every one of ``tags``."""
        data = await self._query(
            f"""query($filter: RunsFilter, $limit: Int) {{
                runsOrError(filter: $filter, limit: $limit) {{
                __typename ... on Runs {{ results {{ {RUN_FIELDS} }} }}
                ... on InvalidPipelineRunsFilterError {{ message }}
                ... on PythonError {{ message }} }} }}""",
            {
                "filter": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
                "limit": limit,
            },
        )
        result = data["runsOrError"]
        if result["__typename"] != "Runs":
            raise DagsterUnavailable(f"Dagster could not list runs: {_failure(result)}")
        return [_run(node) for node in result["results"]]

    async def runs_updated_after(self, since: float, limit: int = 100) -> list[RunInfo]:
        """The runs Dagster changed after timestamp ``since``."""
        data = await self._query(
            f"""query($filter: RunsFilter, $limit: Int) {{
                runsOrError(filter: $filter, limit: $limit) {{
                __typename ... on Runs {{ results {{ {RUN_FIELDS} }} }}
                ... on InvalidPipelineRunsFilterError {{ message }}
                ... on PythonError {{ message }} }} }}""",
            {"filter": {"updatedAfter": since}, "limit": limit},
        )
        result = data["runsOrError"]
        if result["__typename"] != "Runs":
            raise DagsterUnavailable(f"Dagster could not list runs: {_failure(result)}")
        return [_run(node) for node in result["results"]]

    async def logs(
        self, run_id: str, after: str | None = None, limit: int = 200
    ) -> tuple[list[LogLine], str | None, bool]:
        """(log lines, the cursor after them, whether more follow) of run ``run_id``."""
        data = await self._query(
            """query($id: ID!, $after: String, $limit: Int) {
                logsForRun(runId: $id, afterCursor: $after, limit: $limit) {
                __typename
                ... on EventConnection { cursor hasMore events { __typename
                    ... on MessageEvent { message timestamp level stepKey } } }
                ... on RunNotFoundError { message }
                ... on PythonError { message } } }""",
            {"id": run_id, "after": after, "limit": limit},
        )
        result = data["logsForRun"]
        if result["__typename"] == "RunNotFoundError":
            raise RunNotFound(f"no run {run_id}")
        if result["__typename"] != "EventConnection":
            raise DagsterUnavailable(f"Dagster could not read the logs: {_failure(result)}")
        lines = [
            LogLine(
                at=datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC),
                level=str(event["level"]).lower(),
                step=event.get("stepKey"),
                message=str(event.get("message") or ""),
                kind=event["__typename"],
            )
            for event in result["events"]
            if event.get("timestamp")
        ]
        return lines, result.get("cursor"), bool(result.get("hasMore"))
