"""Pure parts of live events and of the API's self-watch: who may see an event, which
Socket.IO rooms it goes to, slow clients, skipped ids, p95 from histogram buckets and
the service rules' verdicts."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from api.auth.schemas import CurrentUser
from api.events.hub import EventHub, Subscriber, client_text, may_see
from api.events.live import RedactTokens, rooms_of
from api.notifications.monitor import Totals, p95_ms, service_finding
from headwater.notify.models import AlertRule


def user(user_id: int, role: str) -> CurrentUser:
    return CurrentUser(
        id=user_id, email=f"u{user_id}@example.com", name="", role=role, session_id="s"
    )


def job_event(owner: int, *, shared: bool = False, event_id: int = 1) -> dict[str, Any]:
    return {
        "id": event_id,
        "kind": "job_update",
        "jobId": 5,
        "ownerId": owner,
        "shared": shared,
        "userId": None,
        "data": {"runId": "r"},
    }


def note_event(recipient: int) -> dict[str, Any]:
    return {
        "id": 9,
        "kind": "notification",
        "jobId": None,
        "ownerId": None,
        "shared": False,
        "userId": recipient,
        "data": {"title": "t"},
    }


@pytest.mark.parametrize(
    ("who", "event", "sees"),
    [
        (user(1, "user"), job_event(1), True),
        (user(2, "user"), job_event(1), False),
        (user(2, "viewer"), job_event(1, shared=True), True),
        (user(3, "admin"), job_event(1), True),
        (user(1, "user"), note_event(1), True),
        (user(3, "admin"), note_event(1), False),  # a notification is its recipient's alone
    ],
)
def test_who_may_see_an_event(who: CurrentUser, event: dict[str, Any], sees: bool) -> None:
    assert may_see(who, event) is sees


def test_socketio_rooms_match_who_may_see() -> None:
    assert rooms_of(job_event(1)) == ["role:admin", "user:1"]
    assert rooms_of(job_event(1, shared=True)) == ["role:admin", "user:1", "everyone"]
    assert rooms_of(note_event(4)) == ["user:4"]


def test_a_client_text_is_serialised_once() -> None:
    event = job_event(1)
    text = client_text(event)
    assert text == '{"type":"job_update","id":1,"data":{"runId":"r"}}'
    assert client_text(event) is text


def test_a_client_too_slow_to_keep_up_is_told_to_resume() -> None:
    async def scenario() -> list[Any]:
        async def close() -> None:
            pass

        slow = Subscriber(user(1, "user"), "Bearer x", close)
        for n in range(3000):
            slow.offer(job_event(1, event_id=n))
        return [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]

    assert asyncio.run(scenario()) == [None]  # the writer hangs up: resume with since


def test_ids_skipped_by_a_read_are_looked_for_again() -> None:
    async def scenario() -> tuple[set[int], set[int], int]:
        hub = EventHub.__new__(EventHub)
        hub._gaps, hub._cursor = {}, 10
        hub._note_gaps(10, [11, 14, 15])  # 12 and 13 not committed yet (PostgreSQL)
        first = set(hub._gaps)
        hub._note_gaps(15, [12])  # 12 came; 13 never will (a skipped sequence value)
        return first, set(hub._gaps), hub._cursor

    first, then, cursor = asyncio.run(scenario())
    assert first == {12, 13}
    assert then == {13}
    assert cursor == 15


def test_p95_interpolates_within_its_bucket() -> None:
    # 100 requests: 90 within 10 ms, 10 between 10 and 50 ms.
    buckets = {0.01: 90.0, 0.05: 100.0, float("inf"): 100.0}
    assert p95_ms(buckets) == pytest.approx(30.0)
    assert p95_ms({}) is None


def _rule(condition: str, threshold: float) -> AlertRule:
    return AlertRule(id=1, name="r", condition=condition, threshold=threshold, window_minutes=15)


def test_service_rules_judge_only_windows_with_enough_traffic() -> None:
    quiet = Totals(requests=20, errors=10, hits=1, misses=9)
    for condition in ("cache_hit_rate_below", "api_error_rate_above"):
        assert service_finding(_rule(condition, 1), quiet, "api:h") is None
    busy = Totals(requests=1000, errors=20, hits=80, misses=20, buckets={0.1: 900, 1.0: 1000})
    errors = service_finding(_rule("api_error_rate_above", 1), busy, "api:h")
    assert errors is not None and errors.firing and errors.value == pytest.approx(2.0)
    hits = service_finding(_rule("cache_hit_rate_below", 90), busy, "api:h")
    assert hits is not None and hits.firing and "80.0 %" in hits.message
    slow = service_finding(_rule("api_p95_above", 500), busy, "api:h")
    assert slow is not None and slow.firing and slow.value == pytest.approx(550.0)
    fine = service_finding(_rule("api_p95_above", 600), busy, "api:h")
    assert fine is not None and not fine.firing


def test_tokens_in_connection_urls_are_masked_in_the_access_log() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s"',
        ("127.0.0.1", "GET", "/socket.io/?EIO=4&transport=polling&token=eyJhbGciOi.secret"),
        None,
    )
    RedactTokens().filter(record)
    assert "eyJhbGciOi" not in record.getMessage()
    assert "token=***" in record.getMessage()
