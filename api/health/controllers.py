"""``GET /health``: unauthenticated liveness and dependency checks."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.openapi.datastructures import ResponseSpec

from api.health.schemas import HealthResponse
from api.health.services import health_report
from headwater.settings import Settings

BUSY_RETRY_AFTER_SECONDS = 5


class HealthController(Controller):
    path = "/health"
    tags = ("health",)

    @get(
        "/",
        operation_id="getHealth",
        summary="Health of the API and its dependencies",
        description="200 when every check is ok, 503 otherwise.",
        exclude_from_auth=True,
        security=[{}],
        sync_to_thread=True,
        responses={
            503: ResponseSpec(
                HealthResponse,
                description="At least one dependency is not ok",
                generate_examples=False,
            )
        },
    )
    def health(self, settings: Settings) -> Response[HealthResponse]:
        report = health_report(settings)
        if report.status == "ok":
            return Response(report, status_code=200)
        headers = {}
        if report.checks.warehouse.status == "busy":
            headers["Retry-After"] = str(BUSY_RETRY_AFTER_SECONDS)
        return Response(report, status_code=503, headers=headers)
