"""``/health`` (liveness) and ``/health/ready`` (dependencies), both unauthenticated."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Controller, Request, Response
from litestar.openapi.datastructures import ResponseSpec

from api.auth.guards import public
from api.db import Database
from api.health.schemas import CheckResult, LivenessResponse, ReadinessChecks, ReadinessResponse
from api.health.services import check_metadata_store, check_warehouse
from api.kv import KeyValueStore
from api.routing import get
from headwater.settings import Settings

PROBE_TIMEOUT_SECONDS = 5
RETRY_AFTER_SECONDS = 5


class HealthController(Controller):
    path = "/health"
    tags = ("health",)

    @get(
        "/",
        operation_id="getHealth",
        guards=[public],
        summary="Liveness",
        description="Answers at once and touches no dependency. `degraded` when the API knows "
        "Redis is down: it keeps serving, uncached and with limits kept in process.",
        exclude_from_auth=True,
        security=[{}],
    )
    async def health(self, request: Request[Any, Any, Any]) -> LivenessResponse:
        kv: KeyValueStore = request.app.state.kv
        redis = kv.redis_state
        return LivenessResponse(status="degraded" if redis == "down" else "ok", redis=redis)

    @get(
        "/ready",
        operation_id="getReadiness",
        guards=[public],
        summary="Readiness: metadata store, warehouse, Redis",
        description="200 when the API can serve (the metadata store answers); `degraded` when "
        "the warehouse or Redis is not ok. 503 when the metadata store is not usable. The "
        "DuckDB warehouse file is never opened.",
        exclude_from_auth=True,
        security=[{}],
        responses={
            503: ResponseSpec(
                ReadinessResponse,
                description="The metadata store is not usable",
                generate_examples=False,
            )
        },
    )
    async def ready(
        self, request: Request[Any, Any, Any], settings: Settings, database: Database
    ) -> Response[ReadinessResponse]:
        kv: KeyValueStore = request.app.state.kv
        try:
            with anyio.fail_after(PROBE_TIMEOUT_SECONDS):
                store = await database.run_sync(check_metadata_store, settings)
                warehouse = await database.run_sync(check_warehouse, settings)
        except TimeoutError:
            store = CheckResult("unreachable", "metadata store did not answer in time")
            warehouse = await anyio.to_thread.run_sync(check_warehouse, settings)
        if kv.redis_state == "not configured":
            redis = CheckResult("not configured", "Redis is not configured; caching in process")
        elif await kv.ping():
            redis = CheckResult("ok", "Redis answered PING")
        else:
            redis = CheckResult("down", "Redis did not answer; serving without it")
        checks = ReadinessChecks(metadata_store=store, warehouse=warehouse, redis=redis)
        optional_ok = warehouse.status == "ok" and redis.status in ("ok", "not configured")
        if store.status != "ok":
            report = ReadinessResponse(status="unavailable", checks=checks)
            return Response(
                report, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        return Response(
            ReadinessResponse(status="ok" if optional_ok else "degraded", checks=checks)
        )
