"""Secrets at rest: keys from the environment or a private key file, and rotation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from headwater.db import Base, session_scope
from headwater.errors import ConfigError
from headwater.migrate import upgrade
from headwater.secrets import (
    SecretBox,
    SecretsError,
    add_key,
    drop_old_keys,
    key_file,
    load_keys,
    parse_keys,
    rotate_all,
)
from headwater.settings import Settings
from ingest.models import StoredSource
from tests.conftest import make_settings

pytestmark = pytest.mark.unit

PLAINTEXT = '{"connection": "postgresql://reader:s3cret-pw@db/shop"}'


def new_key() -> bytes:
    return Fernet.generate_key()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def box_of(*keys: bytes) -> SecretBox:
    return SecretBox(tuple(keys))


# --- encrypting and decrypting -------------------------------------------------------


def test_a_secret_round_trips_and_is_not_stored_in_clear() -> None:
    box = box_of(new_key())
    token = box.encrypt(PLAINTEXT)
    assert "s3cret-pw" not in token
    assert box.decrypt(token) == PLAINTEXT


def test_a_wrong_key_raises_secrets_error_without_quoting_key_or_secret() -> None:
    right, wrong = new_key(), new_key()
    token = box_of(right).encrypt(PLAINTEXT)
    with pytest.raises(SecretsError) as info:
        box_of(wrong).decrypt(token, "the credentials of source 'shop'")
    text = str(info.value)
    assert "cannot decrypt the credentials of source 'shop'" in text
    assert "HEADWATER_SECRET_KEYS" in text  # the hint says what to do
    for leaked in (right.decode(), wrong.decode(), "s3cret-pw", token):
        assert leaked not in text


def test_a_damaged_token_is_a_secrets_error() -> None:
    box = box_of(new_key())
    with pytest.raises(SecretsError, match="cannot decrypt"):
        box.decrypt("not-a-fernet-token")


# --- where the keys come from ------------------------------------------------------


def test_without_configured_keys_a_private_key_file_is_generated_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    assert settings.secret_keys is None
    first = load_keys(settings)
    path = settings.home_dir / "secret_keys"
    assert key_file(settings) == path
    assert path.exists()
    assert mode(path) == 0o600
    assert mode(settings.home_dir) == 0o700
    assert len(first) == 1
    Fernet(first[0])  # a usable key

    again = load_keys(make_settings(tmp_path / "home"))
    assert again == first  # reused, not regenerated
    token = SecretBox.from_settings(settings).encrypt("x")
    assert SecretBox.from_settings(make_settings(tmp_path / "home")).decrypt(token) == "x"


def test_a_key_that_is_not_a_fernet_key_is_refused_without_echoing_it() -> None:
    good = new_key().decode()
    bad = "my-very-secret-passphrase"
    with pytest.raises(ConfigError) as info:
        parse_keys(f"{good},{bad}", "HEADWATER_SECRET_KEYS")
    text = str(info.value)
    assert "HEADWATER_SECRET_KEYS: key 2 is not a Fernet key" in text
    assert bad not in text
    assert good not in text


def test_no_key_at_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="holds no key"):
        parse_keys(" , \n", "HEADWATER_SECRET_KEYS")


def test_a_broken_key_file_is_refused_naming_the_file_not_the_content(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    key_file(settings).write_text("hunter2-not-a-key\n")
    with pytest.raises(ConfigError) as info:
        load_keys(settings)
    assert str(key_file(settings)) in str(info.value)
    assert "hunter2" not in str(info.value)


def test_configured_keys_decrypt_with_either_and_encrypt_with_the_first(tmp_path: Path) -> None:
    k1, k2 = new_key(), new_key()
    settings = make_settings(tmp_path, secret_keys=f"{k1.decode()}, {k2.decode()}")
    box = SecretBox.from_settings(settings)
    assert box.decrypt(box_of(k1).encrypt("one")) == "one"
    assert box.decrypt(box_of(k2).encrypt("two")) == "two"

    token = box.encrypt("new")
    assert box_of(k1).decrypt(token) == "new"
    with pytest.raises(SecretsError):
        box_of(k2).decrypt(token)
    assert not key_file(settings).exists()  # configured keys: no key file written


# --- adding and dropping keys ------------------------------------------------------


def test_add_key_puts_a_new_key_first_and_keeps_the_old_ones(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    old = load_keys(settings)
    token = SecretBox.from_settings(settings).encrypt("before")

    add_key(settings)
    keys = load_keys(settings)
    assert len(keys) == 2
    assert keys[1:] == old
    assert keys[0] not in old
    assert mode(key_file(settings)) == 0o600
    box = SecretBox.from_settings(settings)
    assert box.decrypt(token) == "before"  # old secrets still open
    assert box_of(keys[0]).decrypt(box.encrypt("after")) == "after"  # new key encrypts

    add_key(settings)
    assert load_keys(settings)[2:] == old
    assert mode(key_file(settings)) == 0o600
    assert [p.name for p in settings.home_dir.iterdir() if p.name.startswith(".")] == []


def test_drop_old_keys_keeps_only_the_first(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    old_token = SecretBox.from_settings(settings).encrypt("old")
    add_key(settings)
    add_key(settings)
    first = load_keys(settings)[0]

    assert drop_old_keys(settings) == 2
    assert load_keys(settings) == [first]
    assert mode(key_file(settings)) == 0o600
    with pytest.raises(SecretsError):
        SecretBox.from_settings(settings).decrypt(old_token)
    assert drop_old_keys(settings) == 0


def test_key_file_commands_refuse_when_keys_are_configured(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, secret_keys=new_key().decode())
    with pytest.raises(ConfigError, match="put the new key first there yourself"):
        add_key(settings)
    with pytest.raises(ConfigError, match="HEADWATER_SECRET_KEYS"):
        drop_old_keys(settings)
    assert not key_file(settings).exists()


# --- rotating every stored secret --------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    upgrade(settings.metadata_url)
    return settings


def add_rows(settings: Settings, tokens: dict[str, str | None]) -> None:
    with session_scope(settings.metadata_url) as session:
        for name, token in tokens.items():
            session.add(StoredSource(name=name, kind="database", config={}, secrets=token))


def stored_tokens(settings: Settings) -> dict[str, str | None]:
    with session_scope(settings.metadata_url) as session:
        rows = session.execute(select(StoredSource.name, StoredSource.secrets)).all()
    return {name: token for name, token in rows}


def test_rotation_re_encrypts_every_stored_secret_with_the_new_key(store: Settings) -> None:
    old, new = new_key(), new_key()
    add_rows(
        store,
        {
            "shop": box_of(old).encrypt('{"connection": "a"}'),
            "crm": box_of(old).encrypt('{"connection": "b"}'),
            "files": None,  # no secrets: nothing to rotate
        },
    )
    with session_scope(store.metadata_url) as session:
        assert rotate_all(session, box_of(new, old), Base.metadata) == 2

    tokens = stored_tokens(store)
    assert tokens["files"] is None
    for name, plaintext in (("shop", '{"connection": "a"}'), ("crm", '{"connection": "b"}')):
        token = tokens[name]
        assert token is not None
        assert box_of(new).decrypt(token) == plaintext
        with pytest.raises(SecretsError):
            box_of(old).decrypt(token)

    # Running it again changes no plaintext and needs no old key.
    with session_scope(store.metadata_url) as session:
        assert rotate_all(session, box_of(new), Base.metadata) == 2
    again = stored_tokens(store)
    assert box_of(new).decrypt(again["shop"] or "") == '{"connection": "a"}'
    assert box_of(new).decrypt(again["crm"] or "") == '{"connection": "b"}'


def test_a_secret_no_key_opens_stops_rotation_and_changes_nothing(store: Settings) -> None:
    old, new, lost = new_key(), new_key(), new_key()
    add_rows(
        store,
        {
            "alpha": box_of(old).encrypt("a"),
            "beta": box_of(lost).encrypt("b"),
            "gamma": box_of(old).encrypt("c"),
        },
    )
    before = stored_tokens(store)
    with pytest.raises(SecretsError) as info, session_scope(store.metadata_url) as session:
        rotate_all(session, box_of(new, old), Base.metadata)
    assert "none of the configured keys opens it" in str(info.value)
    assert stored_tokens(store) == before
    assert box_of(old).decrypt(before["alpha"] or "") == "a"
