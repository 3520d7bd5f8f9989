"""Date-time query parameters: read as text, parsed strictly (RFC 3339, with an offset).

A typed ``datetime`` parameter would also take ``0.5`` (a Unix time), which the
OpenAPI document's ``date-time`` format does not allow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from litestar.params import Parameter

from api.errors import InvalidInput
from api.schemas import NO_NUL

RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})")


def moment(description: str) -> Any:
    """A date-time query parameter, read as text and parsed strictly by :func:`rfc3339`."""
    return Parameter(
        max_length=40, pattern=NO_NUL, description=description, schema_extra={"format": "date-time"}
    )


def rfc3339(name: str, value: str | None) -> datetime | None:
    """``value`` as a time with its offset, or a 400 naming the parameter."""
    if value is None:
        return None
    if RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value.upper()).astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise InvalidInput(f"{name} is not a date-time", hint="RFC 3339, e.g. 2026-11-29T08:00:00Z")


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a time without an offset, as SQLite returns it, is UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
