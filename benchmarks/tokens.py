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
import contextlib
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


LOGINS = 30


async def _login_times(home: Path) -> dict[str, list[float]]:
    """Seconds per failed sign-in: unknown email, wrong password, inactive account."""
    from api.auth.passwords import HashingPool
    from api.auth.services import AuthService, Client
    from api.db import Database
    from api.errors import AuthenticationFailed
    from api.kv import KeyValueStore
    from api.users.services import create_user_with_password
    from headwater.db import session_scope
    from headwater.migrate import upgrade
    from headwater.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        home=home,
        secret_key="c" * 48,
        login_attempts_per_address=10**6,
        login_failures_per_account=10**6,
    )
    upgrade(settings.metadata_url)
    with session_scope(settings.metadata_url) as session:
        create_user_with_password(session, "known@example.com", "right-password-1", "user")
        retired = create_user_with_password(session, "gone@example.com", "right-password-1", "user")
        retired.is_active = False
    service = AuthService(
        settings, Database(settings.metadata_url), KeyValueStore(None), HashingPool()
    )
    client = Client(address="127.0.0.1", user_agent=None, request_id=None)
    cases = {
        "unknown email": ("nobody@example.com", "right-password-1"),
        "wrong password": ("known@example.com", "wrong-password-1"),
        "inactive account": ("gone@example.com", "right-password-1"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(LOGINS):  # in turns, so that no case enjoys a quieter moment
        for name, (email, password) in cases.items():
            started = time.perf_counter()
            with contextlib.suppress(AuthenticationFailed):
                await service.login(email, password, client)
            times[name].append(time.perf_counter() - started)
    return times


def run_login_timing(console: Console) -> float:
    """Print failed sign-in times; return the largest relative gap between the cases."""
    with tempfile.TemporaryDirectory() as home:
        times = asyncio.run(_login_times(Path(home)))
    medians = {name: _median_ms(samples) for name, samples in times.items()}
    table = Table(title=f"Failed sign-in, median of {LOGINS} each (argon2id)")
    table.add_column("case")
    table.add_column("median ms")
    for name, median in medians.items():
        table.add_row(name, f"{median:.1f}")
    console.print(table)
    gap = (max(medians.values()) - min(medians.values())) / max(medians.values())
    console.print(f"largest gap between cases: {gap:.1%} (same work for each: argon2 verify)")
    return gap


if __name__ == "__main__":
    run_token_benchmark(Console())
    run_login_timing(Console())
