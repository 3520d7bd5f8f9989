"""Alert rules firing and recovering on a real metadata store (SQLite and PostgreSQL):
the runs the sensor mirrors, the catalog's freshness and schema changes; recipients
hear once per alert and once per recovery, channels through the outbox."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.users.models import Role
from api.users.services import create_user_with_password
from catalog.models import Dataset, LineageEdge
from headwater.db import get_engine, session_scope, utcnow
from headwater.migrate import upgrade
from headwater.notify.alerting import ensure_default_rules
from headwater.notify.dispatch import deliver_pending
from headwater.notify.models import Alert, AlertRule, Channel, Delivery, Notification
from headwater.secrets import SecretBox
from headwater.settings import Settings
from ingest.models import SchemaChange
from orchestration.alerts import evaluate_periodic, on_run_finished
from orchestration.models import Job, Run
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """A store of its own for each test: SQLite in a folder, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield make_settings(tmp_path)
        return
    name = f"hw_alerts_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    try:
        yield make_settings(tmp_path, database_url=url)
    finally:
        get_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def people(settings: Settings) -> dict[str, int]:
    upgrade(settings.metadata_url)  # the default rules come with it
    ids = {}
    with session_scope(settings.metadata_url) as session:
        for name, role in (("owner", Role.USER), ("admin", Role.ADMIN), ("gone", Role.ADMIN)):
            user = create_user_with_password(
                session, f"{name}-{uuid.uuid4().hex[:6]}@example.com", "x" * 16, role
            )
            user.is_active = name != "gone"
            session.flush()
            ids[name] = user.id
    return ids


def _job(session: Session, owner: int, name: str = "orders") -> Job:
    job = Job(
        name=f"{name} {uuid.uuid4().hex[:6]}",
        owner_id=owner,
        source="shop",
        target="warehouse",
        timezone="UTC",
        retries=0,
        retry_delay_seconds=0,
        enabled=True,
        shared=False,
    )
    session.add(job)
    session.flush()
    return job


def _finish(
    settings: Settings,
    job_id: int,
    status: str,
    *,
    rows: int = 10,
    seconds: float = 5.0,
    tests_failed: int = 0,
    error: str | None = None,
) -> list[dict[str, Any]]:
    """A run of the job that just finished, as the mirror writes it; the alert events."""
    with session_scope(settings.metadata_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        end = utcnow()
        run = Run(
            id=str(uuid.uuid4()),
            job_id=job_id,
            status=status,
            started_at=end - timedelta(seconds=seconds),
            finished_at=end,
            rows_loaded=rows,
            rows_per_table={},
            tests_failed=tests_failed,
            error=error,
        )
        session.add(run)
        session.flush()
        return on_run_finished(settings, session, job, run)


def _notes(settings: Settings, user_id: int) -> list[Notification]:
    with session_scope(settings.metadata_url) as session:
        return list(
            session.scalars(
                select(Notification)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id)
            )
        )


def _alerts(settings: Settings, rule_id: int) -> list[Alert]:
    with session_scope(settings.metadata_url) as session:
        return list(
            session.scalars(select(Alert).where(Alert.rule_id == rule_id).order_by(Alert.id))
        )


def _rule(settings: Settings, **fields: Any) -> int:
    values: dict[str, Any] = {
        "name": "test rule",
        "scope_kind": "all",
        "channel_ids": [],
        "in_app": True,
        "recipients": {"roles": ["admin"]},
        "quiet_minutes": 0,
        "enabled": True,
        **fields,
    }
    with session_scope(settings.metadata_url) as session:
        # Only the rule under test speaks: the defaults stay quiet.
        for rule in session.scalars(select(AlertRule)):
            rule.enabled = False
        rule = AlertRule(**values)
        session.add(rule)
        session.flush()
        return rule.id


def test_a_failed_job_tells_its_owner_once_then_once_more_when_it_recovers(
    settings: Settings, people: dict[str, int]
) -> None:
    with session_scope(settings.metadata_url) as session:
        job_id = _job(session, people["owner"]).id
        default = session.scalar(select(AlertRule).where(AlertRule.builtin == "job_failed"))
        assert default is not None and default.enabled
        assert ensure_default_rules(session) == 0  # created once, at init

    events = _finish(settings, job_id, "failed", error="connection refused by db.example.com")
    assert [e["kind"] for e in events] == ["notification"]
    assert events[0]["userId"] == people["owner"]
    _finish(settings, job_id, "failed", error="still refused")  # still failing: no news
    [note] = _notes(settings, people["owner"])
    assert note.level == "error"
    assert "failed: connection refused by db.example.com" in note.title
    assert note.subject == f"job:{job_id}" and note.link and note.link.startswith("/api/runs/")
    assert _notes(settings, people["admin"]) == []  # the default addresses the owner

    _finish(settings, job_id, "success")
    _finish(settings, job_id, "success")
    notes = _notes(settings, people["owner"])
    assert [n.level for n in notes] == ["error", "info"]
    assert notes[1].title.startswith("Resolved:")
    [alert] = _alerts(settings, default.id)
    assert alert.state == "resolved" and alert.resolved_at is not None and alert.open_key is None

    _finish(settings, job_id, "failed")
    assert [a.state for a in _alerts(settings, default.id)] == ["resolved", "firing"]
    assert len(_notes(settings, people["owner"])) == 3


def test_a_quiet_period_holds_back_a_second_alert(
    settings: Settings, people: dict[str, int]
) -> None:
    rule = _rule(settings, condition="run_failed", quiet_minutes=60)
    with session_scope(settings.metadata_url) as session:
        job_id = _job(session, people["owner"]).id
    _finish(settings, job_id, "failed")
    _finish(settings, job_id, "success")
    _finish(settings, job_id, "failed")
    assert [a.state for a in _alerts(settings, rule)] == ["resolved"]
    # The admins the rule names hear; the deactivated admin does not.
    assert len(_notes(settings, people["admin"])) == 2
    assert _notes(settings, people["gone"]) == []


def test_run_thresholds_and_the_learned_band(settings: Settings, people: dict[str, int]) -> None:
    slow = _rule(settings, condition="duration_above", threshold=60)
    with session_scope(settings.metadata_url) as session:
        for rule in session.scalars(select(AlertRule).where(AlertRule.id == slow)):
            rule.enabled = True
        session.add_all(
            [
                AlertRule(
                    name=name,
                    scope_kind="all",
                    condition=condition,
                    threshold=threshold,
                    channel_ids=[],
                    in_app=True,
                    recipients={"roles": ["admin"]},
                    quiet_minutes=0,
                    enabled=True,
                )
                for name, condition, threshold in (
                    ("few rows", "rows_below", 5.0),
                    ("odd rows", "rows_outside_band", None),
                    ("tests", "test_failed", None),
                )
            ]
        )
        job_id = _job(session, people["owner"]).id
    for rows in (100, 104, 97, 101, 99):
        _finish(settings, job_id, "success", rows=rows)
    assert _notes(settings, people["admin"]) == []
    _finish(settings, job_id, "success", rows=3, seconds=120, tests_failed=2)
    titles = sorted(n.title for n in _notes(settings, people["admin"]))
    assert len(titles) == 4, titles
    assert any("ran 120 s (limit 60 s)" in t for t in titles)
    assert any("loaded 3 rows (expected at least 5)" in t for t in titles)
    assert any("recent runs suggest" in t for t in titles)
    assert any("2 dbt test(s) failed" in t for t in titles)


def test_success_rate_fires_for_admins_and_recovers(
    settings: Settings, people: dict[str, int]
) -> None:
    rule = _rule(settings, condition="success_rate_below", threshold=75, window_minutes=60)
    with session_scope(settings.metadata_url) as session:
        job_id = _job(session, people["owner"]).id
    _finish(settings, job_id, "success")
    _finish(settings, job_id, "failed")
    assert _alerts(settings, rule) == []  # two runs are too few to judge a rate
    _finish(settings, job_id, "success")  # 2 of 3: 67 %
    _finish(settings, job_id, "failed")  # 50 %: still the one alert
    [alert] = _alerts(settings, rule)
    assert alert.state == "firing" and round(alert.value or 0) == 67
    for _ in range(4):
        _finish(settings, job_id, "success")  # 6 of 8: 75 %
    assert [a.state for a in _alerts(settings, rule)] == ["resolved"]
    assert _notes(settings, people["owner"]) == []  # admins only


def test_stale_datasets_and_upstream_schema_changes(
    settings: Settings, people: dict[str, int]
) -> None:
    stale_rule = _rule(settings, condition="stale")
    with session_scope(settings.metadata_url) as session:
        change_rule = AlertRule(
            name="schema",
            scope_kind="source",
            scope_value="shop",
            condition="schema_change",
            channel_ids=[],
            in_app=True,
            recipients={"roles": ["admin"]},
            quiet_minutes=0,
            enabled=True,
        )
        session.add(change_rule)
        raw = Dataset(
            name=f"{settings.raw_schema('shop')}.orders",
            kind="source",
            schema_name=settings.raw_schema("shop"),
            table_name="orders",
            freshness_error_after=3600,
            fresh_as_of=utcnow() - timedelta(hours=5),
        )
        mart = Dataset(
            name="marts.revenue", kind="model", schema_name="marts", table_name="revenue"
        )
        lonely = Dataset(
            name=f"{settings.raw_schema('shop')}.notes",
            kind="source",
            schema_name=settings.raw_schema("shop"),
            table_name="notes",
        )
        session.add_all([raw, mart, lonely])
        session.flush()
        session.add(LineageEdge(upstream_id=raw.id, downstream_id=mart.id, origin="dbt"))
        session.flush()
        change_rule_id, raw_id = change_rule.id, raw.id

    with session_scope(settings.metadata_url) as session:
        evaluate_periodic(settings, session)
    [stale] = _alerts(settings, stale_rule)
    assert stale.subject == f"dataset:{settings.raw_schema('shop')}.orders"
    assert "stale (5.0 h old)" in stale.message

    with session_scope(settings.metadata_url) as session:
        raw_row = session.get(Dataset, raw_id)
        assert raw_row is not None
        raw_row.fresh_as_of = utcnow()
        for table, column in (("orders", "coupon"), ("notes", "mood")):
            session.add(
                SchemaChange(
                    source="shop",
                    table_name=table,
                    column_name=column,
                    change="column_added",
                    at=utcnow() + timedelta(seconds=1),
                )
            )
    for _ in range(2):
        with session_scope(settings.metadata_url) as session:
            evaluate_periodic(settings, session)
    assert [a.state for a in _alerts(settings, stale_rule)] == ["resolved"]
    [change] = _alerts(settings, change_rule_id)  # notes has no model reading it
    assert change.state == "resolved"  # an event: recorded, nothing to recover from
    assert "column_added coupon" in change.message and "read by marts.revenue" in change.message
    titles = [n.title for n in _notes(settings, people["admin"])]
    assert sum("changed (column_added coupon" in t for t in titles) == 1


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Hook.received.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_channels_hear_each_alert_once_through_the_outbox(
    settings: Settings, people: dict[str, int]
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received.clear()
    try:
        box = SecretBox.from_settings(settings)
        with session_scope(settings.metadata_url) as session:
            url = f"json://127.0.0.1:{server.server_address[1]}/alerts"
            channel = Channel(
                name="hook", kind="json", url_encrypted=box.encrypt(url), url_masked=url
            )
            session.add(channel)
            session.flush()
            channel_id = channel.id
        _rule(settings, condition="run_failed", channel_ids=[channel_id], in_app=False)
        with session_scope(settings.metadata_url) as session:
            job_id = _job(session, people["owner"]).id
        _finish(settings, job_id, "failed", error="boom")
        _finish(settings, job_id, "failed", error="boom again")
        reports = [deliver_pending(settings) for _ in range(2)]
        assert [r.sent for r in reports] == [1, 0]
        [message] = Hook.received
        assert "boom" in message["title"]
        _finish(settings, job_id, "success")
        assert deliver_pending(settings).sent == 1
        assert Hook.received[-1]["title"].startswith("Resolved:")
        with session_scope(settings.metadata_url) as session:
            statuses = list(session.scalars(select(Delivery.status)))
        assert statuses == ["sent", "sent"]
        assert _notes(settings, people["admin"]) == []  # in-app off for this rule
    finally:
        server.shutdown()


def test_a_users_rule_never_reports_on_someone_elses_job(
    settings: Settings, people: dict[str, int]
) -> None:
    with session_scope(settings.metadata_url) as session:
        admins_job = _job(session, people["admin"]).id
    # A rule of the owner's on a job id that is now the admin's (the owner's job was
    # deleted and its id given again, as SQLite does).
    _rule(
        settings,
        condition="run_failed",
        scope_kind="job",
        scope_value=str(admins_job),
        owner_id=people["owner"],
        recipients={"owner": True},
    )
    _finish(settings, admins_job, "failed", error="the admin's secret table is gone")
    assert _notes(settings, people["owner"]) == []


def test_a_run_where_no_test_ran_says_nothing_about_tests(
    settings: Settings, people: dict[str, int]
) -> None:
    rule = _rule(settings, condition="test_failed")
    with session_scope(settings.metadata_url) as session:
        job_id = _job(session, people["owner"]).id
    _finish(settings, job_id, "success", tests_failed=1)
    _finish(settings, job_id, "failed")  # failed in its load: no test ran
    assert [a.state for a in _alerts(settings, rule)] == ["firing"]
