"""The tables orchestration owns: Headwater jobs, and their runs mirrored from Dagster.

``owner_id`` is a ``users.id`` (accounts are deactivated, never deleted); it is a
plain column so that this package never depends on the API's models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from headwater.db import Base, utcnow

RUN_STATUSES = ("queued", "running", "success", "failed", "cancelled")
FINISHED = frozenset({"success", "failed", "cancelled"})


class Job(Base):
    """A data job: load a source (its tables, or a query) into a destination, then build
    a dbt selection; on a schedule in its time zone, with its retry policy."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_jobs_owner_name"),
        Index("ix_jobs_source", "source"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(63))
    target: Mapped[str] = mapped_column(String(63), default="warehouse")
    query: Mapped[str | None] = mapped_column(Text)
    tables: Mapped[list[str] | None] = mapped_column(JSON)
    write_disposition: Mapped[str | None] = mapped_column(String(16))
    primary_key: Mapped[list[str] | None] = mapped_column(JSON)
    cursor: Mapped[str | None] = mapped_column(String(200))
    transform: Mapped[str | None] = mapped_column(String(1000))
    schedule: Mapped[str | None] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    retries: Mapped[int] = mapped_column(Integer, default=0)
    retry_delay_seconds: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Run(Base):
    """One Dagster run of a job, as the run-status sensor last saw it."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_job_queued", "job_id", "queued_at"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_updated", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    rows_loaded: Mapped[int] = mapped_column(BigInteger, default=0)
    rows_per_table: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    tests_passed: Mapped[int] = mapped_column(Integer, default=0)
    tests_failed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    parent_run_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
