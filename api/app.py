"""The Litestar application factory.

Run with ``uvicorn api.app:create_app --factory``.
"""

from __future__ import annotations

from datetime import timedelta

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.security.jwt import JWTAuth, Token

from api.auth.controllers import AuthController
from api.auth.schemas import CurrentUser
from api.auth.services import ALGORITHM, retrieve_current_user
from api.catalog.controllers import CatalogController
from api.dependencies import provide_db_session, provide_settings
from api.errors import EXCEPTION_HANDLERS
from api.health.controllers import HealthController
from headwater.settings import Settings, get_settings

API_VERSION = "0.1.0"
OPENAPI_PATH = "/schema"


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the API for ``settings`` (default: the process settings from the environment)."""
    settings = settings if settings is not None else get_settings()
    jwt_auth = JWTAuth[CurrentUser, Token](
        retrieve_user_handler=retrieve_current_user,
        token_secret=settings.jwt_secret(),
        algorithm=ALGORITHM,
        default_token_expiration=timedelta(minutes=settings.jwt_ttl_minutes),
        require_claims=["exp", "sub"],
        exclude=[f"^{OPENAPI_PATH}(/|$)"],
        description="Bearer token from POST /api/auth/login.",
    )
    return Litestar(
        route_handlers=[HealthController, AuthController, CatalogController],
        dependencies={
            "settings": Provide(provide_settings, sync_to_thread=False),
            "db_session": Provide(provide_db_session),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        on_app_init=[jwt_auth.on_app_init],
        openapi_config=OpenAPIConfig(
            title="Headwater API",
            version=API_VERSION,
            path=OPENAPI_PATH,
            use_handler_docstrings=True,
        ),
        state=State({"settings": settings}),
        debug=False,
    )
