from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from api.auth.schemas import LoginRequest, LoginResponse
from api.catalog.schemas import ColumnOut, DatasetOut
from api.health.schemas import CheckResult, HealthChecks, HealthResponse
from api.schemas import ErrorResponse, Page

pytestmark = pytest.mark.unit


def test_login_request_reads_the_documented_body() -> None:
    body = msgspec.json.decode(b'{"email": "a@b.co", "password": "pw"}', type=LoginRequest)
    assert (body.email, body.password) == ("a@b.co", "pw")


def test_login_request_requires_both_fields_and_ignores_extras() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"email": "a@b.co"}', type=LoginRequest)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"email": "a@b.co", "password": ""}', type=LoginRequest)
    body = msgspec.json.decode(
        b'{"email": "a@b.co", "password": "x", "rememberMe": true}', type=LoginRequest
    )
    assert body.password == "x"


def test_login_response_is_camel_case() -> None:
    wire = msgspec.to_builtins(LoginResponse(access_token="t", expires_in=3600))
    assert wire == {"accessToken": "t", "expiresIn": 3600, "tokenType": "bearer"}


def test_dataset_page_is_camel_case_throughout() -> None:
    dataset = DatasetOut(
        id=1,
        name="marts.orders",
        kind="model",
        schema_name="marts",
        table_name="orders",
        description=None,
        row_count=10,
        updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        columns=[
            ColumnOut(
                name="id", data_type="INTEGER", position=1, is_nullable=False, description=None
            )
        ],
        upstream=["staging.stg_orders"],
        downstream=[],
    )
    wire = msgspec.to_builtins(Page(items=[dataset], total=1, limit=50, offset=0))
    assert set(wire) == {"items", "total", "limit", "offset"}
    item = wire["items"][0]
    assert set(item) == {
        "id",
        "name",
        "kind",
        "schemaName",
        "tableName",
        "description",
        "rowCount",
        "updatedAt",
        "columns",
        "upstream",
        "downstream",
    }
    assert item["updatedAt"] == "2026-01-02T03:04:05Z"
    assert set(item["columns"][0]) == {
        "name",
        "dataType",
        "position",
        "isNullable",
        "description",
    }


def test_error_body_is_camel_case_and_omits_empty_fields() -> None:
    assert msgspec.to_builtins(ErrorResponse(status_code=404, detail="gone")) == {
        "statusCode": 404,
        "detail": "gone",
    }


def test_health_omits_redis_when_not_configured() -> None:
    ok = CheckResult("ok", "fine")
    wire = msgspec.to_builtins(
        HealthResponse(status="ok", checks=HealthChecks(metadata_store=ok, warehouse=ok))
    )
    assert set(wire["checks"]) == {"metadataStore", "warehouse"}
