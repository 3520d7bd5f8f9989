"""Guards: plain ``async (connection, handler) -> None`` functions that raise.

Async because Litestar runs a synchronous guard in a worker thread, which would
cost a thread hop on every request; they never await anything.

Every route under ``/api`` declares exactly one of these (a test walks the route
table): :func:`public` for the few routes anyone may call, or a role guard.
Ownership is a service rule, not a guard: another user's object answers 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.auth.schemas import CurrentUser
from api.errors import AuthenticationFailed, PermissionDenied
from api.users.models import Role

GuardFn = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> CurrentUser:
    """The authenticated user of ``connection``.

    Raises:
        AuthenticationFailed: the connection carries no authenticated user.
    """
    user = connection.scope.get("user")
    if not isinstance(user, CurrentUser):
        raise AuthenticationFailed("Authentication required")
    return user


async def public(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Anyone, signed in or not (login, refresh, health). Declared so that it is deliberate."""


def requires_role(*roles: Role) -> GuardFn:
    """A guard admitting only signed-in users whose role is one of ``roles``."""
    allowed = frozenset(role.value for role in roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if current_user(connection).role not in allowed:
            raise PermissionDenied("Your role does not allow this action")

    guard.__name__ = "requires_" + "_or_".join(sorted(allowed))
    return guard


requires_admin = requires_role(Role.ADMIN)
requires_writer = requires_role(Role.ADMIN, Role.USER)
requires_reader = requires_role(Role.ADMIN, Role.USER, Role.VIEWER)
