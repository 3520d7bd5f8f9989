from __future__ import annotations

from pathlib import Path

import pytest

from headwater.settings import PROJECT_ROOT
from ingest.errors import IngestError, SpecError
from ingest.spec import TableSpec, load_sources, parse_sources

pytestmark = pytest.mark.unit

VALID = """\
sources:
  shop:
    kind: database
    connection: postgresql://reader:${SHOP_PASSWORD}@db/shop
    tables:
      orders: {write_disposition: merge, primary_key: id, cursor: updated_at}
      customers: {primary_key: [id, region]}
  web:
    kind: file
    tables:
      events: {path: "${HOME_DIR:-/data}/events.jsonl", cursor: ts, lag: 60}
"""


def test_valid_file_parses_with_environment_interpolated() -> None:
    spec = parse_sources(VALID, "s.yml", env={"SHOP_PASSWORD": "pw"})
    shop = spec.sources["shop"]
    assert shop.connection == "postgresql://reader:pw@db/shop"
    assert shop.tables["orders"].write_disposition == "merge"
    assert shop.tables["customers"].primary_key == ("id", "region")
    assert shop.tables["customers"].write_disposition is None
    assert shop.tables["customers"].resolved("customers") == ("merge", ("id", "region"))
    web = spec.sources["web"]
    assert web.tables["events"].path == "/data/events.jsonl"
    assert web.file_format("events") == "jsonl"


def test_missing_environment_variable_names_it() -> None:
    with pytest.raises(
        SpecError,
        match=r"s\.yml:4: sources\.shop\.connection: environment variable SHOP_PASSWORD is not set",
    ):
        parse_sources(VALID, "s.yml", env={})


def test_values_are_validated_after_interpolation() -> None:
    text = (
        "sources:\n  files:\n    kind: file\n    tables:\n"
        "      events: {path: '${EVENTS_FILE}'}\n"
        "  db:\n    kind: database\n    connection: '${DB_URL:-}'\n    tables: {t: {}}\n"
    )
    spec = parse_sources(text, "s.yml", env={"EVENTS_FILE": "/x/e.csv", "DB_URL": "sqlite://"})
    assert spec.sources["files"].file_format("events") == "csv"
    with pytest.raises(SpecError, match=r"s\.yml:6: sources\.db: a 'database' source needs"):
        parse_sources(text, "s.yml", env={"EVENTS_FILE": "/x/e.csv"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "sources:\n  shop:\n    kind: databse\n    tables: {a: {}}\n",
            r"s\.yml:3: sources\.shop\.kind: .*'database'.*\(got 'databse'\)",
        ),
        (
            "sources:\n  shop:\n    kind: database\n    connection: sqlite://\n"
            "    tables:\n      orders:\n        write_disposition: upsert\n",
            r"s\.yml:7: sources\.shop\.tables\.orders\.write_disposition: .*\(got 'upsert'\)",
        ),
        (
            "sources:\n  shop:\n    kind: database\n    connection: sqlite://\n"
            "    tables:\n      orders:\n        write_disposition: merge\n",
            r"s\.yml:6: sources\.shop\.tables\.orders: "
            r"write_disposition 'merge' needs a primary_key",
        ),
        (
            "sources:\n  shop:\n    kind: database\n    tables:\n      orders: {}\n",
            r"s\.yml:2: sources\.shop: a 'database' source needs a 'connection' URL",
        ),
        (
            "sources:\n  files:\n    kind: file\n    tables:\n      a: {path: x.parquet}\n",
            r"s\.yml:2: sources\.files: table 'a': cannot tell the format",
        ),
        (
            "sources:\n  shop:\n    kind: database\n"
            "    conection: sqlite://\n    tables: {a: {}}\n",
            r"s\.yml:4: sources\.shop\.conection: unknown field",
        ),
        (
            "sources:\n  Shop-1:\n    kind: file\n    tables: {a: {path: a.csv}}\n",
            r"s\.yml:1: sources: .*source name 'Shop-1'",
        ),
        ("sources: {}\n", r"s\.yml:1: sources: .*at least 1 item"),
        ("sources:\n  shop: [\n", r"s\.yml:3: not valid YAML"),
        ("", r"s\.yml: the file is empty"),
        ("- a\n- b\n", r"s\.yml:1: expected a mapping"),
    ],
)
def test_errors_name_file_line_and_problem(text: str, expected: str) -> None:
    with pytest.raises(SpecError, match=expected):
        parse_sources(text, "s.yml", env={})


def test_every_error_is_reported_at_once() -> None:
    text = (
        "sources:\n  a:\n    kind: nope\n    tables: {t: {}}\n"
        "  b:\n    kind: file\n    tables: {t: {path: t.csv, write_disposition: x}}\n"
    )
    with pytest.raises(SpecError) as info:
        parse_sources(text, "s.yml", env={})
    lines = str(info.value).splitlines()
    assert any(line.startswith("s.yml:3: sources.a.kind") for line in lines)
    assert any(line.startswith("s.yml:7: sources.b.tables.t.write_disposition") for line in lines)


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_sources(tmp_path / "nope.yml")
    assert "sources file not found" in info.value.message
    assert info.value.hint is not None and "HEADWATER_SOURCES_FILE" in info.value.hint


def test_shipped_sources_file_is_valid() -> None:
    spec = load_sources(PROJECT_ROOT / "ingest" / "sources.yml", env={"HEADWATER_HOME": "/h"})
    assert set(spec.sources) == {"shop", "web", "marketing", "suppliers"}
    assert spec.sources["shop"].connection == "sqlite:////h/sample/shop.db"
    for source in spec.sources.values():
        for table in source.tables.values():
            assert table.write_disposition in {"merge", "replace", "append"}


def test_relative_file_paths_resolve_against_the_sources_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project" / "ingest"
    folder.mkdir(parents=True)
    sources = folder / "sources.yml"
    sources.write_text(
        "sources:\n"
        "  files:\n"
        "    kind: file\n"
        "    tables:\n"
        "      spend: {path: data/spend.csv}\n"
        "      events: {path: ../events.jsonl}\n"
        "      absolute: {path: /srv/data/absolute.csv}\n"
        "      home: {path: ~/exports/home.csv}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    tables = load_sources(Path("../project/ingest/sources.yml")).sources["files"].tables
    assert tables["spend"].path == str(folder / "data" / "spend.csv")
    assert Path(tables["events"].path or "").resolve() == tmp_path / "project" / "events.jsonl"
    assert tables["absolute"].path == "/srv/data/absolute.csv"
    assert tables["home"].path == str(tmp_path / "me" / "exports" / "home.csv")


DB = "sources:\n  shop:\n    kind: database\n    connection: sqlite://\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            DB + "    connection: postgresql://db/x\n    tables: {a: {}}\n",
            "s.yml:5: sources.shop: duplicate key 'connection' (first at line 4); keep one",
        ),
        (
            DB + "    tables:\n      orders: {}\n      orders: {cursor: x}\n",
            "s.yml:7: sources.shop.tables: duplicate key 'orders' (first at line 6); keep one",
        ),
        (
            DB + "    tables:\n      Orders: {}\n",
            "s.yml:5: sources.shop.tables: table name 'Orders' must be lower case letters, "
            "digits and underscores; to load it, name it in lower case and map the original: "
            "orders: {source_table: Orders}",
        ),
        (
            DB + "    tables:\n      orders: yes\n",
            "s.yml:6: sources.shop.tables.orders: expected a mapping of settings, "
            "e.g. {primary_key: id}",
        ),
    ],
)
def test_mistakes_are_shown_with_what_to_do(text: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_sources(text, "s.yml", env={})
    assert caught.value.message == expected
    assert "TableSpec" not in caught.value.message


def test_an_empty_table_entry_means_all_defaults() -> None:
    spec = parse_sources(DB + "    tables:\n      orders:\n      customers:\n", env={})
    tables = spec.sources["shop"].tables
    assert set(tables) == {"orders", "customers"}
    assert tables["orders"].write_disposition is None
    assert tables["orders"].primary_key == ()
    assert tables["orders"].resolved("orders") == ("replace", ())


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${URL:-sqlite:///${HOME_DIR}/shop.db}", {"HOME_DIR": "/h"}, "sqlite:////h/shop.db"),
        ("${URL:-sqlite:///${UNSET}/shop.db}", {"URL": "postgresql://db/x"}, "postgresql://db/x"),
        ("postgresql://u:${PW}@db/x", {"PW": "p${A}ss"}, "postgresql://u:p${A}ss@db/x"),
        ("sqlite:///costs $5 ${", {}, "sqlite:///costs $5 ${"),
        ("sqlite:///pre-${A:-}-post", {}, "sqlite:///pre--post"),
    ],
)
def test_references_expand_once_and_environment_values_are_never_expanded_again(
    value: str, env: dict[str, str], expected: str
) -> None:
    text = f'sources:\n  shop:\n    kind: database\n    connection: "{value}"\n'
    spec = parse_sources(text + "    tables: {a: {}}\n", env=env)
    assert spec.sources["shop"].connection == expected


@pytest.mark.parametrize(
    ("entry", "reflected", "expected"),
    [
        ({}, (), ("replace", ())),
        ({}, ("id",), ("merge", ("id",))),
        ({"primary_key": "code"}, ("id",), ("merge", ("code",))),
        ({"cursor": "updated_at"}, ("id",), ("merge", ("id",))),
        ({"write_disposition": "append", "cursor": "at"}, (), ("append", ())),
        ({"write_disposition": "replace"}, ("id",), ("replace", ("id",))),
    ],
)
def test_defaults_never_duplicate_rows(
    entry: dict[str, object], reflected: tuple[str, ...], expected: tuple[str, tuple[str, ...]]
) -> None:
    assert TableSpec.model_validate(entry).resolved("t", reflected) == expected


def test_a_cursor_without_any_key_must_say_append() -> None:
    with pytest.raises(IngestError) as caught:
        TableSpec.model_validate({"cursor": "updated_at"}).resolved("events")
    assert "table 'events' has a cursor but no primary key" in caught.value.message
    assert caught.value.hint == "declare primary_key, or set write_disposition: append"


def one_database(connection: str) -> str:
    head = "sources:\n  shop:\n    kind: database\n"
    return f"{head}    connection: '{connection}'\n    tables: {{t: }}\n"


@pytest.mark.parametrize(
    "connection",
    [
        "postgresql://reader:hunter2@db/shop",
        "mysql+pymysql://root:pa${X}ss@db/shop",
        "postgresql://reader:${PW:-fallback}@db/shop",
    ],
)
def test_a_clear_text_password_is_refused_without_showing_it(connection: str) -> None:
    text = one_database(connection)
    with pytest.raises(SpecError) as info:
        parse_sources(text, "s.yml", env={"X": "x", "PW": "p"})
    message = str(info.value)
    assert message.startswith("s.yml:4: sources.shop.connection: the connection holds a clear-text")
    assert "${NAME_PASSWORD}" in message
    for secret in ("hunter2", "pa", "fallback"):
        assert f":{secret}" not in message


@pytest.mark.parametrize(
    "connection",
    [
        "postgresql://reader:${SHOP_PASSWORD}@db/shop",
        "postgresql://reader:${SHOP_PASSWORD:-}@db:5432/shop",
        "postgresql://reader@db:5432/shop",
        "${SHOP_URL}",
        "sqlite:///data/shop.db",
    ],
)
def test_passwords_from_the_environment_are_accepted(connection: str) -> None:
    text = one_database(connection)
    env = {"SHOP_PASSWORD": "pw", "SHOP_URL": "postgresql://u:p@db/x"}
    assert parse_sources(text, "s.yml", env=env).sources["shop"].connection
