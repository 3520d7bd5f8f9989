"""Wire types of ``GET /health`` and ``GET /health/ready``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

CheckStatus = Literal["ok", "missing", "unreachable", "down", "not configured", "error"]


class CheckResult(msgspec.Struct, rename="camel", omit_defaults=True):
    """One dependency's state; ``detail`` never contains hosts, paths or credentials."""

    status: CheckStatus
    detail: str


class WarehouseCheck(CheckResult, rename="camel", omit_defaults=True):
    last_load_at: datetime | None = None
    """When the catalog last saw a raw table change (the last successful load)."""
    last_build_at: datetime | None = None
    """When dbt last finished a run (``run_results.json``)."""


class LivenessResponse(msgspec.Struct, rename="camel"):
    """The process answers. ``degraded`` when it knows Redis is down (it serves without it)."""

    status: Literal["ok", "degraded"]
    redis: CheckStatus


class ReadinessChecks(msgspec.Struct, rename="camel"):
    metadata_store: CheckResult
    warehouse: WarehouseCheck
    redis: CheckResult


class ReadinessResponse(msgspec.Struct, rename="camel"):
    status: Literal["ok", "degraded", "unavailable"]
    checks: ReadinessChecks
