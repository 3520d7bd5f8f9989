"""Wire types of the users domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

import msgspec

from api.schemas import NO_NUL

RoleName = Literal["admin", "user", "viewer"]
_PART = r"[^@\x00-\x20\x7f]+"
EMAIL_PATTERN = rf"^[ \t\r\n]*{_PART}@{_PART}\.{_PART}[ \t\r\n]*$"
"""An address, blanks around it allowed (they are trimmed)."""
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320, pattern=EMAIL_PATTERN)]
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]
Name = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]


class UserOut(msgspec.Struct, rename="camel"):
    id: int
    email: str
    name: str
    role: RoleName
    is_active: bool
    created_at: datetime | None
    last_login_at: datetime | None


class UserCreated(UserOut, rename="camel"):
    initial_password: str | None = None
    """Only when the server generated the password: shown this once, never stored."""


class CreateUserRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    email: Email
    role: RoleName = "user"
    name: Name = ""
    password: Password | None = None
    """Omit to have a strong one generated and returned once."""


class UpdateUserRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Admin changes; a role change or deactivation ends the user's tokens at once."""

    name: Name | None = None
    role: RoleName | None = None
    is_active: bool | None = None


class UpdateMeRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Your own name, or your password (with the current one): a new password ends every
    token you hold, this one included."""

    name: Name | None = None
    password: Password | msgspec.UnsetType = msgspec.UNSET
    current_password: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=1024)] | msgspec.UnsetType
    ) = msgspec.UNSET
    """Required with ``password``; ignored without it."""

    dependent_required: ClassVar[dict[str, list[str]]] = {"password": ["currentPassword"]}


class ResetPasswordRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    password: Password | None = None
    """Omit to have a strong one generated and returned once."""


class PasswordReset(msgspec.Struct, rename="camel"):
    user: UserOut
    new_password: str | None = None
    """Only when the server generated the password."""
