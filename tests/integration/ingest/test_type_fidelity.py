"""Types survive the Arrow-native path: decimals keep precision and scale, time zones
stay, JSON is JSON and booleans are booleans, from PostgreSQL and MariaDB alike, into
both destinations. Real servers, own databases created and dropped."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from ingest.runner import run_source
from ingest.spec import parse_sources
from tests.integration.ingest.warehouses import (
    SOURCE_SERVERS,
    WAREHOUSES,
    source_database,
    warehouse_rows,
    warehouse_settings,
)

pytestmark = pytest.mark.integration

TABLES = {
    "postgres": """
        create table payments (
            id bigint primary key, amount numeric(12,2), paid_at timestamptz,
            booked_on timestamp, settled boolean, details jsonb, ref uuid, note text)""",
    "mysql": """
        create table payments (
            id bigint primary key, amount decimal(12,2), paid_at timestamp(6) null,
            booked_on datetime, settled boolean, details json, ref char(36), note text)""",
}
REF = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.fixture(params=sorted(SOURCE_SERVERS))
def source_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with source_database(request.param, "hw_types") as url:
        fill(url, request.param)
        yield url


def fill(url: str, server: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(TABLES[server]))
        connection.execute(
            sa.text(
                "insert into payments values "
                "(1, 1234567890.12, '2026-03-01 10:00:00', '2026-03-01 09:00:00', true, "
                ":details, :ref, 'ok'), (2, -0.05, null, null, false, null, null, null)"
            ),
            {"details": json.dumps({"card": "visa", "tags": [1, 2]}), "ref": str(REF)},
        )
    engine.dispose()


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_types_are_kept_exactly(
    source_url: str, warehouse: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = warehouse_settings(tmp_path, warehouse, request)
    text = f"sources:\n  pay:\n    kind: database\n    connection: {source_url}\n"
    text += "    tables:\n      payments:\n"
    run_source(settings, "pay", parse_sources(text, env={}).sources["pay"])

    types = dict(
        warehouse_rows(
            settings,
            "pay",
            "select column_name, data_type from information_schema.columns "
            "where table_schema = '{schema}' and table_name = 'payments'",
        )
    )
    if warehouse == "duckdb":
        assert types["amount"] == "DECIMAL(12,2)"
        assert types["paid_at"] == "TIMESTAMP WITH TIME ZONE"
        assert types["booked_on"] == "TIMESTAMP"
        assert types["settled"] == "BOOLEAN"
        assert types["details"] == "JSON"
    else:
        assert types["amount"] == "numeric"
        assert types["paid_at"] == "timestamp with time zone"
        assert types["booked_on"] == "timestamp without time zone"
        assert types["settled"] == "boolean"
        assert types["details"] in ("json", "jsonb")  # parquet through ADBC makes json

    rows = warehouse_rows(
        settings,
        "pay",
        "select id, amount, paid_at, settled, details, ref, note "
        "from {schema}.payments order by id",
    )
    first, second = rows
    assert first[1] == Decimal("1234567890.12")
    assert first[2] == dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.UTC)
    assert first[3] is True
    details = first[4] if isinstance(first[4], dict) else json.loads(first[4])
    assert details == {"card": "visa", "tags": [1, 2]}
    assert str(first[5]) == str(REF)
    assert second[1:] == (Decimal("-0.05"), None, False, None, None, None)
