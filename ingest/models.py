"""The tables ingest owns: stored sources (credentials encrypted) and the history of loads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from headwater.db import Base, utcnow
from headwater.secrets import ENCRYPTED


class StoredSource(Base):
    """A source written through the API or the CLI, validated like one in sources.yml.

    ``config`` is the spec without its secrets; ``secrets`` the encrypted JSON of
    the fields that hold them (the connection URL).
    """

    __tablename__ = "sources"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    secrets: Mapped[str | None] = mapped_column(Text, info={ENCRYPTED: True})
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SourceLoad(Base):
    """One table of one load: how many rows, where the cursor stood, how it ended."""

    __tablename__ = "source_loads"
    __table_args__ = (Index("ix_source_loads_table", "source", "table_name", "finished_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(63))
    table_name: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    load_id: Mapped[str | None] = mapped_column(String(64))
    cursor_value: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column()
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)


class SchemaChange(Base):
    """A change a load made to a raw table's schema: a table or column appeared, or a
    column's type changed (dlt keeps the new values in a variant column)."""

    __tablename__ = "schema_changes"
    __table_args__ = (Index("ix_schema_changes_source", "source", "at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(63))
    table_name: Mapped[str] = mapped_column(String(255))
    column_name: Mapped[str | None] = mapped_column(String(255))
    change: Mapped[str] = mapped_column(String(32))
    old_type: Mapped[str | None] = mapped_column(String(64))
    new_type: Mapped[str | None] = mapped_column(String(64))
    load_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceColumn(Base):
    """A column whose warehouse name differs from its name in the source (``CustomerID``
    arrives as ``customer_id``): the original, remembered and shown."""

    __tablename__ = "source_columns"
    __table_args__ = (
        UniqueConstraint("source", "table_name", "column_name", name="uq_source_columns_column"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(63))
    table_name: Mapped[str] = mapped_column(String(255))
    column_name: Mapped[str] = mapped_column(String(255))
    original_name: Mapped[str] = mapped_column(String(1024))
