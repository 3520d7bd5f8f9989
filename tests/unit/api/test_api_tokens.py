"""Access and refresh tokens: what is issued, and every way a forged or stale one is refused."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from api.auth import tokens
from api.auth.tokens import AccessTokenVerifier, InvalidToken, bearer_token, decode, encode

pytestmark = pytest.mark.unit

SECRET = "token-test-secret-key-long-enough-for-hs256-signing"
SID = "0123456789abcdef0123456789abcdef"
JTI = "fedcba9876543210fedcba9876543210"
NOW = 1_800_000_000


def issue(token_type: tokens.TokenType = "access", **overrides: Any) -> str:  # noqa: S107
    values: dict[str, Any] = {
        "secret": SECRET,
        "token_type": token_type,
        "user_id": 42,
        "session_id": SID,
        "version": 3,
        "ttl_seconds": 900,
        "now": NOW,
        "token_id": JTI,
        **overrides,
    }
    return encode(**values)


def payload_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def signed(payload: dict[str, Any], *, key: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_access_token_carries_exactly_the_required_claims() -> None:
    payload = payload_of(issue())
    assert payload == {
        "iss": "headwater",
        "aud": "headwater-api",
        "sub": "42",
        "typ": "access",
        "sid": SID,
        "ver": 3,
        "jti": JTI,
        "iat": NOW,
        "exp": NOW + 900,
    }
    assert jwt.get_unverified_header(issue())["alg"] == "HS256"


def test_round_trip() -> None:
    claims = decode(issue(), secret=SECRET, expected="access", now=NOW + 1)
    assert (claims.user_id, claims.session_id, claims.version) == (42, SID, 3)
    assert claims.expires_at == NOW + 900


def test_refresh_token_is_never_an_access_token_and_the_other_way_round() -> None:
    with pytest.raises(InvalidToken):
        decode(issue("refresh"), secret=SECRET, expected="access", now=NOW)
    with pytest.raises(InvalidToken):
        decode(issue("access"), secret=SECRET, expected="refresh", now=NOW)


@pytest.mark.parametrize("moment", [NOW + 900, NOW + 10_000])
def test_expired_token_is_refused(moment: int) -> None:
    with pytest.raises(InvalidToken):
        decode(issue(), secret=SECRET, expected="access", now=moment)


def test_token_issued_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidToken):
        decode(issue(now=NOW + 600), secret=SECRET, expected="access", now=NOW)


def test_alg_none_is_refused() -> None:
    unsigned = jwt.encode(payload_of(issue()), key=None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(InvalidToken):
        decode(unsigned, secret=SECRET, expected="access", now=NOW)
    stripped = ".".join([b64({"alg": "none", "typ": "JWT"}), issue().split(".")[1], ""])
    with pytest.raises(InvalidToken):
        decode(stripped, secret=SECRET, expected="access", now=NOW)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_other_algorithms_with_the_same_key_are_refused(algorithm: str) -> None:
    with pytest.raises(InvalidToken):
        decode(
            signed(payload_of(issue()), algorithm=algorithm),
            secret=SECRET,
            expected="access",
            now=NOW,
        )


def test_another_key_is_refused() -> None:
    with pytest.raises(InvalidToken):
        decode(issue(secret="x" * 48), secret=SECRET, expected="access", now=NOW)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("sub", "1"), ("ver", 4), ("sid", "f" * 32), ("typ", "refresh"), ("exp", NOW + 99_999)],
)
def test_claims_edited_under_the_old_signature_are_refused(claim: str, value: Any) -> None:
    header, _, signature = issue().split(".")
    forged = {**payload_of(issue()), claim: value}
    with pytest.raises(InvalidToken):
        decode(f"{header}.{b64(forged)}.{signature}", secret=SECRET, expected="access", now=NOW)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "iss", "jti", "typ", "sid", "ver"])
def test_every_claim_is_required(claim: str) -> None:
    payload = payload_of(issue())
    del payload[claim]
    with pytest.raises(InvalidToken):
        decode(signed(payload), secret=SECRET, expected="access", now=NOW)


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("aud", "another-api"),
        ("aud", ["headwater-api", "another-api"]),
        ("aud", ["headwater-api"]),
        ("iss", "someone-else"),
        ("sub", "42abc"),
        ("sub", 42),
        ("sub", "9" * 40),
        ("ver", "3"),
        ("ver", True),
        ("sid", "not-a-session"),
        ("jti", ""),
        ("typ", "ACCESS"),
        ("iat", "1800000000"),
        ("exp", 1_800_000_900.5),
    ],
)
def test_claims_are_compared_exactly(claim: str, value: Any) -> None:
    payload = {**payload_of(issue()), claim: value}
    with pytest.raises(InvalidToken):
        decode(signed(payload), secret=SECRET, expected="access", now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token abc.def.ghi",
        "Bearer abc",
        "Bearer a.b",
        "Bearer a.b.c.d",
        "Bearer a.b.c extra",
        "Bearer  a.b.c",
        "Bearer a.b.c\n",
        "Bearer é.b.c",
        "Bearer " + "a" * 5000 + ".b.c",
    ],
)
def test_only_a_well_formed_bearer_header_is_read(header: str | None) -> None:
    with pytest.raises(InvalidToken):
        bearer_token(header)


def test_bearer_scheme_is_case_insensitive_and_returns_the_token() -> None:
    token = issue()
    assert bearer_token(f"Bearer {token}") == token
    assert bearer_token(f"bearer {token}") == token


def test_verifier_remembers_a_good_token_but_still_expires_it() -> None:
    verifier = AccessTokenVerifier(SECRET, max_entries=2)
    token = issue(now=int(time.time()), ttl_seconds=2)
    assert verifier.verify(token).user_id == 42
    assert verifier.verify(token).user_id == 42  # from memory
    with pytest.raises(InvalidToken):
        verifier.verify(token, now=time.time() + 3)
    with pytest.raises(InvalidToken):
        verifier.verify("a.b.c")


def test_verifier_never_remembers_a_bad_token() -> None:
    verifier = AccessTokenVerifier(SECRET)
    forged = issue(secret="y" * 48, now=int(time.time()))
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.verify(forged)
