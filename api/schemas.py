"""Wire types shared by every domain: the error body and the page of a list endpoint."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")


class ErrorResponse(msgspec.Struct, rename="camel", omit_defaults=True):
    """The body of every error response."""

    status_code: int
    detail: str
    hint: str | None = None
    extra: Any = None


class Page(msgspec.Struct, Generic[T], rename="camel"):
    """One page of a list endpoint; ``total`` counts every match, not just this page."""

    items: list[T]
    total: int
    limit: int
    offset: int
