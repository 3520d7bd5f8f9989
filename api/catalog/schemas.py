"""Wire types of the catalog domain.

The list answers with :class:`DatasetOut` (lean: no SQL text, no test names); one
dataset answers with :class:`DatasetDetailOut`, which adds them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Freshness = Literal["fresh", "warn", "stale", "unknown"]


class ColumnOut(msgspec.Struct, rename="camel"):
    name: str
    data_type: str
    position: int
    is_nullable: bool | None
    description: str | None


class ColumnDetailOut(ColumnOut, rename="camel"):
    tests: list[str]
    """Names of the dbt tests on this column (``unique``, ``not_null`` …)."""
    is_primary_key: bool | None
    """None when no primary key is known for the dataset."""


class DbtTestCountsOut(msgspec.Struct, rename="camel"):
    """The latest dbt test results of a dataset, counted by status."""

    passed: int
    failed: int
    warned: int
    errored: int
    skipped: int


class DbtTestResultsOut(DbtTestCountsOut, rename="camel"):
    failing: list[str]
    """Tests that failed or errored."""
    warning: list[str]
    ran_at: str | None
    """When the newest of these results was produced (dbt's ``generated_at``)."""


class FreshnessOut(msgspec.Struct, rename="camel"):
    """The expectation (dbt source ``freshness``) and the time it is judged by."""

    warn_after_seconds: int | None
    error_after_seconds: int | None
    as_of: datetime | None
    """Newest ``loaded_at_field`` value, else the last load."""


class _DatasetFields(msgspec.Struct, rename="camel"):
    id: int
    name: str
    kind: str
    """source, raw, staging, intermediate, mart, model, seed, snapshot (or table)."""
    schema_name: str
    table_name: str
    fqn: str | None
    """``database.schema.table`` in the warehouse."""
    description: str | None
    owner: str | None
    tags: list[str]
    materialization: str | None
    dbt_source: str | None
    """``source_name.table`` when a dbt ``source()`` declares this table."""
    source_kind: str | None
    row_count: int | None
    """Exact for tables; null for views."""
    size_bytes: int | None
    last_loaded_at: datetime | None
    last_built_at: datetime | None
    freshness: Freshness
    updated_at: datetime
    upstream: list[str]
    """Names of the datasets this one is built from."""
    downstream: list[str]
    """Names of the datasets built from this one."""


class DatasetOut(_DatasetFields, rename="camel"):
    """A dataset with its columns and the names of its direct lineage neighbours."""

    columns: list[ColumnOut]
    tests: DbtTestCountsOut | None


class DatasetDetailOut(_DatasetFields, rename="camel"):
    """One dataset in full: SQL, origin, column tests and keys, test names."""

    columns: list[ColumnDetailOut]
    tests: DbtTestResultsOut | None
    origin: str | None
    """Where a raw or source table is read from in its source system."""
    dbt_unique_id: str | None
    raw_sql: str | None
    compiled_sql: str | None
    last_build_status: str | None
    freshness_expectation: FreshnessOut | None
