"""Wire types of the auth domain, and the authenticated user attached to each request."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.schemas import NO_NUL


class LoginRequest(msgspec.Struct, rename="camel"):
    """Credentials for ``POST /api/auth/login``."""

    email: Annotated[str, msgspec.Meta(min_length=1, max_length=320, pattern=NO_NUL)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class RefreshRequest(msgspec.Struct, rename="camel"):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class TokenUser(msgspec.Struct, rename="camel"):
    id: int
    email: str
    role: str
    name: str


class LoginResponse(msgspec.Struct, rename="camel"):
    """A short-lived access token, the refresh token that renews it, and who they are for."""

    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds the access token stays valid (at most 900)."""
    refresh_expires_in: int
    """Seconds the refresh token (and its login session) stays valid."""
    user: TokenUser
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme, not a secret


class CurrentUser(msgspec.Struct, frozen=True):
    """The authenticated user of a request (``request.user``), read fresh on each request."""

    id: int
    email: str
    name: str
    role: str
    session_id: str
    created_at: object = None
    """As the store returned it (a datetime, or SQLite's text): parsed only when shown."""
    last_login_at: object = None
