from __future__ import annotations

from pathlib import Path

import pytest

from ingest.spec import SourceSpec
from orchestration.origins import describe, source_origins
from tests.conftest import make_settings

pytestmark = pytest.mark.unit


def test_database_tables_queries_and_columns_never_show_credentials() -> None:
    spec = SourceSpec.model_validate(
        {
            "kind": "database",
            "description": "The shop.",
            "connection": "postgresql://shop:s3cret@db.example.com:5432/shop?sslmode=require",
            "tables": {
                "orders": {"primary_key": "id"},
                "clients": {"source_table": "Customers", "columns": ["id", "email"]},
                "big_orders": {"query": "select *\n  from orders where total > 100"},
            },
        }
    )
    origin = describe(spec)
    assert (origin.kind, origin.description) == ("database", "The shop.")
    where = "postgresql://db.example.com:5432/shop"
    assert origin.origin_of("orders") == f"table orders of {where}"
    assert origin.origin_of("clients") == f"table Customers (id, email) of {where}"
    assert origin.origin_of("big_orders") == (
        f"query on {where}: select * from orders where total > 100"
    )
    assert origin.origin_of("found_later") == f"table found_later of {where}"
    texts = " ".join(origin.tables.values())
    assert "s3cret" not in texts and "shop@" not in texts and "sslmode" not in texts


def test_files_endpoints_and_collections() -> None:
    files = describe(
        SourceSpec.model_validate(
            {
                "kind": "file",
                "tables": {
                    "spend": {"path": "/data/spend.csv"},
                    "suppliers": {"path": "/data/s.xlsx", "sheet": "suppliers"},
                },
            }
        )
    )
    assert files.origin_of("spend") == "file /data/spend.csv"
    assert files.origin_of("suppliers") == "file /data/s.xlsx, sheet suppliers"
    rest = describe(
        SourceSpec.model_validate(
            {
                "kind": "rest_api",
                "client": {"base_url": "https://api.example.com/v1/?api_key=abc"},
                "tables": {
                    "orders": {},
                    "refunds": {"endpoint": {"path": "payments/refunds", "method": "POST"}},
                    "users": {"endpoint": "people"},
                },
            }
        )
    )
    assert rest.origin_of("orders") == "GET https://api.example.com/v1/orders"
    assert rest.origin_of("refunds") == "POST https://api.example.com/v1/payments/refunds"
    assert rest.origin_of("users") == "GET https://api.example.com/v1/people"
    mongo = describe(
        SourceSpec.model_validate(
            {"kind": "mongodb", "connection": "mongodb://app:pw@mongo:27017/crm", "tables": {}}
        )
    )
    assert mongo.origin_of("contacts") == "collection contacts of mongodb://mongo:27017/crm"


def test_the_sample_sources_are_described(tmp_path: Path) -> None:
    origins = source_origins(make_settings(tmp_path))
    assert set(origins) == {"shop", "web", "marketing", "suppliers"}
    assert origins["shop"].kind == "database"
    assert origins["shop"].origin_of("orders") == (
        f"table orders of sqlite:///{tmp_path.resolve()}/sample/shop.db"
    )
    assert origins["web"].origin_of("events") == f"file {tmp_path.resolve()}/sample/events.jsonl"


def test_unreadable_declarations_give_no_origins(tmp_path: Path) -> None:
    broken = tmp_path / "sources.yml"
    broken.write_text("sources:\n  shop: {kind: nope}\n")
    assert source_origins(make_settings(tmp_path, sources_file=broken)) == {}
