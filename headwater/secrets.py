"""Secrets at rest: connection passwords, tokens and API keys, encrypted with MultiFernet.

Keys come from ``HEADWATER_SECRET_KEYS`` (comma separated Fernet keys, the first
one encrypts, every one decrypts) or, when that is unset, from the key file
``HEADWATER_HOME/secret_keys`` (one key per line, mode 0600), generated on first
use. Rotation: put a new key first, then ``headwater secrets rotate`` re-encrypts
every stored secret with it; re-running it is harmless.

A column holding ciphertext is marked ``info={"encrypted": True}``, so rotation
finds every one of them, in every package, without a list to keep up to date.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Column, Table, select, update

from headwater.errors import ConfigError, HeadwaterError

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.orm import Session

    from headwater.settings import Settings

KEY_FILE_NAME = "secret_keys"
ENCRYPTED = "encrypted"
"""The ``Column.info`` flag of a column holding ciphertext."""


class SecretsError(HeadwaterError):
    """A stored secret cannot be decrypted, or the keys are unusable."""


def parse_keys(text: str, origin: str) -> list[bytes]:
    """The Fernet keys in ``text`` (commas or line breaks between them), first one first.

    Raises:
        ConfigError: none given, or one is not a Fernet key (never quoting the key).
    """
    keys = [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
    if not keys:
        raise ConfigError(f"{origin} holds no key")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{origin}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes)",
                hint='make one with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`',
            ) from None
    return [key.encode() for key in keys]


def key_file(settings: Settings) -> Path:
    return settings.home_dir / KEY_FILE_NAME


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` whole into a 0600 file beside ``path``, then rename it into place."""
    descriptor, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as handle:  # mkstemp: mode 0600
            handle.write(text)
        os.replace(partial, path)
    finally:
        Path(partial).unlink(missing_ok=True)


def load_keys(settings: Settings) -> list[bytes]:
    """The configured keys; a key file is generated (0600) when neither exists."""
    if settings.secret_keys is not None:
        return parse_keys(settings.secret_keys.get_secret_value(), "HEADWATER_SECRET_KEYS")
    path = key_file(settings)
    if not path.exists():
        settings.secure_home()
        # O_EXCL: of two processes starting at once, one writes the key, both use it.
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(Fernet.generate_key().decode() + "\n")
    return parse_keys(path.read_text(), str(path))


@dataclass(frozen=True)
class SecretBox:
    """Encrypts with the first key, decrypts with any of them."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(tuple(load_keys(settings)))

    @property
    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(key) for key in self.keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str, what: str = "a stored secret") -> str:
        """Raises:
        SecretsError: no configured key opens ``token`` (the key was lost or replaced).
        """
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise SecretsError(
                f"cannot decrypt {what}: it was encrypted with a key that is not configured",
                hint="put the old key back in HEADWATER_SECRET_KEYS (after the new one) and "
                "run `headwater secrets rotate`",
            ) from None

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted with the first key (same plaintext)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except (InvalidToken, ValueError):
            raise SecretsError(
                "cannot re-encrypt a stored secret: none of the configured keys opens it",
                hint="add the key it was encrypted with to HEADWATER_SECRET_KEYS",
            ) from None


def encrypted_columns(metadata: MetaData) -> list[tuple[Table, Column[str]]]:
    """Every (table, column) of ``metadata`` marked as holding ciphertext."""
    return [
        (table, column)
        for table in metadata.sorted_tables
        for column in table.columns
        if column.info.get(ENCRYPTED)
    ]


def rotate_all(session: Session, box: SecretBox, metadata: MetaData) -> int:
    """Re-encrypt every stored secret with the first key; the number of values rewritten.

    Everything is read and checked before anything is written, and the caller's
    transaction holds the writes: a key that opens nothing leaves every row as it was.
    """
    changes = []
    for table, column in encrypted_columns(metadata):
        key = list(table.primary_key.columns)
        rows = session.execute(select(*key, column).where(column.is_not(None))).all()
        for row in rows:
            old = row[-1]
            changes.append((table, column, key, tuple(row[: len(key)]), old, box.rotate(old)))
    rewritten = 0
    for table, column, key, ids, old, token in changes:
        condition = [part == value for part, value in zip(key, ids, strict=True)]
        # Only if unchanged since read: a row written meanwhile is already under the first key.
        result = session.execute(
            update(table).where(*condition, column == old).values({column.name: token})
        )
        rewritten += result.rowcount  # type: ignore[attr-defined]
    return rewritten


def add_key(settings: Settings) -> None:
    """Put a newly generated key first in the key file (the older ones stay to decrypt).

    Raises:
        ConfigError: keys come from HEADWATER_SECRET_KEYS, which only its owner can change.
    """
    if settings.secret_keys is not None:
        raise ConfigError(
            "keys come from HEADWATER_SECRET_KEYS: put the new key first there yourself",
            hint="then run `headwater secrets rotate` without --new-key",
        )
    keys = load_keys(settings)
    text = "\n".join(key.decode() for key in [Fernet.generate_key(), *keys]) + "\n"
    _write_private(key_file(settings), text)


def drop_old_keys(settings: Settings) -> int:
    """Keep only the first key of the key file; the number of keys removed."""
    if settings.secret_keys is not None:
        raise ConfigError("keys come from HEADWATER_SECRET_KEYS: remove old ones there yourself")
    keys = load_keys(settings)
    _write_private(key_file(settings), keys[0].decode() + "\n")
    return len(keys) - 1
