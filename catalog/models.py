"""Catalog tables: datasets, their columns, table and column lineage, schema history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from catalog.freshness import freshness_status
from headwater.db import Base, as_utc, utcnow

OUTSIDE_THE_WAREHOUSE = ("source", "destination")
"""Dataset kinds that are tables elsewhere: in a source system, or a load's destination."""


class Dataset(Base):
    """A table or view the platform knows: in a source system or in the warehouse."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    schema_name: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    row_count: Mapped[int | None] = mapped_column(BigInteger)
    """Exact (``count(*)``) for tables; None for views."""
    signature: Mapped[str | None] = mapped_column(String(64))
    """Key of everything stored about it: a refresh rewrites the datasets whose key moved."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    fqn: Mapped[str | None] = mapped_column(String(1024))
    """``database.schema.table`` in the warehouse."""
    dbt_unique_id: Mapped[str | None] = mapped_column(String(512))
    dbt_source: Mapped[str | None] = mapped_column(String(512))
    """``source_name.table`` when a dbt ``source()`` declares this table."""
    owner: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[list[str] | None] = mapped_column(JSON)
    materialization: Mapped[str | None] = mapped_column(String(32))
    raw_sql: Mapped[str | None] = mapped_column(Text)
    compiled_sql: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    source_kind: Mapped[str | None] = mapped_column(String(32))
    origin: Mapped[str | None] = mapped_column(Text)
    """Where a raw or source table is read from in its source system."""
    last_loaded_at: Mapped[datetime | None]
    last_built_at: Mapped[datetime | None]
    last_build_status: Mapped[str | None] = mapped_column(String(16))
    freshness_warn_after: Mapped[int | None]
    """Seconds (dbt source freshness ``warn_after``)."""
    freshness_error_after: Mapped[int | None]
    fresh_as_of: Mapped[datetime | None]
    test_results: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """Latest dbt test results: ``pass``/``fail``/``warn``/``error``/``skipped`` counts,
    ``failing`` and ``warning`` test names, ``ran_at``."""

    columns: Mapped[list[DatasetColumn]] = relationship(
        back_populates="dataset",
        cascade="all, delete-orphan",
        order_by="DatasetColumn.position",
        passive_deletes=True,
    )

    def freshness(self, now: datetime | None = None) -> str:
        """``fresh``, ``warn``, ``stale`` or ``unknown``, judged now (not at refresh time)."""
        return freshness_status(
            as_utc(self.fresh_as_of), self.freshness_warn_after, self.freshness_error_after, now
        )


class DatasetColumn(Base):
    __tablename__ = "dataset_columns"
    __table_args__ = (
        UniqueConstraint("dataset_id", "name", name="uq_dataset_columns_dataset_id_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    data_type: Mapped[str] = mapped_column(String(255))
    position: Mapped[int]
    is_nullable: Mapped[bool | None]
    description: Mapped[str | None] = mapped_column(Text)

    tests: Mapped[list[str] | None] = mapped_column(JSON)
    """Names of the dbt tests on this column."""
    is_primary_key: Mapped[bool | None]

    dataset: Mapped[Dataset] = relationship(back_populates="columns")


class LineageEdge(Base):
    """``upstream`` feeds ``downstream``; ``origin`` says who told us (dbt or dlt)."""

    __tablename__ = "lineage_edges"
    __table_args__ = (Index("ix_lineage_edges_downstream_id", "downstream_id"),)

    upstream_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    downstream_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    origin: Mapped[str] = mapped_column(String(16))


class ColumnLineage(Base):
    """``upstream.upstream_column`` feeds ``downstream.downstream_column`` (None: a filter
    edge, which shapes every column of ``downstream``), as ``kind`` (copy, rename,
    transform, aggregate, filter)."""

    __tablename__ = "column_lineage"
    __table_args__ = (
        Index("ix_column_lineage_downstream", "downstream_id", "downstream_column"),
        Index("ix_column_lineage_upstream", "upstream_id", "upstream_column"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    downstream_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    downstream_column: Mapped[str | None] = mapped_column(String(255))
    upstream_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    upstream_column: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))


class LineageAnalysis(Base):
    """The last analysis of a model's compiled SQL: its key (a model whose SQL and
    upstream schemas give the same key is not analysed again) and what stayed
    unresolved (column or ``*`` → why)."""

    __tablename__ = "lineage_analyses"

    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    fingerprint: Mapped[str] = mapped_column(String(64))
    unresolved: Mapped[dict[str, str]] = mapped_column(JSON)
    analysed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchemaEvent(Base):
    """A change the catalog saw in a dataset's columns, with the downstream columns it
    reaches (``impact``: ``[{"dataset", "column", "depth"}]``)."""

    __tablename__ = "schema_events"
    __table_args__ = (
        Index("ix_schema_events_dataset_id", "dataset_id"),
        Index("ix_schema_events_detected_at", "detected_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    dataset: Mapped[str] = mapped_column(String(512))
    change: Mapped[str] = mapped_column(String(16))
    column: Mapped[str | None] = mapped_column(String(255))
    old_name: Mapped[str | None] = mapped_column(String(255))
    old_type: Mapped[str | None] = mapped_column(String(255))
    new_type: Mapped[str | None] = mapped_column(String(255))
    impact: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
