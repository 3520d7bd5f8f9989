"""The API watching itself: its own metrics as alert conditions, and the outbox's sender.

Every minute the process notes its request, error, latency and cache counters; the
service rules (``cache_hit_rate_below``, ``api_error_rate_above`` in %,
``api_p95_above`` in ms) compare the change over their window with their threshold.
A window with too little traffic says nothing (a hit rate over three look-ups is
noise). Every couple of seconds the outbox's due messages are sent
(:func:`headwater.notify.dispatch.deliver_pending`: each once, whichever process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from api.metrics import CACHE_REQUESTS, LATENCY, REQUESTS
from headwater.notify.alerting import SERVICE_CONDITIONS, Finding, apply, rules_for
from headwater.notify.dispatch import deliver_pending

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from api.db import Database
    from api.events.hub import EventHub
    from headwater.notify.models import AlertRule
    from headwater.settings import Settings

log = logging.getLogger("headwater.api.monitor")

SAMPLE_SECONDS = 60.0
DELIVER_SECONDS = 2.0
DELIVER_BATCH = 5
KEEP_SAMPLES = 24 * 60
MIN_REQUESTS = 100
MIN_LOOKUPS = 50


@dataclass(frozen=True)
class Totals:
    """The process's counters at one moment (cumulative since it started)."""

    requests: float = 0.0
    errors: float = 0.0
    """Answers with a 5xx status."""
    hits: float = 0.0
    misses: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    """Requests answered within each latency bound (seconds), cumulative like Prometheus."""

    def minus(self, other: Totals) -> Totals:
        return Totals(
            requests=self.requests - other.requests,
            errors=self.errors - other.errors,
            hits=self.hits - other.hits,
            misses=self.misses - other.misses,
            buckets={le: n - other.buckets.get(le, 0.0) for le, n in self.buckets.items()},
        )


def read_totals() -> Totals:
    requests = errors = hits = misses = 0.0
    for metric in REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                requests += sample.value
                if str(sample.labels.get("status", "")).startswith("5"):
                    errors += sample.value
    for metric in CACHE_REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                if sample.labels.get("result") == "hit":
                    hits += sample.value
                elif sample.labels.get("result") == "miss":
                    misses += sample.value
    buckets: dict[float, float] = {}
    for metric in LATENCY.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    return Totals(requests, errors, hits, misses, buckets)


def p95_ms(buckets: dict[float, float]) -> float | None:
    """The 95th percentile latency (ms) from cumulative bucket counts, interpolated
    linearly within its bucket as Prometheus's ``histogram_quantile`` does."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = 0.95 * buckets[bounds[-1]]
    below_bound, below_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return below_bound * 1000
            share = (rank - below_count) / (count - below_count) if count > below_count else 1
            return (below_bound + (bound - below_bound) * share) * 1000
        below_bound, below_count = bound, count
    return None


def service_finding(rule: AlertRule, change: Totals, subject: str) -> Finding | None:
    """The finding of a service rule over ``change`` (None: too little traffic)."""
    window = rule.window_minutes or 15
    limit = rule.threshold
    if limit is None:
        return None
    if rule.condition == "cache_hit_rate_below":
        lookups = change.hits + change.misses
        if lookups < MIN_LOOKUPS:
            return None
        rate = 100.0 * change.hits / lookups
        return Finding(
            rule=rule,
            subject=subject,
            firing=rate < limit,
            message=f"cache hit rate {rate:.1f} % over {window} min ({lookups:.0f} look-ups; "
            f"expected at least {limit:g} %)",
            value=rate,
        )
    if change.requests < MIN_REQUESTS:
        return None
    if rule.condition == "api_error_rate_above":
        rate = 100.0 * change.errors / change.requests
        return Finding(
            rule=rule,
            subject=subject,
            firing=rate > limit,
            message=f"{rate:.2f} % of {change.requests:.0f} requests failed with a server "
            f"error over {window} min (limit {limit:g} %)",
            value=rate,
        )
    if rule.condition == "api_p95_above":
        p95 = p95_ms(change.buckets)
        if p95 is None:
            return None
        return Finding(
            rule=rule,
            subject=subject,
            firing=p95 > limit,
            message=f"p95 latency {p95:.0f} ms over {window} min (limit {limit:g} ms)",
            value=p95,
        )
    return None


class Monitor:
    def __init__(self, settings: Settings, database: Database, hub: EventHub) -> None:
        self.settings = settings
        self.database = database
        self.hub = hub
        self.subject = f"api:{socket.gethostname()}"
        self.samples: deque[tuple[float, Totals]] = deque(maxlen=KEEP_SAMPLES)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.samples.append((time.monotonic(), read_totals()))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch()), loop.create_task(self._deliver())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def change_over(self, minutes: int, now: float) -> Totals | None:
        """How the counters moved over the last ``minutes`` (None: not watched that long)."""
        start = now - minutes * 60
        earlier = [sample for sample in self.samples if sample[0] <= start + 1]
        if not earlier:
            return None
        return self.samples[-1][1].minus(earlier[-1][1])

    async def evaluate(self) -> None:
        now = time.monotonic()
        self.samples.append((now, read_totals()))

        def work(session: Session) -> list[dict[str, Any]]:
            messages: list[dict[str, Any]] = []
            for rule in rules_for(session, SERVICE_CONDITIONS):
                change = self.change_over(rule.window_minutes or 15, now)
                finding = None if change is None else service_finding(rule, change, self.subject)
                if finding is not None:
                    messages += apply(session, finding)
            return messages

        await self.hub.announce(await self.database.run(work))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            if not self.database.present():
                continue
            try:
                await self.evaluate()
            except Exception:
                log.exception("service alert rules: an evaluation failed")

    async def _deliver(self) -> None:
        while True:
            await asyncio.sleep(DELIVER_SECONDS)
            if not self.database.present():
                continue
            try:
                # Small passes, and not waited for on shutdown: a send cut short is
                # marked interrupted later, never sent twice.
                await to_thread.run_sync(
                    partial(deliver_pending, self.settings, limit=DELIVER_BATCH),
                    abandon_on_cancel=True,
                )
            except Exception:
                log.exception("notifications: a delivery pass failed")
