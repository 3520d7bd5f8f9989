"""Transient or permanent: which failures of a load are worth another attempt.

A connection refused, reset or cut, a timeout, a server starting up or saying 429 /
5xx passes; bad credentials, a missing table or column, an SQL error or a refused
schema change will fail the same way again, so they fail at once.
"""

from __future__ import annotations

import re

TRANSIENT = re.compile(
    r"connection refused|could not connect|can't connect|timed? ?out|timeout|"
    r"server closed the connection|terminating connection|connection (?:was )?(?:reset|"
    r"closed|aborted)|broken pipe|lost connection|gone away|temporarily unavailable|"
    r"too many connections|the database system is (?:starting|shutting) (?:up|down)|"
    r"no route to host|network is unreachable|\b(?:429|502|503|504)\b",
    re.IGNORECASE,
)
PERMANENT = re.compile(
    r"password authentication failed|access denied|authentication failed|"
    r"does not exist|doesn't exist|unknown column|no such (?:table|column)|syntax error|"
    r"permission denied|schema_contract|\b(?:400|401|403|404)\b",
    re.IGNORECASE,
)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        stack += [current.__cause__, current.__context__, getattr(current, "exception", None)]
    return seen


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed where this one failed."""
    chain = _chain(exc)
    texts = " | ".join(f"{type(e).__name__}: {e}" for e in chain)
    if PERMANENT.search(texts):
        return False
    if any(isinstance(e, ConnectionError | TimeoutError) for e in chain):
        return True
    return TRANSIENT.search(texts) is not None
