"""``/api/auth``: sign in, renew the access token, sign out."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request

from api.auth.guards import current_user, public, requires_reader
from api.auth.schemas import LoginRequest, LoginResponse, RefreshRequest
from api.auth.services import AuthService
from api.http import client_of
from api.openapi import error_responses
from api.routing import post


class AuthController(Controller):
    path = "/api/auth"
    tags = ("auth",)

    @post(
        "/login",
        operation_id="login",
        summary="Sign in",
        description="Exchange email and password for an access token (15 minutes at most) "
        "and a refresh token. Throttled per account and per client address (429).",
        status_code=200,
        exclude_from_auth=True,
        security=[{}],
        guards=[public],
        responses=error_responses(
            400, 401, 429, 503, s401="Invalid email or password", s503="Too many sign-ins at once"
        ),
    )
    async def login(
        self, request: Request[Any, Any, Any], data: LoginRequest, auth_service: AuthService
    ) -> LoginResponse:
        return await auth_service.login(data.email, data.password, client_of(request))

    @post(
        "/refresh",
        operation_id="refreshToken",
        summary="Renew the tokens",
        description="Uses up the refresh token and returns a new pair. Presenting a refresh "
        "token that was already used revokes its whole session.",
        status_code=200,
        exclude_from_auth=True,
        security=[{}],
        guards=[public],
        responses=error_responses(400, 401, s401="Invalid, used or expired refresh token"),
    )
    async def refresh(
        self, request: Request[Any, Any, Any], data: RefreshRequest, auth_service: AuthService
    ) -> LoginResponse:
        return await auth_service.refresh(data.refresh_token, client_of(request))

    @post(
        "/logout",
        operation_id="logout",
        summary="Sign out",
        description="Revokes this session: its access and refresh tokens stop working.",
        status_code=204,
        guards=[requires_reader],
        responses=error_responses(401),
    )
    async def logout(self, request: Request[Any, Any, Any], auth_service: AuthService) -> None:
        user = current_user(request)
        await auth_service.logout(user.id, user.session_id, client_of(request))
