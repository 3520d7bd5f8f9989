"""Baseline for the API benchmark: bare Litestar endpoints with no Headwater code.

    uvicorn benchmarks.bare_api:create_app --factory --loop uvloop --http httptools ...

``GET /bare/datasets`` answers a page of the same shape and about the same size as
``GET /api/catalog/datasets`` over :func:`sample_datasets`; ``GET /bare/me`` a user
like ``GET /api/users/me``. Both are prebuilt dicts, encoded on every request by
Litestar as any handler's return value is: the ceiling of a JSON endpoint served
this way.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get

DATASETS = 5
COLUMNS_PER_DATASET = 8
UPDATED_AT = "2025-01-01T00:00:00Z"
COLUMN_TYPES = ("BIGINT", "VARCHAR", "TIMESTAMP", "DECIMAL(18,2)", "BOOLEAN", "DATE")


def sample_datasets(
    count: int = DATASETS, columns: int = COLUMNS_PER_DATASET
) -> list[dict[str, Any]]:
    """Dataset-like records (snake_case, as the catalog tables hold them) with their columns."""
    return [
        {
            "name": f"marts.bench_table_{i}",
            "kind": "model",
            "schema_name": "marts",
            "table_name": f"bench_table_{i}",
            "description": f"Benchmark dataset {i}: one row per thing, rebuilt nightly",
            "row_count": 1_000 * (i + 1),
            "columns": [
                {
                    "name": f"column_{j}",
                    "data_type": COLUMN_TYPES[j % len(COLUMN_TYPES)],
                    "position": j + 1,
                    "is_nullable": j != 0,
                    "description": f"Column {j} of bench_table_{i}",
                }
                for j in range(columns)
            ],
        }
        for i in range(count)
    ]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def catalog_page(limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """The wire shape of a catalog page (camelCase) over :func:`sample_datasets`."""
    items = []
    for number, dataset in enumerate(sample_datasets(), start=1):
        item: dict[str, Any] = {_camel(k): v for k, v in dataset.items() if k != "columns"}
        item["id"] = number
        item["updatedAt"] = UPDATED_AT
        item["columns"] = [{_camel(k): v for k, v in c.items()} for c in dataset["columns"]]
        item["upstream"] = []
        item["downstream"] = []
        items.append(item)
    return {
        "items": items[offset : offset + limit],
        "total": len(items),
        "limit": limit,
        "offset": offset,
    }


PAGE = catalog_page()
ME = {
    "id": 1,
    "email": "bench-admin@example.com",
    "name": "Bench Admin",
    "role": "admin",
    "createdAt": UPDATED_AT,
    "lastLoginAt": UPDATED_AT,
}


@get("/bare/datasets")
async def datasets(limit: int = 50, offset: int = 0) -> dict[str, Any]:
    return PAGE


@get("/bare/me")
async def me() -> dict[str, Any]:
    return ME


def create_app() -> Litestar:
    return Litestar(route_handlers=[datasets, me], openapi_config=None, debug=False)
