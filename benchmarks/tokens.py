"""Token check overhead per request: what the API's authentication adds to each call.

Ours: :meth:`api.auth.middleware.Authenticator.authenticate` on a real bearer
header against a real (SQLite) metadata store: header parse, signature (verified
once per token, then remembered), claims, and the per-request check of the user
and session in the store. Baseline, measured in the same run: a bare
``jwt.decode`` of the same token with its audience and issuer, which is what any
JWT-checking API pays and which checks neither revocation nor the user.

    uv run python -m benchmarks.tokens
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import jwt
from rich.console import Console
from rich.table import Table

TARGET_MS = 0.3
AUDIENCE = "headwater-api"
ISSUER = "headwater"
CALLS = 20_000


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _measure(home: Path) -> tuple[list[float], list[float], str]:
    from api.auth import tokens
    from api.auth.middleware import Authenticator
    from api.auth.models import AuthSession
    from api.db import Database
    from api.users.services import create_user_with_password
    from headwater.db import session_scope, utcnow
    from headwater.migrate import upgrade
    from headwater.settings import Settings

    settings = Settings(_env_file=None, home=home, secret_key="b" * 48)  # type: ignore[call-arg]
    upgrade(settings.metadata_url)
    with session_scope(settings.metadata_url) as session:
        user = create_user_with_password(session, "bench@example.com", "bench-password-1", "user")
        login = AuthSession(
            id=tokens.new_id(),
            user_id=user.id,
            refresh_jti=tokens.new_id(),
            expires_at=utcnow().replace(year=utcnow().year + 1),
        )
        session.add(login)
        session.flush()
        token = tokens.encode(
            secret=settings.jwt_secret(),
            token_type="access",  # noqa: S106 - a token kind
            user_id=user.id,
            session_id=login.id,
            version=user.token_version,
            ttl_seconds=900,
        )
    authenticator = Authenticator(settings.jwt_secret(), Database(settings.metadata_url))
    header = f"Bearer {token}"
    secret = settings.jwt_secret()
    ours: list[float] = []
    bare: list[float] = []
    for _ in range(500):  # warm up both
        await authenticator.authenticate(header)
    for _ in range(CALLS):  # alternate, so neither enjoys a quieter moment
        started = time.perf_counter()
        await authenticator.authenticate(header)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        jwt.decode(token, secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)
        bare.append(time.perf_counter() - started)
    authenticator.close()
    return ours, bare, settings.metadata_url


def run_token_benchmark(console: Console) -> float:
    """Print the table; return our median in milliseconds."""
    with tempfile.TemporaryDirectory() as home:
        ours, bare, _ = asyncio.run(_measure(Path(home)))
    table = Table(title="Token check per request (median of 20,000, alternating)")
    for column in ("check", "median ms", "p99 ms"):
        table.add_column(column)
    for name, samples in (("ours: header, JWT, user + session in store", ours),
                          ("bare jwt.decode (no revocation)", bare)):  # fmt: skip
        ordered = sorted(samples)
        p99 = ordered[int(len(ordered) * 0.99)] * 1000
        table.add_row(name, f"{_median_ms(samples):.4f}", f"{p99:.4f}")
    console.print(table)
    median = _median_ms(ours)
    verdict = "PASS" if median < TARGET_MS else "FAIL"
    console.print(
        f"token check: {median:.4f} ms median, {median / _median_ms(bare):.2f}x a bare "
        f"jwt.decode; target < {TARGET_MS} ms: {verdict}"
    )
    return median


if __name__ == "__main__":
    run_token_benchmark(Console())
