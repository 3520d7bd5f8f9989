"""`headwater ingest --check` (the connection test) catches a wrong cursor or primary key.

Before, the check passed and the load failed later with a message about dlt's
internals. Real databases (a SQLite file and the local PostgreSQL) and real files.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from openpyxl import Workbook

from ingest.errors import IngestError
from ingest.sources import check_connection
from ingest.spec import SourceSpec

pytestmark = pytest.mark.integration

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


def _database_source(url: str, table: str, **entry: object) -> SourceSpec:
    return SourceSpec.model_validate(
        {
            "kind": "database",
            "connection": url,
            "tables": {"orders": {"source_table": table, **entry}},
        }
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def orders_table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(database URL, table name) of a table with id, updated_at and customer_id."""
    ddl = "create table {t} (id integer primary key, updated_at timestamp, customer_id integer)"
    if request.param == "sqlite":
        path = tmp_path / "shop.db"
        with sqlite3.connect(path) as connection:
            connection.execute(ddl.format(t="orders"))
        yield f"sqlite:///{path}", "orders"
        return
    table = f"orders_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as connection:
        connection.execute(sa.text(ddl.format(t=table)))
    try:
        yield PG_URL, table
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"drop table if exists {table}"))
        engine.dispose()


def test_declared_columns_that_exist_pass(orders_table: tuple[str, str]) -> None:
    url, table = orders_table
    check_connection(
        _database_source(
            url, table, write_disposition="merge", primary_key="id", cursor="updated_at"
        )
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"cursor": "updatedat"},
            "no column 'updatedat' for its cursor; did you mean 'updated_at'?",
        ),
        (
            {"cursor": "UPDATED_AT"},
            "no column 'UPDATED_AT' for its cursor; did you mean 'updated_at'?",
        ),
        (
            {"write_disposition": "merge", "primary_key": ["id", "customer"]},
            "no column 'customer' for its primary_key; did you mean 'customer_id'?",
        ),
        ({"cursor": "modified"}, "table 'orders': no column 'modified' for its cursor"),
    ],
)
def test_a_wrong_cursor_or_key_fails_the_check_naming_the_closest_column(
    orders_table: tuple[str, str], entry: dict[str, object], message: str
) -> None:
    url, table = orders_table
    with pytest.raises(IngestError) as caught:
        check_connection(_database_source(url, table, **entry))
    assert message in caught.value.message
    assert caught.value.hint == "fix the column names in the sources file"


def _write_files(folder: Path) -> dict[str, Path]:
    csv_path = folder / "spend.csv"
    csv_path.write_text("spend_date,channel,amount\n2026-01-01,web,1.5\n")
    jsonl_path = folder / "events.jsonl"
    jsonl_path.write_text(
        "\n" + json.dumps({"event_id": 1, "occurred_at": "2026-01-01", "page": {"url": "/"}}) + "\n"
    )
    json_path = folder / "events.json"
    json_path.write_text(json.dumps([{"event_id": 1, "occurred_at": "2026-01-01"}]))
    excel_path = folder / "suppliers.xlsx"
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "suppliers"
    sheet.append(["supplier_id", "name"])
    sheet.append([1, "Acme"])
    workbook.save(excel_path)
    return {"csv": csv_path, "jsonl": jsonl_path, "json": json_path, "excel": excel_path}


def _file_source(path: Path, **entry: object) -> SourceSpec:
    return SourceSpec.model_validate(
        {"kind": "file", "tables": {"t": {"path": str(path), **entry}}}
    )


@pytest.mark.parametrize(
    ("kind", "good", "bad", "suggestion"),
    [
        ("csv", {"primary_key": ["spend_date", "channel"]}, {"primary_key": ["date"]}, None),
        (
            "jsonl",
            {"cursor": "occurred_at", "primary_key": "page__url"},
            {"cursor": "occured_at"},
            "occurred_at",
        ),
        ("json", {"cursor": "occurred_at"}, {"primary_key": "eventid"}, "event_id"),
        ("excel", {"primary_key": "supplier_id"}, {"primary_key": "supplier"}, "supplier_id"),
    ],
)
def test_file_sources_check_the_columns_in_the_file_head(
    tmp_path: Path,
    kind: str,
    good: dict[str, object],
    bad: dict[str, object],
    suggestion: str | None,
) -> None:
    path = _write_files(tmp_path)[kind]
    check_connection(_file_source(path, **good))
    with pytest.raises(IngestError) as caught:
        check_connection(_file_source(path, **bad))
    assert caught.value.message.startswith("table 't': no column ")
    if suggestion:
        assert caught.value.message.endswith(f"did you mean {suggestion!r}?")


def test_an_unparseable_file_is_one_clear_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{not json\n")
    with pytest.raises(IngestError) as caught:
        check_connection(_file_source(broken, cursor="x"))
    assert caught.value.message.startswith(f"table 't': cannot parse {broken}: ")
    assert "\n" not in caught.value.message
