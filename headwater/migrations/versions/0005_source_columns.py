"""Original names of source columns whose warehouse names were normalised.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_columns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(63), nullable=False),
        sa.Column("table_name", sa.String(255), nullable=False),
        sa.Column("column_name", sa.String(255), nullable=False),
        sa.Column("original_name", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_columns")),
        sa.UniqueConstraint("source", "table_name", "column_name", name="uq_source_columns_column"),
    )


def downgrade() -> None:
    op.drop_table("source_columns")
