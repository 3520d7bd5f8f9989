"""``/api/auth``: log in for a bearer token."""

from __future__ import annotations

from litestar import Controller, post
from sqlalchemy.orm import Session

from api.auth import services
from api.auth.schemas import LoginRequest, LoginResponse
from api.openapi import error_responses
from headwater.settings import Settings


class AuthController(Controller):
    path = "/api/auth"
    tags = ("auth",)

    @post(
        "/login",
        operation_id="login",
        summary="Log in",
        description="Exchange email and password for a bearer token.",
        status_code=200,
        exclude_from_auth=True,
        security=[{}],
        sync_to_thread=True,
        responses=error_responses(400, 401, s401="Invalid email or password"),
    )
    def login(self, data: LoginRequest, db_session: Session, settings: Settings) -> LoginResponse:
        user = services.authenticate(db_session, data.email, data.password)
        return services.issue_token(settings, user)
