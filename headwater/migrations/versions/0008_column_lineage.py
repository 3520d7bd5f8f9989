"""Column lineage: one row per column edge, and per analysed model its fingerprint and
what could not be resolved (the cache that makes a refresh incremental); schema
history: each change the catalog saw in a dataset's columns, with its downstream impact.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER (no batch rebuild): SQLite would otherwise recreate datasets and
    # cascade-delete its columns and edges.
    op.add_column("datasets", sa.Column("signature", sa.String(64), nullable=True))
    op.create_table(
        "column_lineage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("downstream_id", sa.Integer(), nullable=False),
        sa.Column("downstream_column", sa.String(255), nullable=True),
        sa.Column("upstream_id", sa.Integer(), nullable=False),
        sa.Column("upstream_column", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["downstream_id"],
            ["datasets.id"],
            name=op.f("fk_column_lineage_downstream_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["upstream_id"],
            ["datasets.id"],
            name=op.f("fk_column_lineage_upstream_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_column_lineage")),
    )
    op.create_index(
        "ix_column_lineage_downstream", "column_lineage", ["downstream_id", "downstream_column"]
    )
    op.create_index(
        "ix_column_lineage_upstream", "column_lineage", ["upstream_id", "upstream_column"]
    )
    op.create_table(
        "lineage_analyses",
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("unresolved", sa.JSON(), nullable=False),
        sa.Column("analysed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_lineage_analyses_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_lineage_analyses")),
    )

    op.create_table(
        "schema_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=True),
        sa.Column("dataset", sa.String(512), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("column", sa.String(255), nullable=True),
        sa.Column("old_name", sa.String(255), nullable=True),
        sa.Column("old_type", sa.String(255), nullable=True),
        sa.Column("new_type", sa.String(255), nullable=True),
        sa.Column("impact", sa.JSON(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_schema_events_dataset_id_datasets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_schema_events")),
    )
    op.create_index("ix_schema_events_dataset_id", "schema_events", ["dataset_id"])
    op.create_index("ix_schema_events_detected_at", "schema_events", ["detected_at"])


def downgrade() -> None:
    op.drop_index("ix_schema_events_detected_at", table_name="schema_events")
    op.drop_index("ix_schema_events_dataset_id", table_name="schema_events")
    op.drop_table("schema_events")
    op.drop_table("lineage_analyses")
    op.drop_index("ix_column_lineage_upstream", table_name="column_lineage")
    op.drop_index("ix_column_lineage_downstream", table_name="column_lineage")
    op.drop_table("column_lineage")
    op.drop_column("datasets", "signature")
