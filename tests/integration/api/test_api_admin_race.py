"""Two admins demoting each other at the same moment never leave the platform without one.

Real threads against both metadata stores: SQLite (embedded) and PostgreSQL
(production), where the rule needs different mechanisms (the write lock, and row
locks taken in one order).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.audit.services import Actor
from api.errors import Conflict
from api.users.models import Role, User
from api.users.services import create_user_with_password, update_user
from headwater.db import get_engine, session_scope
from headwater.migrate import upgrade

pytestmark = pytest.mark.integration

ROUNDS = 6
PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'meta.db'}"
        upgrade(url)
        yield url
        return
    name = f"hw_race_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sa.text(f"create database {name}"))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with server.connect() as connection:
            connection.execute(sa.text(f"drop database {name} with (force)"))
        server.dispose()


def _active_admins(url: str) -> int:
    with session_scope(url) as session:
        return len(
            session.scalars(
                sa.select(User.id).where(User.role == "admin", User.is_active.is_(True))
            ).all()
        )


def _race(url: str, pair: tuple[int, int], change: dict[str, object]) -> list[str]:
    """Each admin of ``pair`` applies ``change`` to the other, both at the same moment."""
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def demote(actor: int, target: int) -> None:
        start.wait()
        try:
            with session_scope(url) as session:
                update_user(session, target, Actor(actor, None), **change)  # type: ignore[arg-type]
            outcomes.append("changed")
        except Conflict:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=demote, args=pair),
        threading.Thread(target=demote, args=pair[::-1]),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(outcomes)


@pytest.mark.parametrize("change", [{"role": Role.USER}, {"is_active": False}])
def test_two_admins_demoting_each_other_at_once_leave_one(
    store_url: str, change: dict[str, object]
) -> None:
    for round_ in range(ROUNDS):
        with session_scope(store_url) as session:
            session.execute(sa.update(User).values(role="user"))
            first = create_user_with_password(session, f"a{round_}@x.io", "p" * 12, "admin")
            second = create_user_with_password(session, f"b{round_}@x.io", "p" * 12, "admin")
            pair = (first.id, second.id)
        assert _race(store_url, pair, change) == ["changed", "refused"], f"round {round_}"
        assert _active_admins(store_url) == 1
