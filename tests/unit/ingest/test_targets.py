"""Safe targets: file sources stay in the data directories, connections away from
Headwater's own state and from cloud-metadata addresses. Every refusal says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.settings import Settings
from ingest.spec import parse_sources
from ingest.targets import UnsafeTarget, check_connection_target, check_path, check_targets
from tests.conftest import make_settings

pytestmark = pytest.mark.unit

OUTSIDE = "lies outside the data directories"
OWN_STATE = "is Headwater's own state, not a source"
METADATA = "is a link-local or cloud-metadata address"
OWN_DATABASE = "points at Headwater's own database"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def settings(home: Path) -> Settings:
    return make_settings(home)


def touch(path: Path, text: str = "id\n1\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- file paths --------------------------------------------------------------------


def test_files_in_home_and_project_are_accepted(settings: Settings, home: Path) -> None:
    check_path(settings, str(touch(home / "sample" / "events.csv")), "path")
    check_path(settings, str(settings.project_dir / "ingest" / "sources.yml"), "path")


def test_a_file_outside_the_data_directories_is_refused(settings: Settings, tmp_path: Path) -> None:
    outside = touch(tmp_path / "elsewhere" / "orders.csv")
    with pytest.raises(UnsafeTarget) as info:
        check_path(settings, str(outside), "table 'orders': path")
    text = str(info.value)
    assert f"table 'orders': path {str(outside)!r} {OUTSIDE}" in text
    assert str(settings.home_dir) in text  # says which directories are allowed
    assert "HEADWATER_DATA_DIRS" in text  # and how to allow another
    with pytest.raises(UnsafeTarget, match=OUTSIDE):
        check_path(settings, "/etc/passwd", "path")


def test_dot_dot_does_not_climb_out_of_a_data_directory(settings: Settings, home: Path) -> None:
    touch(home.parent / "secret.csv")
    with pytest.raises(UnsafeTarget, match=OUTSIDE):
        check_path(settings, str(home / "sample" / ".." / ".." / "secret.csv"), "path")


def test_configured_data_dirs_replace_the_defaults(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = make_settings(home, data_dirs=[data])
    check_path(settings, str(touch(data / "nested" / "orders.csv")), "path")
    for refused in (touch(home / "sample" / "events.csv"), settings.project_dir / "README.md"):
        with pytest.raises(UnsafeTarget, match=OUTSIDE):
            check_path(settings, str(refused), "path")


def test_data_dirs_from_the_environment_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, home: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("HEADWATER_DATA_DIRS", f"{tmp_path / 'a'}, {tmp_path / 'b'}")
    settings = Settings(_env_file=None, home=home)
    check_path(settings, str(touch(tmp_path / "b" / "x.csv")), "path")
    with pytest.raises(UnsafeTarget, match=OUTSIDE):
        check_path(settings, str(touch(tmp_path / "c" / "x.csv")), "path")


def test_a_symlink_that_escapes_the_data_directories_is_refused(
    settings: Settings, home: Path, tmp_path: Path
) -> None:
    outside = touch(tmp_path / "elsewhere" / "orders.csv")
    link = home / "sample" / "orders.csv"
    link.parent.mkdir()
    link.symlink_to(outside)
    with pytest.raises(UnsafeTarget, match=OUTSIDE):
        check_path(settings, str(link), "path")

    folder_link = home / "linked"
    folder_link.symlink_to(outside.parent, target_is_directory=True)
    with pytest.raises(UnsafeTarget, match=OUTSIDE):
        check_path(settings, str(folder_link / "orders.csv"), "path")


def test_a_symlink_inside_the_data_directories_is_followed(settings: Settings, home: Path) -> None:
    real = touch(home / "exports" / "orders.csv")
    link = home / "orders.csv"
    link.symlink_to(real)
    check_path(settings, str(link), "path")


@pytest.mark.parametrize(
    "own",
    [
        "warehouse.duckdb",
        "secret_key",
        "secret_keys",
        "headwater.db",
        "headwater.db-wal",
        "dlt/headwater_shop/state.json",
        "dlt",
        "logs/headwater.log",
        "dagster/storage/runs.db",
    ],
)
def test_headwaters_own_files_are_refused_though_inside_home(
    settings: Settings, home: Path, own: str
) -> None:
    target = home / own
    if own == "dlt":
        target.mkdir()
    else:
        touch(target, "x")
    with pytest.raises(UnsafeTarget) as info:
        check_path(settings, str(target), "table 'keys': path")
    assert OWN_STATE in str(info.value)


def test_own_files_are_refused_through_a_symlink(settings: Settings, home: Path) -> None:
    touch(home / "secret_keys", "key")
    link = home / "sample" / "keys.csv"
    link.parent.mkdir()
    link.symlink_to(home / "secret_keys")
    with pytest.raises(UnsafeTarget, match=OWN_STATE):
        check_path(settings, str(link), "path")


def test_a_warehouse_kept_in_the_project_is_refused(home: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    warehouse = touch(data / "wh.duckdb", "x")
    settings = make_settings(home, data_dirs=[data], warehouse_path=warehouse)
    with pytest.raises(UnsafeTarget, match=OWN_STATE):
        check_path(settings, str(warehouse), "path")


def test_the_metadata_store_is_refused_as_a_sqlite_source(settings: Settings) -> None:
    with pytest.raises(UnsafeTarget) as info:
        check_connection_target(settings, settings.metadata_url)
    assert f"database file {str(settings.home_dir / 'headwater.db')!r} {OWN_STATE}" in str(
        info.value
    )


def test_a_sqlite_source_in_home_is_accepted(settings: Settings, home: Path) -> None:
    check_connection_target(settings, f"sqlite:///{touch(home / 'sample' / 'shop.db', '')}")
    check_connection_target(settings, "sqlite://")  # in memory: reads no file


def test_the_metadata_store_is_refused_in_sqlite_uri_form(
    settings: Settings, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(home)  # e.g. the project directory, a default data directory
    with pytest.raises(UnsafeTarget):
        check_connection_target(settings, f"sqlite:///file:{home / 'headwater.db'}?uri=true")
    with pytest.raises(UnsafeTarget):
        check_connection_target(settings, f"sqlite:///file://{home / 'headwater.db'}?mode=ro")


def test_settings_and_version_control_files_are_refused(settings: Settings, home: Path) -> None:
    for name in (".env", ".env.production", ".git/config"):
        with pytest.raises(UnsafeTarget, match="settings or version-control file"):
            check_path(settings, str(home / name), "path")


# --- connection hosts --------------------------------------------------------------


@pytest.mark.parametrize(
    "connection",
    [
        "postgresql://u:pw@169.254.169.254:5432/db",
        "postgresql://u:pw@metadata.google.internal/db",
        "mysql+pymysql://u:pw@METADATA.google.internal./db",
        "postgresql://u:pw@[fe80::1]:5432/db",
        "postgresql://u:pw@[::ffff:169.254.169.254]/db",
        "postgresql://u:pw@[fd00:ec2::254]/db",
    ],
)
def test_cloud_metadata_and_link_local_hosts_are_refused(
    settings: Settings, connection: str
) -> None:
    with pytest.raises(UnsafeTarget) as info:
        check_connection_target(settings, connection)
    assert METADATA in str(info.value)
    assert "pw" not in str(info.value)


def test_the_metadata_store_database_is_refused(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, database_url="postgresql://postgres@127.0.0.1:5432/metastore"
    )
    for connection in (
        "postgresql://u:pw@localhost/metastore",  # localhost is 127.0.0.1, 5432 the default
        "postgresql+psycopg2://u:pw@127.0.0.1:5432/metastore",
    ):
        with pytest.raises(UnsafeTarget) as info:
            check_connection_target(settings, connection)
        assert f"{OWN_DATABASE} 'metastore'" in str(info.value)
        assert "pw" not in str(info.value)


def test_the_postgres_warehouse_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, warehouse="postgres", warehouse_dbname="lake")
    with pytest.raises(UnsafeTarget, match=f"{OWN_DATABASE} 'lake'"):
        check_connection_target(settings, "postgresql://u:pw@localhost:5432/lake")


def test_an_ordinary_database_is_accepted(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        database_url="postgresql://postgres@127.0.0.1:5432/metastore",
        warehouse="postgres",
        warehouse_dbname="lake",
    )
    check_connection_target(settings, "postgresql://u:pw@127.0.0.1:5432/shop")
    check_connection_target(settings, "postgresql://u:pw@127.0.0.1:5433/metastore")  # other server
    check_connection_target(settings, "mysql+pymysql://u:pw@127.0.0.1:5432/metastore")


def test_check_targets_names_the_source_and_table(settings: Settings, tmp_path: Path) -> None:
    outside = touch(tmp_path / "elsewhere" / "orders.csv")
    source = parse_sources(
        f"sources:\n  web:\n    kind: file\n    tables:\n      orders: {{path: '{outside}'}}\n",
        env={},
    ).sources["web"]
    with pytest.raises(UnsafeTarget) as info:
        check_targets(settings, "web", source)
    assert str(info.value).startswith(f"source 'web': table 'orders': path {str(outside)!r}")
    assert OUTSIDE in str(info.value)
