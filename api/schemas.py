"""Wire types shared by every domain: the error body and the page of a list endpoint."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec
from litestar.params import Parameter

T = TypeVar("T")

NO_NUL = r"^[^\x00]*$"
"""Text that reaches the metadata store: PostgreSQL cannot hold a NUL character."""

MAX_ID = 2**63 - 1
"""Ids and offsets are 64-bit: anything larger is refused with a 400."""


def bounded(description: str, *, minimum: int = 1, query: str | None = None) -> Any:
    """A 64-bit id or offset parameter, its maximum documented exactly.

    Litestar writes ``le=`` into the document as a float (2**63 - 1 becomes 2**63),
    so the exact integer is given again for the document.
    """
    return Parameter(
        ge=minimum,
        le=MAX_ID,
        query=query,
        description=description,
        schema_extra={"maximum": MAX_ID},
    )


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
