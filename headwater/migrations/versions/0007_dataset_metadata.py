"""Dataset metadata: name, owner, tags, SQL, size, loads and builds, freshness, tests.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

DATASET_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("fqn", sa.String(1024)),
    ("dbt_unique_id", sa.String(512)),
    ("dbt_source", sa.String(512)),
    ("owner", sa.String(255)),
    ("tags", sa.JSON()),
    ("materialization", sa.String(32)),
    ("raw_sql", sa.Text()),
    ("compiled_sql", sa.Text()),
    ("size_bytes", sa.BigInteger()),
    ("source_kind", sa.String(32)),
    ("origin", sa.Text()),
    ("last_loaded_at", sa.DateTime(timezone=True)),
    ("last_built_at", sa.DateTime(timezone=True)),
    ("last_build_status", sa.String(16)),
    ("freshness_warn_after", sa.Integer()),
    ("freshness_error_after", sa.Integer()),
    ("fresh_as_of", sa.DateTime(timezone=True)),
    ("test_results", sa.JSON()),
)
COLUMN_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("tests", sa.JSON()),
    ("is_primary_key", sa.Boolean()),
)


def upgrade() -> None:
    # Nullable additions only: every existing row stays as it is until the next refresh.
    # Plain ALTER TABLE (no batch copy): on SQLite, re-creating ``datasets`` would
    # cascade-delete the columns and lineage edges that point at it.
    for name, type_ in DATASET_COLUMNS:
        op.add_column("datasets", sa.Column(name, type_, nullable=True))
    for name, type_ in COLUMN_COLUMNS:
        op.add_column("dataset_columns", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMN_COLUMNS):
        op.drop_column("dataset_columns", name)
    for name, _ in reversed(DATASET_COLUMNS):
        op.drop_column("datasets", name)
