"""Passwords (argon2id), access tokens (JWT HS256) and the login rule."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar.concurrency import sync_to_thread
from litestar.connection import ASGIConnection
from litestar.security.jwt import Token
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth.schemas import CurrentUser, LoginResponse
from api.errors import AuthenticationFailed
from api.users.models import User
from headwater.db import session_scope
from headwater.settings import Settings

ALGORITHM = "HS256"
INVALID_CREDENTIALS = "Invalid email or password"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; two calls give different hashes)."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash``; False (never an error) on a bad hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError, ValueError, TypeError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def create_access_token(
    *,
    user_id: int,
    role: str,
    secret: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> str:
    """A signed JWT: ``sub`` is the user id, ``role`` the user's role, ``exp`` now + ``ttl``."""
    issued_at = now if now is not None else datetime.now(UTC)
    payload = {
        "sub": str(user_id),
        "role": role,
        "iat": int(issued_at.timestamp()),
        "exp": int((issued_at + ttl).timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def authenticate(session: Session, email: str, password: str) -> User:
    """The active user with these credentials.

    Unknown email, wrong password and inactive account all raise the same error,
    after the same amount of hashing work, so a caller cannot tell them apart.

    Raises:
        AuthenticationFailed: the credentials do not identify an active user.
    """
    # Imported here: api.users.services imports this module for hash_password.
    from api.users.services import normalize_email

    user = session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        verify_password(password, _dummy_hash())
        raise AuthenticationFailed(INVALID_CREDENTIALS)
    if not verify_password(password, user.password_hash) or not user.is_active:
        raise AuthenticationFailed(INVALID_CREDENTIALS)
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def issue_token(settings: Settings, user: User) -> LoginResponse:
    """The login response for ``user``: a token valid for ``settings.jwt_ttl_minutes``."""
    ttl = timedelta(minutes=settings.jwt_ttl_minutes)
    token = create_access_token(
        user_id=user.id, role=user.role, secret=settings.jwt_secret(), ttl=ttl
    )
    return LoginResponse(access_token=token, expires_in=int(ttl.total_seconds()))


def load_active_user(metadata_url: str, subject: str) -> CurrentUser | None:
    """The user a token's ``sub`` names, if it still exists and is active."""
    try:
        user_id = int(subject)
    except ValueError:
        return None
    with session_scope(metadata_url) as session:
        user = session.get(User, user_id)
        if user is None or not user.is_active:
            return None
        return CurrentUser(id=user.id, email=user.email, role=user.role)


async def retrieve_current_user(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> CurrentUser | None:
    """JWT middleware hook: a deactivated or deleted user's tokens stop working at once."""
    settings: Settings = connection.app.state.settings
    return await sync_to_thread(load_active_user, settings.metadata_url, token.sub)
