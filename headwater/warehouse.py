"""Short-lived connections to the warehouse, shared by every package that reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.settings import Settings


def connect_postgres(settings: Settings, timeout: int = 10) -> Any:
    """A psycopg2 connection to the PostgreSQL warehouse (credentials from settings)."""
    import psycopg2

    return psycopg2.connect(
        host=settings.warehouse_host,
        port=settings.warehouse_port,
        user=settings.warehouse_user,
        password=settings.warehouse_password.get_secret_value(),
        dbname=settings.warehouse_dbname,
        connect_timeout=timeout,
    )


def connect_duckdb_read_only(settings: Settings) -> Any:
    """A read-only connection to the DuckDB warehouse file; raises duckdb.IOException if locked."""
    import duckdb

    return duckdb.connect(str(settings.duckdb_path), read_only=True)
