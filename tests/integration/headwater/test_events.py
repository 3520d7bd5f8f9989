"""The events table: each fact recorded once, ids that never go back after a prune."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from headwater.db import session_scope, utcnow
from headwater.events import Event, latest_id, prune, record, since
from headwater.migrate import upgrade

pytestmark = pytest.mark.integration


def test_a_fact_is_recorded_once_and_ids_never_go_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    upgrade(url)
    with session_scope(url) as session:
        first = record(session, "job_update", {"n": 1}, key="run:a:started", job_id=1, owner_id=1)
        again = record(session, "job_update", {"n": 2}, key="run:a:started", job_id=1, owner_id=1)
        assert first is not None and again is None
        for n in range(3):
            record(session, "job_update", {"n": n}, job_id=1, owner_id=1)
        newest = latest_id(session)
        # A week and more goes by.
        session.execute(update(Event).values(created_at=utcnow() - timedelta(days=8)))
    with session_scope(url) as session:
        assert prune(session) == 3  # the newest stays, whatever its age
        later = record(session, "job_update", {"n": 9}, job_id=1, owner_id=1)
    assert later is not None and later["id"] == newest + 1
    with session_scope(url) as session:
        assert [m["data"] for m in since(session, 0, 10)] == [{"n": 2}, {"n": 9}]
