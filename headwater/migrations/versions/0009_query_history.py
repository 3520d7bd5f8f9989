"""Ad hoc query history: each query asked through the API, by whom, and how it went.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "query_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sql", sa.Text(), nullable=False),
        sa.Column("dialect", sa.String(16), nullable=True),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=True),
        sa.Column("elapsed_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_query_history_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_query_history")),
    )
    op.create_index("ix_query_history_created_at", "query_history", ["created_at"])
    op.create_index("ix_query_history_user_created", "query_history", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_query_history_user_created", table_name="query_history")
    op.drop_index("ix_query_history_created_at", table_name="query_history")
    op.drop_table("query_history")
