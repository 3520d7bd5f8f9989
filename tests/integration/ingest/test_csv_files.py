"""CSV files load as a database export means them: empty fields are NULL, t/f are booleans.

Real dlt loads of real files into both destinations (DuckDB and the local
PostgreSQL), with the CSV options of the sources file: delimiter, encoding,
header and NULL markers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.settings import Settings
from ingest.errors import SpecError
from ingest.runner import run_source
from ingest.spec import parse_sources
from tests.conftest import make_settings
from tests.integration.ingest.warehouses import warehouse_rows, warehouse_settings

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path, warehouse: str, request: pytest.FixtureRequest) -> Settings:
    return warehouse_settings(tmp_path, warehouse, request)


def _rows(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    return warehouse_rows(settings, "files", sql)


def _load(settings: Settings, folder: Path, tables: str) -> dict[str, int]:
    text = f"sources:\n  files:\n    kind: file\n    tables:\n{tables}"
    source = parse_sources(text.replace("{folder}", str(folder)), env={}).sources["files"]
    return run_source(settings, "files", source).rows


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_empty_fields_are_null_and_true_false_columns_are_booleans(
    tmp_path: Path, warehouse: str, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "people.csv").write_text(
        "id,name,active,score,flag_num\n1,Ana,t,1.5,1\n2,,f,,0\n3,NULL,true,2.0,1\n4,Bea,F,3.0,0\n"
    )
    settings = _settings(tmp_path, warehouse, request)
    rows = _load(
        settings,
        data,
        "      people: {path: '{folder}/people.csv', write_disposition: replace}\n",
    )
    assert rows == {"people": 4}
    loaded = _rows(
        settings, "select id, name, active, score, flag_num from {schema}.people order by id"
    )
    assert loaded == [
        (1, "Ana", True, 1.5, 1),
        (2, None, False, None, 0),
        (3, None, True, 2.0, 1),
        (4, "Bea", False, 3.0, 0),
    ]
    nulls = _rows(settings, "select count(*) from {schema}.people where name = ''")
    assert nulls == [(0,)]


def test_delimiter_encoding_header_and_null_markers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "städte.csv").write_bytes("1;Zürich;-\n2;Genève;42\n".encode("latin-1"))
    settings = make_settings(tmp_path)
    rows = _load(
        settings,
        data,
        "      towns:\n"
        "        path: '{folder}/städte.csv'\n"
        "        delimiter: ';'\n"
        "        encoding: latin-1\n"
        "        header: false\n"
        "        null_values: '-'\n"
        "        write_disposition: replace\n",
    )
    assert rows == {"towns": 2}
    assert _rows(
        settings, "select column_1, column_2, column_3 from {schema}.towns order by 1"
    ) == [
        (1, "Zürich", None),
        (2, "Genève", 42),
    ]


@pytest.mark.parametrize(
    ("entry", "where", "message"),
    [
        (
            "{path: x.jsonl, delimiter: ';'}",
            "s.yml:2: sources.files: table 't': ",
            "delimiter, encoding, header and null_values are CSV options",
        ),
        (
            "{path: x.csv, encoding: klingon-8}",
            "s.yml:2: sources.files: table 't': ",
            "unknown encoding 'klingon-8'",
        ),
        ("{path: x.csv, delimiter: ';;'}", "s.yml:5: ", "at most 1 character"),
    ],
)
def test_csv_options_are_validated(entry: str, where: str, message: str) -> None:
    text = f"sources:\n  files:\n    kind: file\n    tables:\n      t: {entry}\n"
    with pytest.raises(SpecError) as caught:
        parse_sources(text, "s.yml", env={})
    assert caught.value.message.startswith(where)
    assert message in caught.value.message
