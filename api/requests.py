"""The id of each request: the caller's ``X-Request-ID`` when sane, else a new one."""

from __future__ import annotations

import os
import re

from litestar.types import Scope

_GOOD_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id(scope: Scope) -> str:
    """This request's id, made once and kept in the scope's state."""
    state = scope.setdefault("state", {})
    value = state.get("request_id")
    if value is None:
        for name, raw in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = raw.decode("latin-1")
                if _GOOD_REQUEST_ID.fullmatch(candidate):
                    value = candidate
                break
        value = value or os.urandom(16).hex()
        state["request_id"] = value
    return str(value)
