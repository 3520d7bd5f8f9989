"""Prometheus metrics of the API, served at ``/metrics`` (outside ``/api``).

Requests are counted and timed per route template (``/api/users/{user_id:int}``,
never the raw path, so cardinality stays bounded), method and status. The
cache, the metadata store's connection pool, failed logins and the build are
exported too. Protect the endpoint with ``HEADWATER_METRICS_TOKEN`` (Prometheus
sends it as a bearer token) or keep it off the public network (README).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from litestar import Controller, Request, Response
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.errors import AuthenticationFailed, status_for
from api.routing import get
from headwater.db import get_engine
from headwater.errors import HeadwaterError

REQUESTS = Counter(
    "headwater_http_requests_total",
    "HTTP requests answered, per route template, method and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "headwater_http_request_duration_seconds",
    "Time to answer an HTTP request, per route template and method.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CACHE_REQUESTS = Counter(
    "headwater_cache_requests_total", "Response cache look-ups.", ["namespace", "result"]
)
LOGIN_FAILURES = Counter("headwater_login_failures_total", "Failed sign-in attempts.")
RATE_LIMITED = Counter(
    "headwater_rate_limited_total", "Requests refused by a rate limit.", ["limit"]
)
BUILD = Info("headwater_build", "Version of the running Headwater.")
try:
    BUILD.info({"version": version("headwater")})
except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
    BUILD.info({"version": "unknown"})


class PoolCollector(Collector):
    """Connections of the metadata store pool: in use, idle and overflow."""

    def __init__(self) -> None:
        self.urls: set[str] = set()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "headwater_db_pool_connections",
            "Metadata store connections by state.",
            labels=["state"],
        )
        in_use = idle = overflow = 0
        for url in self.urls:
            pool: Any = get_engine(url).pool
            if hasattr(pool, "checkedout"):
                in_use += pool.checkedout()
                idle += pool.checkedin()
                overflow += max(0, pool.overflow())
        family.add_metric(["in_use"], in_use)
        family.add_metric(["idle"], idle)
        family.add_metric(["overflow"], overflow)
        yield family


POOL = PoolCollector()
REGISTRY.register(POOL)


_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _series(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The latency and count series of one (method, route, status), looked up once."""
    key = (method, route, status)
    series = _children.get(key)
    if series is None:
        series = (LATENCY.labels(method, route), REQUESTS.labels(method, route, str(status)))
        _children[key] = series
    return series


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    """Count and time each HTTP request under its route template."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith("/socket.io"):
            # Socket.IO's long polls last up to ~25 s by design: not API latency.
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        except Exception as exc:
            # Raised past us (the auth middleware's 401): answered further out, with this status.
            status = status_of(exc)
            raise
        finally:
            latency, count = _series(scope["method"], scope.get("path_template", "?"), status)
            latency.observe(time.perf_counter() - started)
            count.inc()

    return middleware


def status_of(exc: Exception) -> int:
    """The status the exception handlers will answer ``exc`` with."""
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, HeadwaterError):
        return status_for(exc)
    if isinstance(exc, OperationalError | PoolTimeout):
        return 503
    return 500


class MetricsController(Controller):
    path = "/metrics"
    tags = ("metrics",)
    include_in_schema = True

    @get(
        "/",
        operation_id="getMetrics",
        summary="Prometheus metrics",
        description="Text exposition format. Requires `HEADWATER_METRICS_TOKEN` as a bearer "
        "token when that is set.",
        exclude_from_auth=True,
        security=[{}],
        media_type=CONTENT_TYPE_LATEST,
        responses={401: ResponseSpec(None, description="HEADWATER_METRICS_TOKEN required")},
    )
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        token = request.app.state.settings.metrics_token
        if token is not None:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {token.get_secret_value()}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise AuthenticationFailed("A valid metrics token is required")
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
