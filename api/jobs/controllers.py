"""``/api/jobs`` and ``/api/runs``: jobs stored here, executed and recorded by Dagster.

Every role reads the jobs it may see; owners and admins change, run, retry and
cancel them. Nothing runs in this process: runs are launched through the Dagster
webserver, and the run-status sensor mirrors them into the ``runs`` table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request
from litestar.params import Parameter
from sqlalchemy.orm import Session

from api.auth.guards import current_user, requires_reader, requires_writer
from api.cache import cached_json
from api.db import Database
from api.errors import Conflict
from api.events.hub import EventHub
from api.http import actor_of
from api.jobs import dashboard, services
from api.jobs.dagster import Dagster
from api.jobs.schemas import (
    Dashboard,
    JobIn,
    JobOut,
    JobStatus,
    JobUpdate,
    LogLineOut,
    RunLaunched,
    RunLogs,
    RunOut,
)
from api.openapi import error_responses
from api.routing import delete, get, patch, post
from api.schemas import Page, bounded
from api.sources.schemas import SOURCE_NAME
from headwater.settings import Settings
from orchestration.models import FINISHED

MAX_PAGE_SIZE = 200
DASHBOARD_CACHE = "dashboard"
JobId = Annotated[int, bounded("Job id.")]
RunId = Annotated[
    str, Parameter(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
]
Sort = Literal[
    "name", "-name", "createdAt", "-createdAt", "updatedAt", "-updatedAt", "status", "-status"
]
CURSOR = r"^[0-9A-Za-z:_=-]*$"
Level = Literal["debug", "info", "warning", "error", "critical"]


async def _set_enabled(
    request: Request[Any, Any, Any],
    settings: Settings,
    database: Database,
    dagster: Dagster,
    job_id: int,
    enabled: bool,
) -> JobOut:
    user, actor = current_user(request), actor_of(request)
    changed = await database.run(
        lambda s: services.update_job(settings, s, user, actor, job_id, JobUpdate(enabled=enabled))
    )
    dagster.reload_soon()
    return changed


class JobsController(Controller):
    path = "/api/jobs"
    tags = ("jobs",)

    @get(
        "/",
        operation_id="listJobs",
        summary="List jobs",
        description="The jobs the caller may see (admins: all; others: their own and the "
        "shared ones), with their last run and next scheduled time.",
        guards=[requires_reader],
        responses=error_responses(400, 401, 503),
    )
    async def list_jobs(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Matches to skip.", minimum=0)] = 0,
        status: Annotated[JobStatus | None, Parameter(description="Last run's status.")] = None,
        owner_id: Annotated[int | None, bounded("Only this owner's jobs.", query="ownerId")] = None,
        source_id: Annotated[
            str | None,
            Parameter(query="sourceId", pattern=SOURCE_NAME, max_length=63, description="Source."),
        ] = None,
        enabled: Annotated[bool | None, Parameter(description="Enabled or not.")] = None,
        sort: Annotated[Sort, Parameter(description="Order; `-` for descending.")] = "name",
    ) -> Page[JobOut]:
        user = current_user(request)
        return await database.run(
            lambda s: services.list_jobs(
                s,
                user,
                limit=limit,
                offset=offset,
                status=status,
                owner_id=owner_id,
                source=source_id,
                enabled=enabled,
                sort=sort,
            )
        )

    @post(
        "/",
        operation_id="createJob",
        summary="Create a job",
        description="Loads a source (its tables, or one query) into a destination, then "
        "builds a dbt selection; Dagster shows it (and its schedule) within seconds.",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403, 409, 503),
    )
    async def create_job(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        dagster: Dagster,
        data: JobIn,
    ) -> JobOut:
        user, actor = current_user(request), actor_of(request)
        created = await database.run(lambda s: services.create_job(settings, s, user, actor, data))
        dagster.reload_soon()
        return created

    @get(
        "/{job_id:int}",
        operation_id="getJob",
        summary="Get a job",
        guards=[requires_reader],
        responses=error_responses(400, 401, 404, 503),
    )
    async def get_job(
        self, request: Request[Any, Any, Any], database: Database, job_id: JobId
    ) -> JobOut:
        user = current_user(request)
        return await database.run(lambda s: services.job_out(s, services.get_job(s, user, job_id)))

    @patch(
        "/{job_id:int}",
        operation_id="updateJob",
        summary="Change a job",
        description="Fields given replace the stored ones. The owner or an admin only.",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def update_job(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        dagster: Dagster,
        job_id: JobId,
        data: JobUpdate,
    ) -> JobOut:
        user, actor = current_user(request), actor_of(request)
        changed = await database.run(
            lambda s: services.update_job(settings, s, user, actor, job_id, data)
        )
        dagster.reload_soon()
        return changed

    @delete(
        "/{job_id:int}",
        operation_id="deleteJob",
        summary="Delete a job",
        description="A job with a run queued or in progress answers 409, unless "
        "`cancelRuns=true`: its runs are cancelled first. Dagster keeps their history.",
        guards=[requires_writer],
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def delete_job(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dagster: Dagster,
        job_id: JobId,
        cancel_runs: Annotated[bool, Parameter(query="cancelRuns")] = False,
    ) -> None:
        user, actor = current_user(request), actor_of(request)

        def active(session: Session) -> list[str]:
            services.writable_job(session, user, job_id)
            return services.active_runs(session, job_id)

        running = await database.run(active)
        if running and not cancel_runs:
            raise Conflict(
                f"Job {job_id} has {len(running)} run(s) queued or in progress",
                hint="wait for them, or delete with ?cancelRuns=true",
            )
        for run_id in running:
            await dagster.client.terminate(run_id)
        await database.run(lambda s: services.delete_job(s, user, actor, job_id))
        dagster.reload_soon()

    @post(
        "/{job_id:int}/enable",
        operation_id="enableJob",
        summary="Enable a job",
        description="Its schedule fires again.",
        guards=[requires_writer],
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 503),
    )
    async def enable_job(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        dagster: Dagster,
        job_id: JobId,
    ) -> JobOut:
        return await _set_enabled(request, settings, database, dagster, job_id, True)

    @post(
        "/{job_id:int}/disable",
        operation_id="disableJob",
        summary="Disable a job",
        description="Its schedule stops; it cannot be run until enabled again.",
        guards=[requires_writer],
        status_code=200,
        responses=error_responses(400, 401, 403, 404, 503),
    )
    async def disable_job(
        self,
        request: Request[Any, Any, Any],
        settings: Settings,
        database: Database,
        dagster: Dagster,
        job_id: JobId,
    ) -> JobOut:
        return await _set_enabled(request, settings, database, dagster, job_id, False)

    @post(
        "/{job_id:int}/run",
        operation_id="runJob",
        summary="Run a job now",
        description="Launched through Dagster; answers at once with the run id (follow it "
        "with `GET /api/runs/{runId}`). Two runs of one job never overlap: a second waits "
        "in Dagster's queue.",
        guards=[requires_writer],
        status_code=202,
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def run_job(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dagster: Dagster,
        events: EventHub,
        job_id: JobId,
    ) -> RunLaunched:
        user = current_user(request)
        job = await database.run(lambda s: services.writable_job(s, user, job_id))
        if not job.enabled:
            raise Conflict(f"Job {job_id} is disabled", hint="enable it first")
        run_id = await dagster.launch(job.id, job.owner_id)
        launched, event = await database.run(lambda s: services.record_launch(s, job.id, run_id))
        await events.announce([event])
        return RunLaunched(run_id=run_id, job_id=job.id, status=launched.status)

    @get(
        "/{job_id:int}/runs",
        operation_id="listJobRuns",
        summary="A job's runs",
        description="Newest first, as Dagster reported them.",
        guards=[requires_reader],
        responses=error_responses(400, 401, 404, 503),
    )
    async def job_runs(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        job_id: JobId,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = 50,
        offset: Annotated[int, bounded("Runs to skip.", minimum=0)] = 0,
    ) -> Page[RunOut]:
        user = current_user(request)
        return await database.run(
            lambda s: services.job_runs(s, user, job_id, limit=limit, offset=offset)
        )


class RunsController(Controller):
    path = "/api/runs"
    tags = ("jobs",)

    @get(
        "/{run_id:str}",
        operation_id="getRun",
        summary="Get a run",
        guards=[requires_reader],
        responses=error_responses(400, 401, 404, 503),
    )
    async def get_run(
        self, request: Request[Any, Any, Any], database: Database, run_id: RunId
    ) -> RunOut:
        user = current_user(request)
        return await database.run(lambda s: services.run_out(services.get_run(s, user, run_id)[0]))

    @get(
        "/{run_id:str}/logs",
        operation_id="getRunLogs",
        summary="A run's log",
        description="From Dagster's event log, oldest first, one page at a time: pass the "
        "returned `cursor` as `after` for the next page.",
        guards=[requires_reader],
        responses=error_responses(400, 401, 404, 503),
    )
    async def run_logs(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dagster: Dagster,
        run_id: RunId,
        after: Annotated[
            str | None, Parameter(max_length=200, pattern=r"^[0-9A-Za-z:_=-]*$")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000, description="Events per page.")] = 200,
        level: Annotated[Level | None, Parameter(description="This level and above.")] = None,
        step: Annotated[str | None, Parameter(max_length=300, description="One step.")] = None,
    ) -> RunLogs:
        user = current_user(request)
        await database.run(lambda s: services.get_run(s, user, run_id))
        lines, cursor, more = await dagster.client.logs(run_id, after, limit)
        return RunLogs(
            items=[
                LogLineOut(
                    at=line.at,
                    level=line.level,
                    step=line.step,
                    message=line.message,
                    event=line.kind,
                )
                for line in lines
                if line.at_least(level) and (step is None or line.step == step)
            ],
            cursor=cursor,
            has_more=more,
        )

    @post(
        "/{run_id:str}/retry",
        operation_id="retryRun",
        summary="Retry a run from its failed steps",
        description="Steps that succeeded are not run again.",
        guards=[requires_writer],
        status_code=202,
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def retry_run(
        self,
        request: Request[Any, Any, Any],
        database: Database,
        dagster: Dagster,
        events: EventHub,
        run_id: RunId,
    ) -> RunLaunched:
        user = current_user(request)

        def check(session: Session) -> tuple[int, str]:
            run, job = services.get_run(session, user, run_id)
            services.writable_job(session, user, job.id)
            return job.id, run.status

        job_id, status = await database.run(check)
        if status not in ("failed", "cancelled"):
            raise Conflict(f"Run {run_id} is {status}: only a failed or cancelled run is retried")
        new_id = await dagster.client.reexecute(run_id, from_failure=True)
        launched, event = await database.run(
            lambda s: services.record_launch(s, job_id, new_id, parent_run_id=run_id)
        )
        await events.announce([event])
        return RunLaunched(run_id=new_id, job_id=job_id, status=launched.status)

    @post(
        "/{run_id:str}/cancel",
        operation_id="cancelRun",
        summary="Cancel a run",
        guards=[requires_writer],
        status_code=202,
        responses=error_responses(400, 401, 403, 404, 409, 503),
    )
    async def cancel_run(
        self, request: Request[Any, Any, Any], database: Database, dagster: Dagster, run_id: RunId
    ) -> RunOut:
        user = current_user(request)

        def check(session: Session) -> RunOut:
            run, job = services.get_run(session, user, run_id)
            services.writable_job(session, user, job.id)
            return services.run_out(run)

        run = await database.run(check)
        if run.status in FINISHED:
            raise Conflict(f"Run {run_id} already finished ({run.status})")
        await dagster.client.terminate(run_id)
        return run


class DashboardController(Controller):
    path = "/api/dashboard"
    tags = ("jobs",)

    @get(
        "/",
        operation_id="getDashboard",
        summary="How the jobs are doing",
        description="Over the jobs the caller may see: jobs by status, success rate (24 h, "
        "7 d), runs and rows per day (14 days), average and p95 duration per job, recent "
        "runs, the next scheduled runs and the failing jobs. Cached until a job or a run "
        "changes; the `X-Cache` header says whether this answer came from the cache.",
        guards=[requires_reader],
        responses=error_responses(401, 503),
    )
    async def get_dashboard(self, request: Request[Any, Any, Any], database: Database) -> Dashboard:
        user = current_user(request)
        version = await database.run(dashboard.fingerprint)

        async def produce() -> Dashboard:
            return await database.run(lambda s: dashboard.dashboard(s, user))

        key = f"{dashboard.scope(user)}:{version}"
        return await cached_json(request, DASHBOARD_CACHE, produce, key=key)  # type: ignore[return-value]
