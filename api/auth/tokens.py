"""Access and refresh tokens: HS256 JWTs with every claim required and compared exactly.

Pure functions over a secret; no I/O. An access token names its user (``sub``),
the login session it belongs to (``sid``) and the user's token version (``ver``):
the middleware checks the last two against the metadata store on every request,
so a logout, a role change, a deactivation or a new password ends the token at
once. A refresh token is only ever accepted by ``POST /api/auth/refresh``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import jwt

ALGORITHM = "HS256"
AUDIENCE = "headwater-api"
ISSUER = "headwater"
MAX_TOKEN_LENGTH = 2048
TokenType = Literal["access", "refresh"]

REQUIRED_CLAIMS = ("exp", "iat", "sub", "aud", "iss", "jti", "typ", "sid", "ver")
_BEARER = re.compile(r"[Bb]earer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")
_UUID = re.compile(r"[0-9a-f]{32}")
CLOCK_SKEW_SECONDS = 5


class InvalidToken(Exception):
    """The token is not one this API issued for this use, or it expired. No details on purpose."""


@dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    session_id: str
    version: int
    token_id: str
    token_type: TokenType
    issued_at: int
    expires_at: int


def new_id() -> str:
    return uuid.uuid4().hex


def encode(
    *,
    secret: str,
    token_type: TokenType,
    user_id: int,
    session_id: str,
    version: int,
    ttl_seconds: int,
    now: float | None = None,
    token_id: str | None = None,
) -> str:
    issued = int(now if now is not None else time.time())
    payload = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(user_id),
        "typ": token_type,
        "sid": session_id,
        "ver": version,
        "jti": token_id or new_id(),
        "iat": issued,
        "exp": issued + ttl_seconds,
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def bearer_token(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <jwt>`` header.

    Raises:
        InvalidToken: no header, another scheme, not a JWT's shape, or too long.
    """
    if header is None or len(header) > MAX_TOKEN_LENGTH + 7:
        raise InvalidToken
    match = _BEARER.fullmatch(header)
    if match is None:
        raise InvalidToken
    return match.group(1)


def _claims(payload: dict[str, Any], expected: TokenType) -> Claims:
    sub, sid, ver, jti, typ = (payload.get(k) for k in ("sub", "sid", "ver", "jti", "typ"))
    if (
        typ != expected
        or payload.get("aud") != AUDIENCE  # a string, exactly: no list of audiences
        or payload.get("iss") != ISSUER
        or not isinstance(sub, str)
        or not sub.isdigit()
        or len(sub) > 18
        or not isinstance(sid, str)
        or not _UUID.fullmatch(sid)
        or not isinstance(jti, str)
        or not _UUID.fullmatch(jti)
        or type(ver) is not int
        or type(payload.get("iat")) is not int
        or type(payload.get("exp")) is not int
    ):
        raise InvalidToken
    return Claims(
        user_id=int(sub),
        session_id=sid,
        version=ver,
        token_id=jti,
        token_type=expected,
        issued_at=payload["iat"],
        expires_at=payload["exp"],
    )


def decode(token: str, *, secret: str, expected: TokenType, now: float | None = None) -> Claims:
    """The verified claims of ``token``, which must be an ``expected``-type token.

    Raises:
        InvalidToken: bad signature or algorithm, a claim missing or different from
            what this API issues, expired, or issued in the future.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=0,
            options={
                "require": list(REQUIRED_CLAIMS),
                "strict_aud": True,
                # Times are checked below, against one clock that tests can set.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken from exc
    claims = _claims(payload, expected)
    _check_times(claims, now)
    return claims


def _check_times(claims: Claims, now: float | None) -> None:
    current = now if now is not None else time.time()
    if claims.expires_at <= current or claims.issued_at > current + CLOCK_SKEW_SECONDS:
        raise InvalidToken


class AccessTokenVerifier:
    """Verifies access tokens, remembering each good signature until the token expires.

    A JWT's signature and claims never change, so a token verified once needs only
    its expiry checked again; the user, session and version are still checked
    against the store on every request by the caller. Bounded: least recently
    used tokens are forgotten first.
    """

    def __init__(self, secret: str, max_entries: int = 10_000) -> None:
        self._secret = secret
        self._max = max_entries
        self._verified: OrderedDict[str, Claims] = OrderedDict()

    def verify(self, token: str, now: float | None = None) -> Claims:
        claims = self._verified.get(token)
        if claims is None:
            claims = decode(token, secret=self._secret, expected="access", now=now)
            self._verified[token] = claims
            if len(self._verified) > self._max:
                self._verified.popitem(last=False)
        else:
            self._verified.move_to_end(token)
            try:
                _check_times(claims, now)
            except InvalidToken:
                del self._verified[token]
                raise
        return claims
