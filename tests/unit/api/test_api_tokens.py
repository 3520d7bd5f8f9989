from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException
from litestar.security.jwt import Token

from api.auth.services import ALGORITHM, create_access_token

pytestmark = pytest.mark.unit

SECRET = "token-test-secret-key-long-enough-for-hs256-signing"


def decode(encoded: str) -> Token:
    """What the API's JWT middleware does with a bearer token."""
    return Token.decode(encoded, secret=SECRET, algorithm=ALGORITHM, require_claims=["exp", "sub"])


def test_round_trip_keeps_subject_role_and_expiry() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    encoded = create_access_token(
        user_id=42, role="viewer", secret=SECRET, ttl=timedelta(minutes=30), now=now
    )
    token = decode(encoded)
    assert token.sub == "42"
    assert token.extras["role"] == "viewer"
    assert token.exp == now + timedelta(minutes=30)


def test_claims_are_plain_top_level_jwt_claims() -> None:
    encoded = create_access_token(user_id=7, role="admin", secret=SECRET, ttl=timedelta(hours=1))
    payload = jwt.decode(encoded, SECRET, algorithms=[ALGORITHM])
    assert payload["sub"] == "7"
    assert payload["role"] == "admin"
    assert payload["exp"] - payload["iat"] == 3600
    assert jwt.get_unverified_header(encoded)["alg"] == "HS256"


def test_litestar_middleware_decoder_accepts_our_tokens() -> None:
    encoded = create_access_token(user_id=3, role="user", secret=SECRET, ttl=timedelta(minutes=5))
    token = Token.decode(encoded, secret=SECRET, algorithm=ALGORITHM, require_claims=["exp", "sub"])
    assert token.sub == "3"
    assert token.extras["role"] == "user"


def test_expired_token_is_rejected() -> None:
    encoded = create_access_token(
        user_id=1,
        role="admin",
        secret=SECRET,
        ttl=timedelta(minutes=5),
        now=datetime.now(UTC) - timedelta(minutes=10),
    )
    with pytest.raises(NotAuthorizedException):
        decode(encoded)


def test_token_signed_with_another_secret_is_rejected() -> None:
    encoded = create_access_token(
        user_id=1, role="admin", secret="another-secret-key-long-enough-for-hs256", ttl=timedelta(1)
    )
    with pytest.raises(NotAuthorizedException):
        decode(encoded)


def test_tampered_role_is_rejected() -> None:
    encoded = create_access_token(user_id=1, role="viewer", secret=SECRET, ttl=timedelta(1))
    header, _payload, signature = encoded.split(".")
    forged = jwt.encode({"sub": "1", "role": "admin", "iat": 0, "exp": 2**31}, SECRET[::-1])
    forged_payload = forged.split(".")[1]
    with pytest.raises(NotAuthorizedException):
        decode(f"{header}.{forged_payload}.{signature}")


def test_unsigned_token_is_rejected() -> None:
    unsigned = jwt.encode({"sub": "1", "iat": 0, "exp": 2**31}, key="", algorithm="none")
    with pytest.raises(NotAuthorizedException):
        decode(unsigned)
