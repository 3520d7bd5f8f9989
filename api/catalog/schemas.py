"""Wire types of the catalog domain."""

from __future__ import annotations

from datetime import datetime

import msgspec


class ColumnOut(msgspec.Struct, rename="camel"):
    name: str
    data_type: str
    position: int
    is_nullable: bool | None
    description: str | None


class DatasetOut(msgspec.Struct, rename="camel"):
    """A dataset with its columns and the names of its direct lineage neighbours."""

    id: int
    name: str
    kind: str
    schema_name: str
    table_name: str
    description: str | None
    row_count: int | None
    updated_at: datetime
    columns: list[ColumnOut]
    upstream: list[str]
    """Names of the datasets this one is built from."""
    downstream: list[str]
    """Names of the datasets built from this one."""
