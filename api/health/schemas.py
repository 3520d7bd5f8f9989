"""Wire types of ``GET /health``."""

from __future__ import annotations

from typing import Literal

import msgspec

CheckStatus = Literal["ok", "missing", "busy", "unreachable", "error"]


class CheckResult(msgspec.Struct, rename="camel"):
    """One dependency's state; ``detail`` never contains hosts, paths or credentials."""

    status: CheckStatus
    detail: str


class HealthChecks(msgspec.Struct, rename="camel", omit_defaults=True):
    metadata_store: CheckResult
    warehouse: CheckResult
    redis: CheckResult | None = None
    """Present only when Redis is configured."""


class HealthResponse(msgspec.Struct, rename="camel"):
    status: Literal["ok", "degraded"]
    checks: HealthChecks
