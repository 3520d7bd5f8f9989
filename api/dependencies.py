"""Application-wide Litestar dependencies: the settings and a metadata store session."""

from __future__ import annotations

from collections.abc import Generator

from litestar.datastructures import State
from sqlalchemy.orm import Session

from headwater.db import session_scope
from headwater.settings import Settings


def provide_settings(state: State) -> Settings:
    """The settings the application was built with."""
    settings: Settings = state.settings
    return settings


def provide_db_session(settings: Settings) -> Generator[Session, None, None]:
    """A session that commits when the handler succeeds and rolls back when it raises."""
    with session_scope(settings.metadata_url) as session:
        yield session
