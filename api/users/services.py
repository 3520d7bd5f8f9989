"""User accounts: the rules for creating and changing them, and the first admin.

Every function here runs inside one metadata store session (a worker thread, see
``api/db.py``) and records its change in the audit log in the same transaction.
Password hashing is done by the caller, through the bounded hashing pool.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from api.audit.services import Actor, record
from api.auth.models import AuthSession
from api.auth.passwords import hash_password
from api.errors import Conflict, InvalidInput, NotFound
from api.users.models import Role, User
from api.users.schemas import EMAIL_PATTERN
from headwater.db import session_scope, utcnow
from headwater.settings import Settings

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 320
MAX_NAME_LENGTH = 200
_EMAIL = re.compile(EMAIL_PATTERN)
SYSTEM = Actor(user_id=None, email=None)
"""The actor of changes made by Headwater itself (the first admin)."""


_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def normalize_email(email: str) -> str:
    """Emails compare ignoring ASCII case and the blanks around them.

    Only ASCII letters are folded and only spaces, tabs and line breaks trimmed:
    exactly what :data:`EMAIL_PATTERN` (and so the OpenAPI document) allows around
    an address, and never longer than what was sent (Unicode lowercasing can grow
    a string past the column's 320 characters).
    """
    return email.strip(" \t\r\n").translate(_ASCII_LOWER)


def validate_email(email: str) -> str:
    """The normalised ``email``.

    Raises:
        InvalidInput: it does not look like an email address.
    """
    normalized = normalize_email(email)
    if len(normalized) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(normalized):
        raise InvalidInput(f"Not a valid email address: {normalized[:80]!r}")
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


def validate_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidInput(f"Name too long: at most {MAX_NAME_LENGTH} characters")
    return cleaned


def parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise InvalidInput(f"Unknown role {str(role)[:40]!r}", hint=f"one of {allowed}") from None


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def snapshot(user: User) -> dict[str, Any]:
    """What the audit log shows of a user (never the hash)."""
    return {"email": user.email, "name": user.name, "role": user.role, "isActive": user.is_active}


def get_user(session: Session, user_id: int) -> User:
    """Raises:
    NotFound: no user has this id.
    """
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


def find_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def create_user(
    session: Session,
    email: str,
    password_hash: str,
    role: Role | str,
    *,
    name: str = "",
    actor: Actor = SYSTEM,
) -> User:
    """Add a user (flushed, so it has an id; the caller's session commits).

    ``password_hash`` is an argon2 hash (:func:`api.auth.passwords.hash_password`);
    the caller validated the password with :func:`validate_password`.

    Raises:
        InvalidInput: bad email, name or unknown role.
        Conflict: a user with this email already exists.
    """
    normalized = validate_email(email)
    checked_role = parse_role(role)
    if session.scalar(select(User.id).where(User.email == normalized)) is not None:
        raise Conflict(f"A user with email {normalized!r} already exists")
    user = User(
        email=normalized,
        name=validate_name(name),
        password_hash=password_hash,
        role=checked_role.value,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent insert won the race
        raise Conflict(f"A user with email {normalized!r} already exists") from exc
    record(session, actor, "user.create", "user", user.id, after=snapshot(user))
    return user


def create_user_with_password(
    session: Session, email: str, password: str, role: Role | str, *, name: str = ""
) -> User:
    """:func:`create_user` hashing ``password`` here (CLI, tests; the API hashes in its pool)."""
    validate_password(password)
    return create_user(session, email, hash_password(password), role, name=name)


@dataclass(frozen=True)
class UserFilter:
    role: Role | None = None
    active: bool | None = None
    search: str | None = None


def list_users(
    session: Session, *, limit: int, offset: int, filters: UserFilter = UserFilter()
) -> tuple[Sequence[User], int]:
    """One page of users ordered by email, and how many match."""
    conditions: list[ColumnElement[bool]] = []
    if filters.role is not None:
        conditions.append(User.role == filters.role.value)
    if filters.active is not None:
        conditions.append(User.is_active.is_(filters.active))
    if filters.search:
        conditions.append(
            or_(
                User.email.icontains(filters.search, autoescape=True),
                User.name.icontains(filters.search, autoescape=True),
            )
        )
    total = session.scalar(select(func.count()).select_from(User).where(*conditions)) or 0
    users = session.scalars(
        select(User).where(*conditions).order_by(User.email).limit(limit).offset(offset)
    ).all()
    return users, total


def _revoke_sessions(session: Session, user: User, reason: str) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
    )


def _take_admin_rights(session: Session, user: User, role: str, active: bool) -> None:
    """Demote or deactivate an active admin, unless no other active admin would remain.

    One conditional UPDATE, so two admins demoting each other at the same moment
    cannot both succeed: on SQLite the statement runs under the write lock and sees
    the other's commit; on PostgreSQL the active admins' rows are first locked in id
    order, so the second demotion waits for the first and then finds it.

    Raises:
        Conflict: this is the last active admin.
    """
    is_admin = (User.role == Role.ADMIN.value) & User.is_active.is_(True)
    session.scalars(select(User.id).where(is_admin).order_by(User.id).with_for_update()).all()
    others = aliased(User)
    other_admins = (
        select(func.count())
        .select_from(others)
        .where(others.role == Role.ADMIN.value, others.is_active.is_(True), others.id != user.id)
        .scalar_subquery()
    )
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        update(User)
        .where(User.id == user.id, other_admins > 0)
        .values(role=role, is_active=active, token_version=User.token_version + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(
            "This is the last active admin: it cannot be demoted or deactivated",
            hint="make another user admin first",
        )
    session.refresh(user)


def _end_tokens(session: Session, user: User, reason: str) -> None:
    """Every token of ``user`` stops working: new version, every login session revoked."""
    user.token_version += 1
    _revoke_sessions(session, user, reason)


def update_user(
    session: Session,
    user_id: int,
    actor: Actor,
    *,
    name: str | None = None,
    role: Role | str | None = None,
    is_active: bool | None = None,
) -> User:
    """Change a user's name, role or active flag (admin).

    A role change or deactivation ends the user's existing tokens at once.

    Raises:
        NotFound: no such user.
        InvalidInput: unknown role or bad name.
        Conflict: the change would leave no active admin.
    """
    user = get_user(session, user_id)
    before = snapshot(user)
    new_role = parse_role(role).value if role is not None else user.role
    new_active = user.is_active if is_active is None else is_active
    loses_admin = user.role == Role.ADMIN.value and user.is_active
    keeps_admin = new_role == Role.ADMIN.value and new_active
    if name is not None:
        user.name = validate_name(name)
    if loses_admin and not keeps_admin:
        _take_admin_rights(session, user, new_role, new_active)
        _revoke_sessions(session, user, "access changed")
    elif new_role != user.role or new_active != user.is_active:
        user.role, user.is_active = new_role, new_active
        _end_tokens(session, user, "access changed")
    after = snapshot(user)
    if after != before:
        action = "user.update"
        if before["isActive"] != after["isActive"]:
            action = "user.reactivate" if new_active else "user.deactivate"
        elif before["role"] != after["role"]:
            action = "user.set_role"
        record(session, actor, action, "user", user.id, before=before, after=after)
    return user


def set_password(
    session: Session,
    user_id: int,
    password_hash: str,
    actor: Actor,
    *,
    expected_hash: str | None = None,
    reset: bool = True,
) -> User:
    """Replace a user's password; every existing token of the user stops working.

    ``reset``: an admin set it (``user.reset_password``); False when the user changed
    their own after giving the current one (``user.change_password``).

    ``expected_hash``: the hash the caller verified the old password against; if
    it changed meanwhile, the change is refused rather than applied blindly.

    Raises:
        NotFound: no such user.
        Conflict: the password changed since the old one was checked.
    """
    user = get_user(session, user_id)
    if expected_hash is not None and user.password_hash != expected_hash:
        raise Conflict("The password was changed meanwhile; sign in again")
    user.password_hash = password_hash
    _end_tokens(session, user, "password changed")
    action = "user.reset_password" if reset else "user.change_password"
    record(session, actor, action, "user", user.id, after={"password": "changed"})
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
        create_user_with_password(session, settings.admin_email, password, Role.ADMIN)
        return generated
