"""Argon2id password hashing, bounded so that a burst of logins cannot exhaust the machine.

Each hash costs ~64 MiB and tens of milliseconds of CPU. :class:`HashingPool`
runs at most one hash per core at a time; a bounded number of callers may wait
for a turn, and anyone beyond that (or waiting too long) gets a 503 with
Retry-After instead of a queue that grows without limit.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from functools import cache
from typing import TypeVar

import anyio
from anyio import CapacityLimiter, to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api.errors import ServiceUnavailable

T = TypeVar("T")
MAX_WAITING = 64
MAX_WAIT_SECONDS = 10.0
RETRY_AFTER_SECONDS = 2

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; two calls give different hashes)."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash``; False (never an error) on a bad hash."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError, ValueError, TypeError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


@cache
def dummy_hash() -> str:
    """A hash no password matches: unknown emails cost the same work as wrong passwords."""
    return hash_password(secrets.token_urlsafe(16))


class HashingPool:
    """Runs argon2 work in at most ``workers`` threads, with a bounded queue."""

    def __init__(self, workers: int | None = None, max_waiting: int = MAX_WAITING) -> None:
        self._workers = workers or max(1, os.cpu_count() or 1)
        self._max_waiting = max_waiting
        self._waiting = 0
        self._limiter: CapacityLimiter | None = None

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in a hashing thread.

        Raises:
            ServiceUnavailable: too many hashes queued already, or the wait was too long.
        """
        if self._limiter is None:
            self._limiter = CapacityLimiter(self._workers)
        busy = ServiceUnavailable(
            "Too many sign-ins at once; try again in a moment", retry_after=RETRY_AFTER_SECONDS
        )
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            if self._waiting >= self._max_waiting:
                raise busy from None
            self._waiting += 1
            try:
                with anyio.fail_after(MAX_WAIT_SECONDS):
                    await self._limiter.acquire()
            except TimeoutError:
                raise busy from None
            finally:
                self._waiting -= 1
        try:
            return await to_thread.run_sync(func, *args)
        finally:
            self._limiter.release()
