"""Errors raised by ingest: each carries a message a user can act on."""

from __future__ import annotations

from headwater.errors import HeadwaterError


class IngestError(HeadwaterError):
    """A load could not run or failed. ``transient``: it failed on errors that may pass
    (connection refused, timeouts, 429 / 5xx) after every attempt; trying later may work."""

    transient = False


class SpecError(IngestError):
    """The sources file is invalid."""


class SourceNotFound(IngestError):
    """A source name that the sources file does not declare."""
