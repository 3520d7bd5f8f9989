"""Orchestration errors."""

from __future__ import annotations

from headwater.errors import HeadwaterError


class TransformError(HeadwaterError):
    """dbt could not parse or build the project."""
