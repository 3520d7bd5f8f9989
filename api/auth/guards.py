"""Guards: plain ``(connection, handler) -> None`` functions that raise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.auth.schemas import CurrentUser
from api.errors import AuthenticationFailed, PermissionDenied
from api.users.models import Role

GuardFn = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def current_user(connection: ASGIConnection[Any, Any, Any, Any]) -> CurrentUser:
    """The authenticated user of ``connection``.

    Raises:
        AuthenticationFailed: the connection carries no authenticated user.
    """
    user = connection.scope.get("user")
    if not isinstance(user, CurrentUser):
        raise AuthenticationFailed("Authentication required")
    return user


def requires_role(*roles: Role) -> GuardFn:
    """A guard admitting only users whose role is one of ``roles``."""
    allowed = frozenset(role.value for role in roles)

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if current_user(connection).role not in allowed:
            raise PermissionDenied("Your role does not allow this action")

    return guard


requires_admin = requires_role(Role.ADMIN)
requires_writer = requires_role(Role.ADMIN, Role.USER)
