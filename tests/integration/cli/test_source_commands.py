"""``headwater source …`` and ``headwater secrets rotate`` as an operator uses them: a real
SQLite source loaded into DuckDB, stored credentials encrypted, keys rotated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from headwater.cli import main
from headwater.db import session_scope
from headwater.settings import get_settings
from ingest.store import all_sources

pytestmark = pytest.mark.integration

SECRET = "op-typed-pw-771"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("HEADWATER_SECRET_KEYS", "HEADWATER_DATABASE_URL", "HEADWATER_DATA_DIRS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    sources = tmp_path / "sources.yml"
    sources.write_text(
        "sources:\n  notes:\n    kind: file\n    tables:\n      notes: {path: notes.csv}\n"
    )
    (tmp_path / "notes.csv").write_text("id,body\n1,hello\n")
    monkeypatch.setenv("HEADWATER_SOURCES_FILE", str(sources))
    with sqlite3.connect(tmp_path / "crm.db") as connection:
        connection.execute("create table contacts (id integer primary key, changed text)")
        connection.executemany(
            "insert into contacts values (?, ?)", [(i, f"2026-01-0{i}") for i in range(1, 4)]
        )
    return tmp_path


def run(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(main, list(args))


def write_spec(home: Path, connection: str) -> Path:
    spec = home / "crm.yml"
    spec.write_text(
        f"kind: database\nconnection: '{connection}'\ntables:\n  contacts: {{cursor: changed}}\n"
    )
    return spec


def test_add_list_show_ingest_state_reset_delete(home: Path) -> None:
    added = run("source", "add", "crm", str(write_spec(home, f"sqlite:///{home / 'crm.db'}")))
    assert added.exit_code == 0, added.output
    assert "stored crm" in added.output

    listed = run("source", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split()[:3] == ["notes", "file", "sources.yml"]
    assert lines[1].split()[:3] == ["crm", "database", "stored"]

    loaded = run("ingest", "crm")
    assert loaded.exit_code == 0, loaded.output
    assert "contacts: 3" in loaded.output

    state = run("source", "state", "crm")
    assert state.exit_code == 0, state.output
    assert "changed > 2026-01-03" in state.output
    assert "loaded" in state.output and "3 rows" in state.output

    again = run("ingest", "crm")
    assert "contacts: 0" in again.output  # a table with no new rows is still listed

    reset = run("source", "reset", "crm")
    assert reset.exit_code == 0, reset.output
    assert "reset contacts" in reset.output
    reloaded = run("ingest", "crm")
    assert "contacts: 3" in reloaded.output

    wrong = run("source", "reset", "crm", "--table", "nope")
    assert wrong.exit_code == 1
    assert "has no table(s) nope" in wrong.output

    assert run("source", "delete", "notes").exit_code == 1  # declared in the file
    deleted = run("source", "delete", "crm")
    assert deleted.exit_code == 0, deleted.output
    assert "crm" not in run("source", "list").output


def test_a_typed_password_is_stored_encrypted_and_shown_masked(home: Path) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test"
    assert run("source", "add", "billing", str(write_spec(home, url))).exit_code == 0
    shown = run("source", "show", "billing")
    assert shown.exit_code == 0, shown.output
    assert "postgresql://postgres:***@127.0.0.1:5432/test" in shown.output
    assert SECRET not in shown.output
    assert SECRET not in run("source", "list").output
    assert SECRET.encode() not in (home / "headwater.db").read_bytes()
    with session_scope(get_settings().metadata_url) as session:
        action, after = session.execute(text("select action, after from audit_log")).one()
    assert action == "source.create"
    assert "postgresql://postgres:***@127.0.0.1:5432/test" in str(after)  # the masked source
    assert (home / "secret_keys").stat().st_mode & 0o777 == 0o600

    tested = run("source", "test", "billing")
    assert tested.exit_code == 1  # the contacts table is not in that database
    assert "contacts" in tested.output
    assert SECRET not in tested.output


def test_secrets_rotate_re_encrypts_every_row_and_can_run_again(home: Path) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test"
    assert run("source", "add", "billing", str(write_spec(home, url))).exit_code == 0
    old_key = (home / "secret_keys").read_text().strip()
    with session_scope(get_settings().metadata_url) as session:
        before = session.execute(text("select secrets from sources")).scalar_one()

    rotated = run("secrets", "rotate", "--new-key", "--drop-old")
    assert rotated.exit_code == 0, rotated.output
    assert "1 stored secret(s) re-encrypted" in rotated.output
    keys = (home / "secret_keys").read_text().split()
    assert keys != [old_key] and len(keys) == 1
    with session_scope(get_settings().metadata_url) as session:
        after = session.execute(text("select secrets from sources")).scalar_one()
    assert after != before
    get_settings.cache_clear()
    assert SECRET in (all_sources(get_settings())["billing"].spec.connection or "")
    again = run("secrets", "rotate")
    assert again.exit_code == 0, again.output
    shown = run("source", "show", "billing")
    assert shown.exit_code == 0, shown.output  # still decrypts with the new key alone


def test_the_old_key_alone_cannot_read_rotated_secrets(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test"
    assert run("source", "add", "billing", str(write_spec(home, url))).exit_code == 0
    old_key = (home / "secret_keys").read_text().strip()
    assert run("secrets", "rotate", "--new-key", "--drop-old").exit_code == 0
    monkeypatch.setenv("HEADWATER_SECRET_KEYS", old_key)
    shown = run("source", "show", "billing")
    assert shown.exit_code == 1
    assert "cannot decrypt the credentials of source 'billing'" in shown.output
    assert old_key not in shown.output


def test_a_bad_spec_file_points_at_its_own_line(home: Path) -> None:
    spec = home / "bad.yml"
    spec.write_text("kind: database\nconnection: sqlite:///x.db\ntables:\n  t: {cursour: x}\n")
    result = run("source", "add", "bad", str(spec))
    assert result.exit_code == 1
    assert f"{spec}:4: sources.bad.tables.t.cursour: unknown field" in result.output
