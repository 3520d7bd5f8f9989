"""Wire types shared by every domain: the error body and the page of a list endpoint."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

T = TypeVar("T")

MAX_ID = 2**63 - 1
"""Ids and offsets are 64-bit: anything larger is refused with a 400."""


class ErrorBody(msgspec.Struct, rename="camel"):
    code: str
    """Stable, machine-readable: ``invalid_request``, ``unauthorized``, ``not_found``…"""
    message: str
    """For people: what went wrong and, where possible, what to do."""
    details: Any = None
    """Field errors of a validation failure, or ``{"hint": ...}``."""
    request_id: str | None = None
    """Also in the ``X-Request-ID`` header; quote it when reporting a problem."""


class ErrorResponse(msgspec.Struct):
    """The body of every error response."""

    error: ErrorBody


class Page(msgspec.Struct, Generic[T], rename="camel"):
    """One page of a list endpoint; ``total`` counts every match, not just this page."""

    items: list[T]
    total: int
    limit: int
    offset: int
