from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

import pytest
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from api.auth.guards import (
    current_user,
    public,
    requires_admin,
    requires_reader,
    requires_role,
    requires_writer,
)
from api.auth.schemas import CurrentUser
from api.errors import AuthenticationFailed, PermissionDenied
from api.users.models import Role

pytestmark = pytest.mark.unit

HANDLER = cast(BaseRouteHandler, None)


def run(guard_call: Coroutine[Any, Any, None]) -> None:
    asyncio.run(guard_call)


class _Connection:
    def __init__(self, user: CurrentUser | None) -> None:
        self.scope: dict[str, Any] = {"type": "http"}
        if user is not None:
            self.scope["user"] = user


def _conn(role: str | None) -> ASGIConnection[Any, Any, Any, Any]:
    user = (
        None
        if role is None
        else CurrentUser(id=1, email="a@b.co", name="", role=role, session_id="s")
    )
    return cast(ASGIConnection[Any, Any, Any, Any], _Connection(user))


def test_admin_guard_admits_only_admins() -> None:
    run(requires_admin(_conn("admin"), HANDLER))
    for role in ("user", "viewer"):
        with pytest.raises(PermissionDenied):
            run(requires_admin(_conn(role), HANDLER))


def test_writer_guard_refuses_viewers() -> None:
    run(requires_writer(_conn("admin"), HANDLER))
    run(requires_writer(_conn("user"), HANDLER))
    with pytest.raises(PermissionDenied):
        run(requires_writer(_conn("viewer"), HANDLER))


def test_guards_refuse_anonymous_connections() -> None:
    with pytest.raises(AuthenticationFailed):
        run(requires_role(Role.VIEWER)(_conn(None), HANDLER))
    with pytest.raises(AuthenticationFailed):
        current_user(_conn(None))


def test_reader_guard_admits_every_role_but_not_anonymous() -> None:
    for role in ("admin", "user", "viewer"):
        run(requires_reader(_conn(role), HANDLER))
    with pytest.raises(AuthenticationFailed):
        run(requires_reader(_conn(None), HANDLER))
    with pytest.raises(PermissionDenied):
        run(requires_reader(_conn("superuser"), HANDLER))


def test_public_guard_admits_anyone() -> None:
    run(public(_conn(None), HANDLER))
    run(public(_conn("viewer"), HANDLER))
