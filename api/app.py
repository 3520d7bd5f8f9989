"""The Litestar application factory.

Run with ``uvicorn api.app:create_app --factory`` (``headwater api`` does).

Every handler is ``async``: work on the metadata store runs in a bounded set
of worker threads (``api/db.py``), password hashing in another (``api/auth/
passwords.py``), and nothing else blocks the event loop, so ``/health`` answers
at once whatever the load.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide

import api.queries.models  # noqa: F401 - every table the API writes is mapped
import catalog.models  # noqa: F401 - every table the API reads is mapped
from api.audit.controllers import AuditController
from api.auth.controllers import AuthController
from api.auth.middleware import Authenticator, bearer_auth
from api.auth.passwords import HashingPool
from api.auth.services import AuthService
from api.catalog.controllers import CatalogController
from api.catalog.lineage import LineageController, SchemaChangesController
from api.db import Database
from api.docs import OPENAPI_PATH, assets_router, openapi_config, tighten_schema
from api.errors import EXCEPTION_HANDLERS
from api.events.hub import EventHub
from api.events.live import SocketIO, live_socket, redact_tokens_in_logs
from api.events.watcher import RunWatcher
from api.health.controllers import HealthController
from api.health.services import ReadinessProbe
from api.http import add_response_headers, allowed_methods
from api.jobs.controllers import DashboardController, JobsController, RunsController
from api.jobs.dagster import Dagster
from api.kv import KeyValueStore
from api.limits import request_limits
from api.metrics import POOL, MetricsController, metrics_middleware
from api.notifications.controllers import (
    AlertRulesController,
    AlertsController,
    ChannelsController,
    NotificationsController,
)
from api.notifications.monitor import Monitor
from api.queries.controllers import QueriesController
from api.queries.services import History, QueryRunner
from api.sources.controllers import ConnectionTests, DestinationsController, SourcesController
from api.users.controllers import UsersController
from headwater.settings import Settings, get_settings

try:
    API_VERSION = version("headwater")
except PackageNotFoundError:  # pragma: no cover - a tree that is not installed
    API_VERSION = "0.0.0"

PUBLIC_PATHS = f"^(?:{OPENAPI_PATH}|/health|/metrics)(?:/|$)"


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the API for ``settings`` (default: the process settings from the environment)."""
    settings = settings if settings is not None else get_settings()
    database = Database(settings.metadata_url)
    kv = KeyValueStore(settings.redis_url)
    hashing = HashingPool()
    authenticator = Authenticator(settings.jwt_secret(), database)
    auth_service = AuthService(settings, database, kv, hashing)
    dagster = Dagster(settings)
    query_history = History(database)
    events = EventHub(database, settings.redis_url)
    watcher = RunWatcher(dagster.client, database, events)
    socket_io = SocketIO(events, authenticator, settings.cors_origins)
    monitor = Monitor(settings, database, events)

    async def start() -> None:
        settings.secure_home()
        redact_tokens_in_logs()
        POOL.urls.add(settings.metadata_url)
        await kv.start()
        await query_history.start()
        await events.start()
        await watcher.start()
        await socket_io.start()
        await monitor.start()

    async def stop() -> None:
        await monitor.stop()
        await socket_io.stop()
        await watcher.stop()
        await events.stop()
        await query_history.stop()
        await dagster.close()
        await kv.stop()
        authenticator.close()

    query_runner = QueryRunner()

    def constant(value: object) -> Provide:
        return Provide(lambda: value, sync_to_thread=False, use_cache=True)

    cors = (
        CORSConfig(
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After", "X-Cache"],
        )
        if settings.cors_origins
        else None
    )
    app = Litestar(
        route_handlers=[
            HealthController,
            MetricsController,
            AuthController,
            UsersController,
            SourcesController,
            DestinationsController,
            JobsController,
            RunsController,
            DashboardController,
            CatalogController,
            LineageController,
            SchemaChangesController,
            QueriesController,
            AuditController,
            NotificationsController,
            ChannelsController,
            AlertRulesController,
            AlertsController,
            live_socket,
            socket_io.mount(),
            assets_router(),
        ],
        dependencies={
            "settings": constant(settings),
            "database": constant(database),
            "hashing": constant(hashing),
            "auth_service": constant(auth_service),
            "connection_tests": constant(ConnectionTests()),
            "dagster": constant(dagster),
            "events": constant(events),
            "query_runner": constant(query_runner),
        },
        middleware=[
            metrics_middleware,
            request_limits(settings.max_body_bytes),
            bearer_auth(PUBLIC_PATHS),
        ],
        before_send=[add_response_headers],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        on_startup=[start],
        on_shutdown=[stop],
        openapi_config=openapi_config("Headwater API", API_VERSION),
        cors_config=cors,
        request_max_body_size=settings.max_body_bytes,
        state=State(
            {
                "settings": settings,
                "database": database,
                "query_runner": query_runner,
                "kv": kv,
                "authenticator": authenticator,
                "readiness": ReadinessProbe(settings, kv),
                "query_history": query_history,
                "events": events,
            }
        ),
        debug=False,
    )
    app.state.allowed_methods = allowed_methods(app)
    tighten_schema(app)
    return app
