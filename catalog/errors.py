"""Catalog errors."""

from __future__ import annotations

from headwater.errors import HeadwaterError


class CatalogError(HeadwaterError):
    """The catalog could not be refreshed or read."""


class LineageError(CatalogError):
    """Lineage could not be computed."""
