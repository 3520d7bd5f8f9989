"""Sign-in, token rotation and sign-out.

A login creates an :class:`AuthSession` and issues two tokens: an access token
(at most 15 minutes) and a refresh token. Refreshing rotates the refresh token:
the session remembers the one id that may be used next, so presenting an older
one is a replay and revokes the whole session (its "family"). Logging out
revokes the session. See ``api/auth/middleware.py`` for the per-request check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from api.audit.services import Actor, record
from api.auth import tokens
from api.auth.models import AuthSession
from api.auth.passwords import HashingPool, dummy_hash, hash_password, verify_password
from api.auth.passwords import password_needs_rehash as needs_rehash
from api.auth.schemas import LoginResponse, TokenUser
from api.db import Database
from api.errors import AuthenticationFailed, TooManyRequests
from api.kv import KeyValueStore
from api.metrics import LOGIN_FAILURES, RATE_LIMITED
from api.users.models import User
from api.users.services import find_by_email, normalize_email
from headwater.db import as_utc, utcnow
from headwater.settings import Settings

logger = logging.getLogger("headwater.api.auth")

INVALID_CREDENTIALS = "Invalid email or password"
INVALID_REFRESH = "Invalid or expired refresh token"
THROTTLED = "Too many sign-in attempts; wait before trying again"


@dataclass(frozen=True)
class Client:
    address: str | None
    user_agent: str | None
    request_id: str | None


@dataclass(frozen=True)
class _Candidate:
    user_id: int | None
    password_hash: str
    active: bool


def _token_pair(settings: Settings, user: User, session: AuthSession) -> LoginResponse:
    secret = settings.jwt_secret()
    access_ttl = settings.jwt_ttl_minutes * 60
    refresh_ttl = max(1, int((as_utc(session.expires_at) - datetime.now(UTC)).total_seconds()))
    access = tokens.encode(
        secret=secret,
        token_type="access",  # noqa: S106 - a token kind
        user_id=user.id,
        session_id=session.id,
        version=user.token_version,
        ttl_seconds=access_ttl,
    )
    refresh = tokens.encode(
        secret=secret,
        token_type="refresh",  # noqa: S106 - a token kind
        user_id=user.id,
        session_id=session.id,
        version=user.token_version,
        ttl_seconds=refresh_ttl,
        token_id=session.refresh_jti,
    )
    return LoginResponse(
        access_token=access,
        refresh_token=refresh,
        expires_in=access_ttl,
        refresh_expires_in=refresh_ttl,
        user=TokenUser(id=user.id, email=user.email, role=user.role, name=user.name),
    )


class AuthService:
    """Login, refresh and logout over the store, the hashing pool and the throttle counters."""

    def __init__(
        self, settings: Settings, database: Database, kv: KeyValueStore, hashing: HashingPool
    ) -> None:
        self.settings = settings
        self.database = database
        self.kv = kv
        self.hashing = hashing

    async def _throttle(self, email: str, client: Client) -> str:
        """Count the attempt; 429 when the address or the account is over its limit.

        Attempts are counted before the password is checked, so guesses sent all at
        once cannot slip past the limit while the first ones are being verified. A
        successful sign-in resets the account's count: in effect it counts failures.
        """
        window = self.settings.login_window_seconds
        count, left = await self.kv.hit(f"login:address:{client.address}", window)
        if count > self.settings.login_attempts_per_address:
            RATE_LIMITED.labels("login_address").inc()
            raise TooManyRequests(THROTTLED, retry_after=int(left) + 1)
        return await self._count_account_attempt(email)

    async def _count_account_attempt(self, email: str) -> str:
        account_key = f"login:account:{normalize_email(email)}"
        count, left = await self.kv.hit(account_key, self.settings.login_window_seconds)
        if count > self.settings.login_failures_per_account:
            RATE_LIMITED.labels("login_account").inc()
            raise TooManyRequests(THROTTLED, retry_after=int(left) + 1)
        return account_key

    async def login(self, email: str, password: str, client: Client) -> LoginResponse:
        """Tokens for the active user with these credentials.

        Unknown email, wrong password and inactive account answer the same, after
        the same hashing work, so that a caller cannot tell them apart. Every
        attempt counts against the address and the account (whether it exists or
        not) before the password is checked; a success clears the account's count.

        Raises:
            TooManyRequests: the address or the account is throttled.
            AuthenticationFailed: the credentials do not identify an active user.
            ServiceUnavailable: too many hashes are queued.
        """
        normalized = normalize_email(email)
        account_key = await self._throttle(normalized, client)

        def find(session: Session) -> _Candidate:
            user = find_by_email(session, normalized)
            if user is None:
                return _Candidate(None, dummy_hash(), False)
            return _Candidate(user.id, user.password_hash, user.is_active)

        candidate = await self.database.run(find)
        matches = await self.hashing.run(verify_password, password, candidate.password_hash)
        if not (matches and candidate.active and candidate.user_id is not None):
            LOGIN_FAILURES.inc()
            raise AuthenticationFailed(INVALID_CREDENTIALS)
        user_id = candidate.user_id
        new_hash = None
        if needs_rehash(candidate.password_hash):
            new_hash = await self.hashing.run(hash_password, password)

        def start_session(session: Session) -> LoginResponse:
            user = session.get(User, user_id)
            # The password may have changed (and old tokens ended) while this login
            # waited for its hash check: what was verified must still be the password.
            if user is None or not user.is_active or user.password_hash != candidate.password_hash:
                raise AuthenticationFailed(INVALID_CREDENTIALS)
            if new_hash is not None:
                user.password_hash = new_hash
            now = utcnow()
            user.last_login_at = now
            login = AuthSession(
                id=tokens.new_id(),
                user_id=user.id,
                refresh_jti=tokens.new_id(),
                created_at=now,
                expires_at=now + timedelta(days=self.settings.refresh_ttl_days),
                client_address=(client.address or "")[:64] or None,
                user_agent=(client.user_agent or "")[:256] or None,
            )
            session.add(login)
            actor = Actor(user.id, user.email, client.address, client.request_id)
            record(session, actor, "auth.login", "session", login.id)
            session.flush()
            return _token_pair(self.settings, user, login)

        response = await self.database.run(start_session)
        await self.kv.reset(account_key)
        return response

    async def confirm_password(self, user_id: int, email: str, password: str) -> str:
        """Check a signed-in user's current password (before changing it); its hash.

        Failures count against the account like failed logins, so a stolen access
        token cannot be used to guess the password.

        Raises:
            TooManyRequests: the account is throttled.
            AuthenticationFailed: the password is wrong.
        """
        account_key = await self._count_account_attempt(email)

        def current_hash(session: Session) -> str:
            user = session.get(User, user_id)
            return user.password_hash if user is not None else dummy_hash()

        password_hash = await self.database.run(current_hash)
        if not await self.hashing.run(verify_password, password, password_hash):
            LOGIN_FAILURES.inc()
            raise AuthenticationFailed("The current password is wrong")
        await self.kv.reset(account_key)
        return password_hash

    async def refresh(self, refresh_token: str, client: Client) -> LoginResponse:
        """A new token pair for a valid refresh token, which is used up.

        Raises:
            AuthenticationFailed: not a valid, current refresh token. Presenting a
                refresh token that was already used revokes its whole session.
        """
        try:
            claims = tokens.decode(
                refresh_token, secret=self.settings.jwt_secret(), expected="refresh"
            )
        except tokens.InvalidToken:
            raise AuthenticationFailed(INVALID_REFRESH) from None

        def rotate(session: Session) -> LoginResponse | None:
            login = session.get(AuthSession, claims.session_id)
            user = session.get(User, claims.user_id)
            if login is None or user is None or login.user_id != user.id:
                return None
            if login.revoked_at is not None or as_utc(login.expires_at) <= datetime.now(UTC):
                return None
            new_jti = tokens.new_id()
            result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                update(AuthSession)
                .where(
                    AuthSession.id == login.id,
                    AuthSession.refresh_jti == claims.token_id,
                    AuthSession.revoked_at.is_(None),
                )
                .values(refresh_jti=new_jti, refreshed_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            rotated = result.rowcount
            current = user.is_active and user.token_version == claims.version
            if rotated != 1 or not current:
                reason = "refresh reused" if rotated != 1 else "access changed"
                session.execute(
                    update(AuthSession)
                    .where(AuthSession.id == login.id)
                    .values(revoked_at=utcnow(), revoked_reason=reason)
                    .execution_options(synchronize_session=False)
                )
                actor = Actor(user.id, user.email, client.address, client.request_id)
                record(session, actor, "auth.revoke", "session", login.id, after={"reason": reason})
                if rotated != 1:
                    logger.warning("refresh token reused: session %s revoked", login.id)
                return None
            session.refresh(login)
            return _token_pair(self.settings, user, login)

        response = await self.database.run(rotate)
        if response is None:
            raise AuthenticationFailed(INVALID_REFRESH)
        return response

    async def logout(self, user_id: int, session_id: str, client: Client) -> None:
        """Revoke the login session: its access and refresh tokens stop working."""

        def revoke(session: Session) -> None:
            login = session.scalar(
                select(AuthSession).where(
                    AuthSession.id == session_id, AuthSession.user_id == user_id
                )
            )
            if login is None or login.revoked_at is not None:
                return
            login.revoked_at = utcnow()
            login.revoked_reason = "logout"
            user = session.get(User, user_id)
            actor = Actor(user_id, user.email if user else None, client.address, client.request_id)
            record(session, actor, "auth.logout", "session", session_id)

        await self.database.run(revoke)
