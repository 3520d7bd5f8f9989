from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from headwater.cli import main
from headwater.settings import get_settings

pytestmark = pytest.mark.unit


def test_help_answers_at_once_without_importing_the_domain() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from headwater.cli import main; "
            "main(['--help'], standalone_mode=False); "
            "print(sorted(m for m in ('dlt', 'dagster', 'dbt', 'litestar') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "ingest" in result.stdout and "transform" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "command",
    [
        "init",
        "up",
        "pipeline",
        "sample",
        "ingest",
        "transform",
        "catalog",
        "user",
        "api",
        "source",
        "secrets",
    ],
)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_unknown_source_is_one_line_plus_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["ingest", "nosuch"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == "error: no source named nosuch"
    assert lines[1].strip().startswith("fix: declared sources: shop, web, marketing, suppliers")


def test_invalid_sources_file_points_at_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "sources.yml"
    bad.write_text("sources:\n  shop:\n    kind: database\n    tables: {a: {}}\n")
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_SOURCES_FILE", str(bad))
    result = CliRunner().invoke(main, ["ingest"])
    assert result.exit_code == 1
    assert (
        f"error: {bad}:2: sources.shop: a 'database' source needs a 'connection' URL"
        in result.output
    )


def test_invalid_configuration_is_reported_by_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_WAREHOUSE", "oracle")
    result = CliRunner().invoke(main, ["ingest"])
    assert result.exit_code == 1
    assert result.output.startswith("error: invalid configuration: HEADWATER_WAREHOUSE:")


def test_init_creates_store_and_prints_generated_password_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.delenv("HEADWATER_ADMIN_PASSWORD", raising=False)
    first = CliRunner().invoke(main, ["init", "--no-sample"])
    assert first.exit_code == 0, first.output
    assert "password (shown once, not stored)" in first.output
    password = first.output.split("not stored): ")[1].split()[0]
    assert len(password) >= 16
    assert (tmp_path / "headwater.db").exists()
    assert password.encode() not in (tmp_path / "headwater.db").read_bytes()
    second = CliRunner().invoke(main, ["init", "--no-sample"])
    assert second.exit_code == 0
    assert "password" not in second.output


def test_user_create_reads_the_password_from_the_environment_and_refuses_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_ADMIN_PASSWORD", "admin-password-long-enough")
    assert CliRunner().invoke(main, ["init", "--no-sample"]).exit_code == 0
    monkeypatch.setenv("HEADWATER_NEW_USER_PASSWORD", "analyst-password-long")
    created = CliRunner().invoke(main, ["user", "create", "Ana@Example.com", "--role", "viewer"])
    assert created.exit_code == 0, created.output
    assert created.output.strip() == "created ana@example.com (viewer)"
    again = CliRunner().invoke(main, ["user", "create", "ana@example.com"])
    assert again.exit_code == 1
    assert again.output.startswith("error: ")
    assert "analyst-password-long" not in again.output


def test_user_list_set_role_deactivate_and_the_last_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_ADMIN_PASSWORD", "admin-password-long-enough")
    monkeypatch.setenv("HEADWATER_NEW_USER_PASSWORD", "analyst-password-long")
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--no-sample"]).exit_code == 0
    assert (
        runner.invoke(main, ["user", "create", "ana@example.com", "--role", "viewer"]).exit_code
        == 0
    )

    listed = runner.invoke(main, ["user", "list"])
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.output.splitlines() if "@" in line]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("admin@headwater.local", "admin", "active"),
        ("ana@example.com", "viewer", "active"),
    ]

    promoted = runner.invoke(main, ["user", "set-role", "ana@example.com", "admin"])
    assert promoted.output.strip() == "ana@example.com: admin, active (existing tokens revoked)"
    demoted = runner.invoke(main, ["user", "set-role", "admin@headwater.local", "viewer"])
    assert demoted.exit_code == 0, demoted.output
    last = runner.invoke(main, ["user", "deactivate", "ana@example.com"])
    assert last.exit_code == 1
    assert last.output.splitlines() == [
        "error: This is the last active admin: it cannot be demoted or deactivated",
        "  fix: make another user admin first",
    ]
    assert runner.invoke(main, ["user", "deactivate", "admin@headwater.local"]).exit_code == 0
    inactive = runner.invoke(main, ["user", "list", "--inactive"])
    assert [line.split()[1] for line in inactive.output.splitlines() if "@" in line] == [
        "admin@headwater.local"
    ]
    unknown = runner.invoke(main, ["user", "reactivate", "nobody@example.com"])
    assert unknown.exit_code == 1
    assert unknown.output.startswith("error: no user with email 'nobody@example.com'")


def test_unreachable_metadata_store_is_one_line_plus_the_fix_without_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_DATABASE_URL", "postgresql://hw:db-secret-pw@127.0.0.1:1/x")
    result = CliRunner().invoke(main, ["init", "--no-sample"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 2, result.output
    assert lines[0].startswith("error: the metadata store did not answer: ")
    assert lines[1] == "  fix: check HEADWATER_DATABASE_URL and that the database server is running"
    assert "db-secret-pw" not in result.output
    assert "Traceback" not in result.output


def test_home_and_its_secrets_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    monkeypatch.setenv("HEADWATER_ADMIN_PASSWORD", "admin-password-long-enough")
    monkeypatch.delenv("HEADWATER_SECRET_KEY", raising=False)
    assert CliRunner().invoke(main, ["init", "--no-sample"]).exit_code == 0
    get_settings().jwt_secret()
    assert home.stat().st_mode & 0o777 == 0o700
    for name in ("headwater.db", "secret_key"):
        assert (home / name).stat().st_mode & 0o077 == 0, name
    home.chmod(0o755)
    (home / "headwater.db").chmod(0o644)
    assert CliRunner().invoke(main, ["init", "--no-sample"]).exit_code == 0
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "headwater.db").stat().st_mode & 0o077 == 0


def test_ingest_check_tests_each_source_without_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    missing = CliRunner().invoke(main, ["ingest", "--check", "web"])
    assert missing.exit_code == 1
    assert missing.output.startswith("error: table 'events': file not found:")
    from ingest.sample_data import generate

    generate(tmp_path / "sample", scale=0.01)
    found = CliRunner().invoke(main, ["ingest", "--check"])
    assert found.exit_code == 0, found.output
    assert "✓ shop: reachable, 5 table(s) found" in found.output
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_init_says_when_a_new_scale_replaced_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_SAMPLE_SCALE", "0.01")
    first = CliRunner().invoke(main, ["init"])
    assert first.exit_code == 0, first.output
    assert "regenerated" not in first.output
    same = CliRunner().invoke(main, ["init"])
    assert "regenerated" not in same.output
    monkeypatch.setenv("HEADWATER_SAMPLE_SCALE", "0.02")
    get_settings.cache_clear()  # a new process in real life
    changed = CliRunner().invoke(main, ["init"])
    assert changed.exit_code == 0, changed.output
    assert "the next `headwater ingest` reloads it in full" in changed.output


def test_up_refuses_a_port_that_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
        monkeypatch.setenv("HEADWATER_API_PORT", str(port))
        result = CliRunner().invoke(main, ["up"])
    assert result.exit_code == 1
    assert f"error: 127.0.0.1:{port} is already in use" in result.output
    assert "HEADWATER_API_PORT" in result.output
    assert not (tmp_path / "warehouse.duckdb").exists(), "nothing ran before the check"


def test_the_readme_configuration_table_names_every_setting() -> None:
    from headwater.settings import PROJECT_ROOT, Settings

    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in Settings.model_fields if f"`HEADWATER_{name.upper()}`" not in table]
    assert missing == []


def test_the_progress_line_shows_rows_read_and_their_rate() -> None:
    from headwater.cli import _rows_progress

    class Status:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def update(self, text: str) -> None:
            self.lines.append(text)

    status = Status()
    progress = _rows_progress(status, "ingest shop")
    progress._start("Extract headwater_shop")
    progress.update("orders", 120_000)
    assert status.lines[-1].startswith("ingest shop… read 120,000 rows (")
    assert status.lines[-1].endswith(" rows/s)")
    progress._start("Normalize headwater_shop")
    progress.update("orders", 999)  # normalize re-counts: not rows read
    assert status.lines[-1] == "ingest shop… normalize"
