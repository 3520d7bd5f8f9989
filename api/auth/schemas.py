"""Wire types of the auth domain, and the authenticated user attached to each request."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class LoginRequest(msgspec.Struct, rename="camel"):
    """Credentials for ``POST /api/auth/login``."""

    email: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class LoginResponse(msgspec.Struct, rename="camel"):
    """A bearer token and how many seconds it stays valid."""

    access_token: str
    expires_in: int
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme, not a secret


class CurrentUser(msgspec.Struct, frozen=True):
    """The authenticated user of a request (``request.user``). Not a wire type."""

    id: int
    email: str
    role: str
