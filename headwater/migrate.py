"""Run the metadata store's Alembic migrations programmatically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from headwater.db import get_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _run(step: Callable[[Config, str], None], url: str, revision: str) -> None:
    """Run an Alembic command in one transaction on the shared engine."""
    with get_engine(url).begin() as connection:
        config = alembic_config(url)
        config.attributes["connection"] = connection
        step(config, revision)


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the metadata store at ``url`` up to ``revision``; at the head, create the
    default alert rules that do not exist yet."""
    _run(command.upgrade, url, revision)
    if revision == "head":
        from headwater.db import session_scope
        from headwater.notify.alerting import ensure_default_rules

        with session_scope(url) as session:
            ensure_default_rules(session)


def downgrade(url: str, revision: str) -> None:
    """Take the metadata store at ``url`` down to ``revision`` (``base`` empties it)."""
    _run(command.downgrade, url, revision)


def current_revision(url: str) -> str | None:
    """The revision the store is at, or None when it was never initialised."""
    engine = get_engine(url)
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        row = connection.exec_driver_sql("SELECT version_num FROM alembic_version").first()
        return None if row is None else str(row[0])
