"""The API under a burst, as a client meets it: a real uvicorn process, hundreds of connections.

200 logins and then 500 authenticated list requests arrive at the same moment, each
on its own connection. Every one of them gets an answer in time (a login burst may
be throttled with 429 and Retry-After; nothing may fail with 5xx or hang), and the
health check answers at once right afterwards: the server has not starved its
worker pool. Throughput and latency targets live in ``benchmarks/api.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.api import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    REAL_APP,
    prepare_home,
    serve,
    server_environment,
)
from benchmarks.bare_api import sample_datasets
from benchmarks.loadgen import Outcome, burst

pytestmark = pytest.mark.e2e

LOGIN_BURST = 200
LIST_BURST = 500
CLIENT_TIMEOUT_SECONDS = 60.0
HEALTH_WITHIN_SECONDS = 1.0
# The default per-address allowance (20) with a short window keeps the test quick.
LOGIN_LIMITS = {"HEADWATER_LOGIN_WINDOW_SECONDS": "10"}
LOGIN_RETRY_DEADLINE_SECONDS = 30.0
DATASETS = sample_datasets()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The real API on a free port over a fresh home with the admin and a few datasets."""
    home = tmp_path / "home"
    env = server_environment(home, **LOGIN_LIMITS)
    prepare_home(home, env, DATASETS)
    with serve(REAL_APP, env, cwd=tmp_path, log=tmp_path / "uvicorn.log") as api:
        yield api.base_url


def _describe(outcomes: list[Outcome]) -> str:
    """Counts of answers by status and of failures by kind, for assertion messages."""
    counts = Counter(
        str(o.status) if o.reply is not None else (o.error or "?").split(":")[0] for o in outcomes
    )
    return ", ".join(f"{kind}: {n}" for kind, n in counts.most_common())


def _log_in_once(base_url: str) -> str:
    """Log in, waiting out a throttled address as its Retry-After says."""
    deadline = time.monotonic() + LOGIN_RETRY_DEADLINE_SECONDS
    with httpx.Client(base_url=base_url, timeout=CLIENT_TIMEOUT_SECONDS) as client:
        while True:
            login = client.post(
                "/api/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            )
            if login.status_code != 429:
                break
            wait = float(login.headers["Retry-After"])
            assert time.monotonic() + wait < deadline, f"still throttled: Retry-After {wait}"
            time.sleep(wait + 0.1)
    assert login.status_code == 200, login.text
    token: str = login.json()["accessToken"]
    return token


def test_login_and_list_bursts_get_answers_and_health_stays_prompt(server: str) -> None:
    credentials = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
    logins = asyncio.run(
        burst(
            f"{server}/api/auth/login",
            LOGIN_BURST,
            method="POST",
            body=credentials,
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
    )
    summary = _describe(logins)
    assert all(o.reply is not None for o in logins), f"logins without an answer: {summary}"
    assert all(o.status in (200, 429) for o in logins), f"login burst answered {summary}"
    granted = [o.reply for o in logins if o.reply is not None and o.reply.status == 200]
    assert granted, f"not one login of the burst succeeded: {summary}"
    assert all(json.loads(reply.body)["accessToken"] for reply in granted)
    for outcome in logins:
        if outcome.reply is not None and outcome.reply.status == 429:
            assert int(outcome.reply.headers.get("retry-after", "-1")) >= 0, outcome.reply.headers

    token = _log_in_once(server)
    listings = asyncio.run(
        burst(
            f"{server}/api/catalog/datasets?limit=50",
            LIST_BURST,
            headers={"Authorization": f"Bearer {token}"},
            timeout=CLIENT_TIMEOUT_SECONDS,
        )
    )
    summary = _describe(listings)
    assert all(o.status == 200 for o in listings), f"list burst answered {summary}"
    expected = sorted(d["name"] for d in DATASETS)
    for outcome in listings:
        assert outcome.reply is not None
        page = json.loads(outcome.reply.body)
        assert sorted(item["name"] for item in page["items"]) == expected

    started = time.perf_counter()
    health = httpx.get(f"{server}/health", timeout=10)
    elapsed = time.perf_counter() - started
    assert health.status_code == 200, health.text
    assert elapsed < HEALTH_WITHIN_SECONDS, f"/health took {elapsed:.2f} s after the burst"
