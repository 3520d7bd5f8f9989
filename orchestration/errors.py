"""Orchestration errors."""

from __future__ import annotations

from headwater.errors import HeadwaterError


class TransformError(HeadwaterError):
    """dbt could not parse or build the project."""


class JobNotFound(HeadwaterError):
    """A job id that names no job (or none the caller may see)."""
