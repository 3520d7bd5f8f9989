from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from api.auth.services import verify_password
from api.errors import Conflict, InvalidInput
from api.users.models import Role, User
from api.users.services import create_user_with_password as create_user
from api.users.services import ensure_admin
from headwater.db import session_scope
from headwater.settings import Settings

pytestmark = pytest.mark.unit

GOOD_PASSWORD = "twelve-chars-at-least"


def _users(settings: Settings) -> list[User]:
    with session_scope(settings.metadata_url) as session:
        return list(session.scalars(select(User).order_by(User.id)))


def test_ensure_admin_generates_a_password_and_stores_only_its_hash(settings: Settings) -> None:
    generated = ensure_admin(settings)
    assert generated is not None
    assert len(generated) >= 24
    [admin] = _users(settings)
    assert admin.email == "admin@example.com"
    assert admin.role == Role.ADMIN
    assert generated not in admin.password_hash
    assert admin.password_hash.startswith("$argon2id$")
    assert verify_password(generated, admin.password_hash)
    # The clear password is nowhere in the metadata store file either.
    database = settings.home_dir / "headwater.db"
    assert generated.encode() not in database.read_bytes()


def test_generated_admin_passwords_differ_between_installs(
    make_api_settings: Callable[..., Settings],
) -> None:
    first = ensure_admin(make_api_settings())
    second = ensure_admin(make_api_settings())
    assert first is not None and second is not None
    assert first != second


def test_ensure_admin_is_idempotent(settings: Settings) -> None:
    assert ensure_admin(settings) is not None
    assert ensure_admin(settings) is None
    assert len(_users(settings)) == 1


def test_ensure_admin_uses_the_configured_password(
    make_api_settings: Callable[..., Settings],
) -> None:
    settings = make_api_settings(
        admin_email=" Boss@Example.com ", admin_password=SecretStr(GOOD_PASSWORD)
    )
    assert ensure_admin(settings) is None
    [admin] = _users(settings)
    assert admin.email == "boss@example.com"
    assert verify_password(GOOD_PASSWORD, admin.password_hash)


def test_ensure_admin_rejects_a_short_configured_password(
    make_api_settings: Callable[..., Settings],
) -> None:
    settings = make_api_settings(admin_password=SecretStr("short"))
    with pytest.raises(InvalidInput, match="at least 12"):
        ensure_admin(settings)
    assert _users(settings) == []


def test_create_user_normalises_email(settings: Settings) -> None:
    with session_scope(settings.metadata_url) as session:
        user = create_user(session, "  Ana@Example.COM ", GOOD_PASSWORD, "viewer")
        assert user.id is not None
    [stored] = _users(settings)
    assert (stored.email, stored.role, stored.is_active) == ("ana@example.com", "viewer", True)


def test_create_user_rejects_duplicate_email_whatever_its_case(settings: Settings) -> None:
    with session_scope(settings.metadata_url) as session:
        create_user(session, "ana@example.com", GOOD_PASSWORD, Role.USER)
    with (
        pytest.raises(Conflict, match="already exists"),
        session_scope(settings.metadata_url) as session,
    ):
        create_user(session, "ANA@example.com", GOOD_PASSWORD, Role.USER)
    assert len(_users(settings)) == 1


@pytest.mark.parametrize(
    ("email", "password", "role", "message"),
    [
        ("not-an-email", GOOD_PASSWORD, "user", "valid email"),
        ("a@b", GOOD_PASSWORD, "user", "valid email"),
        ("ana@example.com", "elevenchars", "user", "at least 12"),
        ("ana@example.com", GOOD_PASSWORD, "superuser", "Unknown role"),
    ],
)
def test_create_user_rejects_bad_input(
    settings: Settings, email: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message), session_scope(settings.metadata_url) as s:
        create_user(s, email, password, role)
    assert _users(settings) == []
