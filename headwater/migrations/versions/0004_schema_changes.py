"""Schema-change events of raw tables, recorded by every load.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(63), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("column_name", sa.String(255), nullable=True),
        sa.Column("change", sa.String(32), nullable=False),
        sa.Column("old_type", sa.String(64), nullable=True),
        sa.Column("new_type", sa.String(64), nullable=True),
        sa.Column("load_id", sa.String(64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_changes")),
    )
    op.create_index("ix_schema_changes_source", "schema_changes", ["source", "at"])


def downgrade() -> None:
    op.drop_index("ix_schema_changes_source", table_name="schema_changes")
    op.drop_table("schema_changes")
