from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from api.auth.schemas import LoginRequest, LoginResponse, TokenUser
from api.catalog.schemas import ColumnOut, DatasetOut, DbtTestCountsOut
from api.health.schemas import CheckResult, WarehouseCheck
from api.schemas import ErrorBody, ErrorResponse, Page

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
    user = TokenUser(id=1, email="a@b.co", role="viewer", name="Ana")
    response = LoginResponse(
        access_token="t", refresh_token="r", expires_in=900, refresh_expires_in=60, user=user
    )
    assert msgspec.to_builtins(response) == {
        "accessToken": "t",
        "refreshToken": "r",
        "expiresIn": 900,
        "refreshExpiresIn": 60,
        "tokenType": "bearer",
        "user": {"id": 1, "email": "a@b.co", "role": "viewer", "name": "Ana"},
    }


def test_dataset_page_is_camel_case_throughout() -> None:
    dataset = DatasetOut(
        id=1,
        name="marts.orders",
        kind="model",
        schema_name="marts",
        table_name="orders",
        fqn="warehouse.marts.orders",
        description=None,
        owner="finance",
        tags=["daily"],
        materialization="table",
        dbt_source=None,
        source_kind=None,
        row_count=10,
        size_bytes=None,
        last_loaded_at=None,
        last_built_at=datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC),
        freshness="unknown",
        updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        columns=[
            ColumnOut(
                name="id", data_type="INTEGER", position=1, is_nullable=False, description=None
            )
        ],
        upstream=["staging.stg_orders"],
        downstream=[],
        tests=DbtTestCountsOut(passed=2, failed=0, warned=0, errored=0, skipped=0),
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
        "fqn",
        "description",
        "owner",
        "tags",
        "materialization",
        "dbtSource",
        "sourceKind",
        "rowCount",
        "sizeBytes",
        "lastLoadedAt",
        "lastBuiltAt",
        "freshness",
        "updatedAt",
        "columns",
        "upstream",
        "downstream",
        "tests",
    }
    assert item["lastBuiltAt"] == "2026-01-02T03:00:00Z"
    assert item["tests"] == {"passed": 2, "failed": 0, "warned": 0, "errored": 0, "skipped": 0}
    assert item["updatedAt"] == "2026-01-02T03:04:05Z"
    assert set(item["columns"][0]) == {
        "name",
        "dataType",
        "position",
        "isNullable",
        "description",
    }


def test_error_body_has_one_shape_in_camel_case() -> None:
    body = ErrorBody(code="not_found", message="gone", request_id="abc")
    assert msgspec.to_builtins(ErrorResponse(error=body)) == {
        "error": {"code": "not_found", "message": "gone", "details": None, "requestId": "abc"}
    }


def test_warehouse_check_omits_unknown_times() -> None:
    assert msgspec.to_builtins(WarehouseCheck("missing", "no file")) == {
        "status": "missing",
        "detail": "no file",
    }
    assert msgspec.to_builtins(CheckResult("ok", "fine")) == {"status": "ok", "detail": "fine"}
