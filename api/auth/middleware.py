"""Bearer authentication on every request: the token, then the store's word on it.

Per request: the ``Authorization`` header must be ``Bearer <jwt>``; the JWT is
verified (signature and claims, remembered per token until it expires); then one
primary-key query reads the user and the login session. The token is refused
unless the user is active, its ``ver`` is the user's current token version and
its session is neither revoked nor expired: logout, a role change, deactivation
and a new password take effect on the very next request, from any process,
with or without Redis.

On the embedded SQLite store that query runs inline on a read-only connection
(a few microseconds; WAL readers never wait for writers), and its row is kept
until SQLite's ``data_version`` says another connection, of any process, has
committed since: then every kept row is read again. On other stores it runs in a
worker thread.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import text

from api.auth.schemas import CurrentUser
from api.auth.tokens import AccessTokenVerifier, Claims, InvalidToken, bearer_token
from api.db import Database
from api.errors import AuthenticationFailed, ServiceUnavailable
from headwater.db import as_utc, sqlite_path

INVALID_TOKEN = "Invalid or expired token"  # noqa: S105 - a message
STATE_QUERY = (
    "SELECT u.email, u.name, u.role, u.is_active, u.token_version, u.created_at,"
    " u.last_login_at, s.revoked_at, s.expires_at"
    " FROM users u JOIN auth_sessions s ON s.user_id = u.id"
    " WHERE u.id = :uid AND s.id = :sid"
)
SQLITE_BUSY_MS = 200
STATE_ROWS_KEPT = 10_000


def when(value: object) -> datetime | None:
    """A timestamp read from the store (SQLite gives text without a zone: it is UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return as_utc(value)
    return _parse_utc(str(value))


@lru_cache(maxsize=8192)
def _parse_utc(text: str) -> datetime:
    # The same few timestamps (session expiry, user creation, last login) come back on
    # every request of a user: parse each once.
    return as_utc(datetime.fromisoformat(text))


class Authenticator:
    """Turns an ``Authorization`` header into the :class:`CurrentUser`, or refuses it."""

    def __init__(self, secret: str, database: Database) -> None:
        self.verifier = AccessTokenVerifier(secret)
        self.database = database
        self._sqlite_file = sqlite_path(database.url)
        self._sqlite: sqlite3.Connection | None = None
        # Rows read from the SQLite store, valid while its data_version stays the same.
        self._rows: dict[tuple[int, str], tuple[Any, ...] | None] = {}
        self._data_version: object = None

    def _read_sqlite(self, path: Path, claims: Claims) -> tuple[Any, ...] | None:
        if self._sqlite is None:
            self._sqlite = sqlite3.connect(
                f"{path.as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=SQLITE_BUSY_MS / 1000,
            )
        # SQLite changes data_version whenever any other connection, of any process,
        # commits to the file: a logout, a role change or a deactivation anywhere is seen
        # on the next request, and until one happens the rows read before still hold.
        # (Expiry is checked against the clock on every request, cached row or not.)
        version = self._sqlite.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            self._rows.clear()
            self._data_version = version
        key = (claims.user_id, claims.session_id)
        try:
            return self._rows[key]
        except KeyError:
            pass
        row: tuple[Any, ...] | None = self._sqlite.execute(
            STATE_QUERY, {"uid": claims.user_id, "sid": claims.session_id}
        ).fetchone()
        if len(self._rows) >= STATE_ROWS_KEPT:
            self._rows.clear()
        self._rows[key] = row
        return row

    def _read_pooled(self, claims: Claims) -> tuple[Any, ...] | None:
        with self.database.engine.connect() as connection:
            row = connection.execute(
                text(STATE_QUERY), {"uid": claims.user_id, "sid": claims.session_id}
            ).first()
        return None if row is None else tuple(row)

    async def _state(self, claims: Claims) -> tuple[Any, ...] | None:
        if self._sqlite_file is not None:
            try:
                return self._read_sqlite(self._sqlite_file, claims)
            except sqlite3.Error:
                self.close()
        try:
            return await self.database.run_sync(self._read_pooled, claims)
        except ServiceUnavailable:
            raise
        except Exception as exc:
            raise ServiceUnavailable("The metadata store is not answering", retry_after=5) from exc

    async def authenticate(self, header: str | None, now: datetime | None = None) -> CurrentUser:
        """The user the header's access token stands for.

        Raises:
            AuthenticationFailed: no usable token, or the token no longer counts.
            ServiceUnavailable: the metadata store cannot be read.
        """
        try:
            claims = self.verifier.verify(bearer_token(header))
        except InvalidToken:
            raise AuthenticationFailed(INVALID_TOKEN) from None
        row = await self._state(claims)
        if row is None:
            raise AuthenticationFailed(INVALID_TOKEN)
        email, name, role, active, version, created, last_login, revoked, expires = row
        moment = now or datetime.now(UTC)
        session_expires = when(expires)
        if (
            not active
            or version != claims.version
            or revoked is not None
            or session_expires is None
            or session_expires <= moment
        ):
            raise AuthenticationFailed(INVALID_TOKEN)
        return CurrentUser(
            id=claims.user_id,
            email=email,
            name=name,
            role=role,
            session_id=claims.session_id,
            created_at=created,
            last_login_at=last_login,
        )

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
        self._rows.clear()
        self._data_version = None


def authorization_header(scope: Any) -> str | None:
    """The ``Authorization`` header, read straight from the scope (no header map built)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


def bearer_auth(public_paths: str) -> Callable[[ASGIApp], ASGIApp]:
    """Middleware factory: authenticate every HTTP request of a route not marked public.

    A route is public when its handler says ``exclude_from_auth=True`` or its path
    matches ``public_paths`` (the OpenAPI document, health, metrics). OPTIONS
    requests (CORS preflight) are not authenticated.
    """
    public = re.compile(public_paths)

    def middleware(app: ASGIApp) -> ASGIApp:
        async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
            if (
                scope["type"] == ScopeType.HTTP
                and scope["method"] != "OPTIONS"
                and not scope["route_handler"].opt.get("exclude_from_auth")
                and not public.match(scope["path"])
            ):
                authenticator: Authenticator = scope["app"].state.authenticator
                user = await authenticator.authenticate(authorization_header(scope))
                scope["user"] = user
                scope["auth"] = user.session_id
            await app(scope, receive, send)

        return authenticated

    return middleware
