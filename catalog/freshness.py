"""Freshness: is a dataset as recent as its expectation says (dbt source ``freshness``)?"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

FRESHNESS = ("fresh", "warn", "stale", "unknown")
PERIOD_SECONDS = {"minute": 60, "hour": 3_600, "day": 86_400}


def period_seconds(after: Any) -> int | None:
    """dbt's ``{count, period}`` (minute / hour / day) in seconds, None when unset."""
    if not isinstance(after, Mapping):
        return None
    count, period = after.get("count"), after.get("period")
    if count is None or period not in PERIOD_SECONDS:
        return None
    return int(count) * PERIOD_SECONDS[str(period)]


def freshness_status(
    as_of: datetime | None,
    warn_after: int | None,
    error_after: int | None,
    now: datetime | None = None,
) -> str:
    """``fresh``, ``warn`` or ``stale`` against the expectation (dbt source freshness);
    ``unknown`` without an expectation or without a time to judge."""
    if (warn_after is None and error_after is None) or as_of is None:
        return "unknown"
    now = now or datetime.now(UTC)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    age = now - as_of
    if error_after is not None and age > timedelta(seconds=error_after):
        return "stale"
    if warn_after is not None and age > timedelta(seconds=warn_after):
        return "warn"
    return "fresh"
