"""``/health`` (liveness) and ``/health/ready`` (dependencies), both unauthenticated."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response
from litestar.openapi.datastructures import ResponseSpec

from api.auth.guards import public
from api.health.schemas import LivenessResponse, ReadinessResponse
from api.health.services import ReadinessProbe
from api.kv import KeyValueStore
from api.routing import get

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
    async def ready(self, request: Request[Any, Any, Any]) -> Response[ReadinessResponse]:
        probe: ReadinessProbe = request.app.state.readiness
        report = await probe.report()
        if report.status == "unavailable":
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return Response(report, status_code=503, headers=headers)
        return Response(report)
