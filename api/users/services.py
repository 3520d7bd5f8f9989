"""User accounts: creation rules and the first admin."""

from __future__ import annotations

import re
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.auth.services import hash_password
from api.errors import Conflict, InvalidInput
from api.users.models import Role, User
from headwater.db import session_scope
from headwater.settings import Settings

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding blanks."""
    return email.strip().lower()


def validate_email(email: str) -> str:
    """The normalised ``email``.

    Raises:
        InvalidInput: it does not look like an email address.
    """
    normalized = normalize_email(email)
    if len(normalized) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(normalized):
        raise InvalidInput(f"Not a valid email address: {normalized!r}")
    return normalized


def validate_password(password: str) -> None:
    """Raises:
    InvalidInput: the password is shorter than 12 or longer than 1024 characters.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"Password too short: it needs at least {MIN_PASSWORD_LENGTH} characters",
            hint="a passphrase of a few random words is easy to remember and hard to guess",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"Password too long: at most {MAX_PASSWORD_LENGTH} characters")


def create_user(session: Session, email: str, password: str, role: Role | str) -> User:
    """Add a user to ``session`` (flushed, so it has an id; the caller commits).

    Raises:
        InvalidInput: bad email, password shorter than 12 characters or unknown role.
        Conflict: a user with this email already exists.
    """
    normalized = validate_email(email)
    validate_password(password)
    try:
        checked_role = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"Unknown role {role!r}", hint=f"one of {allowed}") from None
    if session.scalar(select(User.id).where(User.email == normalized)) is not None:
        raise Conflict(f"A user with email {normalized!r} already exists")
    user = User(email=normalized, password_hash=hash_password(password), role=checked_role.value)
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict(f"A user with email {normalized!r} already exists") from exc
    return user


def ensure_admin(settings: Settings) -> str | None:
    """Create the first admin from settings unless an admin already exists.

    The admin gets ``settings.admin_email`` and ``settings.admin_password``; when
    no password is configured a strong one is generated. Only its hash is stored.

    Returns:
        The generated password, for the caller to show once; None when no admin
        was created or the password came from settings.

    Raises:
        InvalidInput: the configured email or password breaks the rules.
        Conflict: a non-admin user already has the admin email.
    """
    with session_scope(settings.metadata_url) as session:
        has_admin = session.scalar(select(User.id).where(User.role == Role.ADMIN.value).limit(1))
        if has_admin is not None:
            return None
        generated: str | None = None
        if settings.admin_password is not None:
            password = settings.admin_password.get_secret_value()
        else:
            password = generated = secrets.token_urlsafe(24)
        create_user(session, settings.admin_email, password, Role.ADMIN)
        return generated
