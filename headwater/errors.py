"""The root of every Headwater error: a message a user can act on."""

from __future__ import annotations


class HeadwaterError(Exception):
    """An error with a message meant for the user, and optionally the fix."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} ({self.hint})"


class ConfigError(HeadwaterError):
    """Configuration is missing or inconsistent."""
