"""Notification dispatch against real receivers: an SMTP server (aiosmtpd), a local HTTP
server standing in for web hooks and for Telegram's API, on both metadata stores.

Each message is sent once per key, even with two dispatchers running at once; a
failing channel is retried with backoff and its own error (secrets scrubbed) is kept;
the hourly rate limit postpones; a send interrupted by a dying process is never
repeated; in-app notifications are written once per user with their events.
"""

from __future__ import annotations

import base64
import email
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from apprise.plugins.telegram import NotifyTelegram
from cryptography.fernet import Fernet

from api.users.models import User
from headwater.db import as_utc, get_engine, session_scope, utcnow
from headwater.events import Event
from headwater.migrate import upgrade
from headwater.notify import dispatch
from headwater.notify.channels import ChannelFailed, check_url, mask_url, send
from headwater.notify.dispatch import (
    INTERRUPTED,
    MAX_ATTEMPTS,
    DeliveryReport,
    backoff,
    deliver_pending,
    enqueue,
    notify_users,
)
from headwater.notify.models import Channel, Delivery, Notification
from headwater.secrets import SecretBox
from headwater.settings import Settings
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
SECRET_KEYS = Fernet.generate_key().decode()
PASSWORD = "Hook-Passw0rd-77"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
TABLES = ("deliveries", "notifications", "events", "notification_channels", "users")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('notify') / 'meta.db'}"
        upgrade(url)
        yield url
        get_engine(url).dispose()
        return
    name = f"hw_notify_{uuid.uuid4().hex[:8]}"
    server = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(sa.text(f"create database {name}"))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        get_engine(url).dispose()
        with server.connect() as connection:
            connection.execute(sa.text(f"drop database {name} with (force)"))
        server.dispose()


@pytest.fixture
def settings(store: str, tmp_path: Path) -> Settings:
    with session_scope(store) as session:
        for table in TABLES:
            session.execute(sa.text(f"delete from {table}"))
    return make_settings(tmp_path, database_url=store, secret_keys=SECRET_KEYS)


@dataclass
class Receiver:
    """A local HTTP server: records each POST, answers with ``status`` and ``reply``."""

    port: int = 0
    status: int = 200
    reply: bytes = b'{"ok": true, "result": {}}'
    delay: float = 0.0
    posts: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            data = json.loads(self.rfile.read(length) or b"null")
            time.sleep(state.delay)
            with lock:
                state.posts.append((self.path, dict(self.headers), data))
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.reply)))
            self.end_headers()
            self.wfile.write(state.reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


def add_channel(settings: Settings, url: str, *, enabled: bool = True, rate: int = 60) -> int:
    with session_scope(settings.metadata_url) as session:
        channel = Channel(
            name=f"channel-{uuid.uuid4().hex[:6]}",
            kind=check_url(url),
            url_encrypted=SecretBox.from_settings(settings).encrypt(url),
            url_masked=mask_url(url),
            enabled=enabled,
            rate_limit_per_hour=rate,
        )
        session.add(channel)
        session.flush()
        return channel.id


def queue(settings: Settings, channel_id: int, key: str, title: str = "Job failed") -> bool:
    with session_scope(settings.metadata_url) as session:
        return enqueue(session, channel_id, title=title, body=f"body of {key}", key=key)


def delivery(settings: Settings, key: str) -> Delivery:
    with session_scope(settings.metadata_url) as session:
        row = session.scalars(sa.select(Delivery).where(Delivery.dedupe_key == key)).one()
        session.expunge(row)
        return row


def channel(settings: Settings, channel_id: int) -> Channel:
    with session_scope(settings.metadata_url) as session:
        row = session.get(Channel, channel_id)
        assert row is not None
        session.expunge(row)
        return row


def when(value: datetime | None) -> datetime:
    result = as_utc(value)
    assert result is not None
    return result


# --- sending through real receivers ---------------------------------------------------


def test_an_email_arrives_through_a_plain_smtp_server(
    settings: Settings, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    # A plain SMTP server without AUTH: no user:password in the URL, insecure mailto://.
    channel_id = add_channel(
        settings, f"mailto://127.0.0.1:{port}?from=headwater@example.com&to=ops@example.com"
    )
    assert queue(settings, channel_id, "run:41:failed", title="Run 41 failed")

    assert deliver_pending(settings) == DeliveryReport(sent=1)

    [message] = mailbox.messages
    assert message["Subject"] == "Run 41 failed"
    assert message["To"] == "ops@example.com"
    texts = [
        part.get_payload(decode=True).decode()  # type: ignore[union-attr]
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    ]
    assert [text.strip() for text in texts] == ["body of run:41:failed"]
    row = delivery(settings, "run:41:failed")
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert channel(settings, channel_id).last_sent_at is not None


def test_smtp_refusing_the_login_is_the_recorded_error_without_the_password(
    settings: Settings, smtp: tuple[int, Mailbox]
) -> None:
    port, mailbox = smtp
    url = f"mailto://alerts:{PASSWORD}@127.0.0.1:{port}?from=headwater@example.com&to=o@example.com"
    channel_id = add_channel(settings, url)
    queue(settings, channel_id, "k1")

    assert deliver_pending(settings) == DeliveryReport(retrying=1)

    row = delivery(settings, "k1")
    assert row.last_error is not None
    assert "SMTP AUTH extension not supported by server" in row.last_error
    assert PASSWORD not in row.last_error
    assert channel(settings, channel_id).last_error == row.last_error
    assert mailbox.messages == []


def test_a_json_web_hook_receives_title_and_body_with_its_credentials(
    settings: Settings, receiver: Receiver
) -> None:
    channel_id = add_channel(settings, f"json://hook:{PASSWORD}@127.0.0.1:{receiver.port}/in")
    queue(settings, channel_id, "k1", title="Freshness alert")

    assert deliver_pending(settings).sent == 1

    [(path, headers, data)] = receiver.posts
    assert path == "/in"
    assert (data["title"], data["message"]) == ("Freshness alert", "body of k1")
    credentials = base64.b64decode(headers["Authorization"].removeprefix("Basic ")).decode()
    assert credentials == f"hook:{PASSWORD}"


def test_telegram_messages_reach_the_bot_api(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Apprise's Telegram plugin posts to NotifyTelegram.notify_url + token: point it here.
    monkeypatch.setattr(NotifyTelegram, "notify_url", receiver.url("/bot"))
    channel_id = add_channel(settings, f"tgram://{BOT_TOKEN}/987654321")
    queue(settings, channel_id, "k1", title="Run 7 failed")

    assert deliver_pending(settings).sent == 1

    [(path, _headers, data)] = receiver.posts
    assert path == f"/bot{BOT_TOKEN}/sendMessage"
    assert data["chat_id"] == 987654321
    assert "Run 7 failed" in data["text"]
    assert "body of k1" in data["text"]


def test_telegram_refusal_is_recorded_as_its_own_error_with_the_token_scrubbed(
    settings: Settings, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(NotifyTelegram, "notify_url", receiver.url("/bot"))
    receiver.status = 401
    receiver.reply = json.dumps(
        {"ok": False, "error_code": 401, "description": f"Unauthorized: bot{BOT_TOKEN} unknown"}
    ).encode()
    channel_id = add_channel(settings, f"tgram://{BOT_TOKEN}/987654321")
    queue(settings, channel_id, "k1")

    deliver_pending(settings)

    error = delivery(settings, "k1").last_error
    assert error is not None
    assert "Failed to send Telegram notification to 987654321: Unauthorized" in error
    assert "unknown, error=401." in error  # the service's own answer is kept
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in error
    assert "123456789" not in error


# --- retries, give up, never twice ------------------------------------------------------


def test_a_failing_channel_is_retried_with_backoff_then_given_up(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.status = 500
    receiver.reply = b'{"error": "quota exceeded for this hook"}'
    channel_id = add_channel(settings, f"json://hook:{PASSWORD}@127.0.0.1:{receiver.port}/in")
    queue(settings, channel_id, "k1")
    now = utcnow()

    for attempt in range(1, MAX_ATTEMPTS):
        assert deliver_pending(settings, now=now) == DeliveryReport(retrying=1)
        row = delivery(settings, "k1")
        assert (row.status, row.attempts) == ("pending", attempt)
        assert when(row.next_attempt_at) == now + backoff(attempt)
        # Not due yet: nothing is sent before the backoff has passed.
        assert deliver_pending(settings, now=now + backoff(attempt) / 2) == DeliveryReport()
        now += backoff(attempt)
    assert deliver_pending(settings, now=now) == DeliveryReport(failed=1)

    row = delivery(settings, "k1")
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert row.last_error is not None
    assert "Failed to send JSON POST notification: Internal server error., error=500." in (
        row.last_error
    )
    assert "quota exceeded for this hook" in row.last_error
    assert PASSWORD not in row.last_error
    assert channel(settings, channel_id).last_error == row.last_error
    assert len(receiver.posts) == MAX_ATTEMPTS
    receiver.status = 200
    assert deliver_pending(settings, now=now + timedelta(days=1)) == DeliveryReport()
    assert len(receiver.posts) == MAX_ATTEMPTS


def test_a_channel_that_never_answers_is_given_up_on_after_the_timeout(
    receiver: Receiver,
) -> None:
    receiver.delay = 3.0
    started = time.monotonic()
    with pytest.raises(ChannelFailed) as caught:
        send(f"json://hook:{PASSWORD}@127.0.0.1:{receiver.port}/in", "t", "b", timeout=0.5)
    assert time.monotonic() - started < receiver.delay
    assert "timed out" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_backoff_doubles_from_thirty_seconds_up_to_an_hour() -> None:
    waits = [backoff(attempt).total_seconds() for attempt in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_channel_that_recovers_sends_on_the_next_attempt(
    settings: Settings, receiver: Receiver
) -> None:
    channel_id = add_channel(settings, f"json://127.0.0.1:{free_port()}/in")
    queue(settings, channel_id, "k1")
    now = utcnow()
    assert deliver_pending(settings, now=now) == DeliveryReport(retrying=1)
    error = delivery(settings, "k1").last_error
    assert error is not None and "Connection refused" in error

    with session_scope(settings.metadata_url) as session:  # the endpoint comes back
        stored = session.get(Channel, channel_id)
        assert stored is not None
        stored.url_encrypted = SecretBox.from_settings(settings).encrypt(
            f"json://127.0.0.1:{receiver.port}/in"
        )
    assert deliver_pending(settings, now=now + backoff(1)) == DeliveryReport(sent=1)

    row = delivery(settings, "k1")
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert channel(settings, channel_id).last_error is None
    assert len(receiver.posts) == 1


def test_two_dispatchers_at_once_send_each_message_exactly_once(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.delay = 0.02  # keeps both dispatchers busy at the same time
    channel_id = add_channel(settings, f"json://127.0.0.1:{receiver.port}/in", rate=1000)
    keys = [f"run:{n}:failed" for n in range(12)]
    for key in keys:
        assert queue(settings, channel_id, key, title=key)
    assert not queue(settings, channel_id, keys[0])  # a key is queued once
    start = threading.Barrier(2)
    reports: list[DeliveryReport] = []

    def dispatcher() -> None:
        start.wait()
        reports.append(deliver_pending(settings))

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    titles = sorted(data["title"] for _path, _headers, data in receiver.posts)
    assert titles == sorted(keys)
    assert sum(report.sent for report in reports) == len(keys)
    assert all(report.sent < len(keys) for report in reports)  # both took a share
    assert not queue(settings, channel_id, keys[0])  # sent: still never queued again
    assert deliver_pending(settings) == DeliveryReport()
    assert len(receiver.posts) == len(keys)


def test_a_send_interrupted_by_a_dying_process_is_failed_not_resent(
    settings: Settings, receiver: Receiver
) -> None:
    channel_id = add_channel(settings, f"json://127.0.0.1:{receiver.port}/in")
    queue(settings, channel_id, "died")
    queue(settings, channel_id, "busy")
    now = utcnow()
    with session_scope(settings.metadata_url) as session:
        for key, claimed in (("died", now - timedelta(minutes=11)), ("busy", now)):
            session.execute(
                sa.update(Delivery)
                .where(Delivery.dedupe_key == key)
                .values(status="sending", claimed_at=claimed)
            )

    assert deliver_pending(settings, now=now + timedelta(minutes=1)) == DeliveryReport(failed=1)

    died = delivery(settings, "died")
    assert (died.status, died.last_error) == ("failed", INTERRUPTED)
    assert delivery(settings, "busy").status == "sending"  # another process is on it
    assert receiver.posts == []


# --- channel state and rate limit ----------------------------------------------------


def test_a_disabled_channel_fails_the_message_at_once(
    settings: Settings, receiver: Receiver
) -> None:
    channel_id = add_channel(settings, f"json://127.0.0.1:{receiver.port}/in", enabled=False)
    queue(settings, channel_id, "k1")

    assert deliver_pending(settings) == DeliveryReport(failed=1)

    row = delivery(settings, "k1")
    assert row.status == "failed"
    assert row.last_error is not None and "is disabled: not sent" in row.last_error
    assert deliver_pending(settings, now=utcnow() + timedelta(days=1)) == DeliveryReport()
    assert receiver.posts == []


def test_the_hourly_rate_limit_postpones_without_using_an_attempt(
    settings: Settings, receiver: Receiver
) -> None:
    channel_id = add_channel(settings, f"json://127.0.0.1:{receiver.port}/in", rate=2)
    for key in ("k1", "k2", "k3"):
        queue(settings, channel_id, key)
    now = utcnow()

    assert deliver_pending(settings, now=now) == DeliveryReport(sent=2, postponed=1)

    held = delivery(settings, "k3")
    assert (held.status, held.attempts, held.last_error) == ("pending", 0, None)
    assert when(held.next_attempt_at) == now + timedelta(hours=1)
    assert deliver_pending(settings, now=now + timedelta(minutes=30)) == DeliveryReport()
    assert len(receiver.posts) == 2
    assert deliver_pending(settings, now=now + timedelta(hours=1)) == DeliveryReport(sent=1)
    assert len(receiver.posts) == 3


def test_two_dispatchers_at_once_never_exceed_the_rate_limit_together(
    settings: Settings, receiver: Receiver
) -> None:
    receiver.delay = 0.02
    channel_id = add_channel(settings, f"json://127.0.0.1:{receiver.port}/in", rate=5)
    for n in range(12):
        queue(settings, channel_id, f"k{n}")
    start = threading.Barrier(2)
    reports: list[DeliveryReport] = []

    def dispatcher() -> None:
        start.wait()
        reports.append(deliver_pending(settings))

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(receiver.posts) <= 5
    assert sum(report.sent for report in reports) == len(receiver.posts)
    with session_scope(settings.metadata_url) as session:
        statuses = session.scalars(sa.select(Delivery.status)).all()
    assert sorted(set(statuses)) == ["pending", "sent"]  # the rest wait, none failed


# --- test messages --------------------------------------------------------------------


def test_a_test_message_reports_success_or_the_scrubbed_error(
    settings: Settings, receiver: Receiver
) -> None:
    channel_id = add_channel(settings, f"json://hook:{PASSWORD}@127.0.0.1:{receiver.port}/in")

    assert dispatch.test_channel(settings, channel_id).ok
    assert receiver.posts[-1][2]["title"] == dispatch.TEST_TITLE

    receiver.status = 503
    result = dispatch.test_channel(settings, f"json://hook:{PASSWORD}@127.0.0.1:{receiver.port}/")
    assert not result.ok
    assert result.error is not None and "error=503" in result.error
    assert PASSWORD not in result.error
    with session_scope(settings.metadata_url) as session:  # nothing queued by a test
        assert session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0

    bad = dispatch.test_channel(settings, "foo://nowhere")
    assert (bad.ok, bad.error) == (
        False,
        "unknown channel kind foo:// (use one of apprise's "
        "service schemes, e.g. mailto://, json://, tgram://)",
    )
    with pytest.raises(dispatch.ChannelNotFound):
        dispatch.test_channel(settings, channel_id + 1000)


# --- in-app notifications -------------------------------------------------------------


def make_users(settings: Settings, count: int) -> list[int]:
    with session_scope(settings.metadata_url) as session:
        users = [
            User(email=f"u{n}-{uuid.uuid4().hex[:6]}@example.com", password_hash="x", role="user")
            for n in range(count)
        ]
        session.add_all(users)
        session.flush()
        return [user.id for user in users]


def test_each_user_is_notified_once_per_key_with_an_event(settings: Settings) -> None:
    alice, bob = make_users(settings, 2)
    with session_scope(settings.metadata_url) as session:
        messages = notify_users(
            session,
            [alice, bob, alice],
            title="Run 41 failed",
            body="dbt build failed at stg_orders",
            level="error",
            subject="job:7",
            link="/runs/41",
            key="run:41:failed",
        )
    assert [message["userId"] for message in messages] == [alice, bob]
    assert all(message["kind"] == "notification" for message in messages)
    data = messages[0]["data"]
    assert set(data) == {
        "notificationId",
        "title",
        "body",
        "level",
        "subject",
        "link",
        "alertId",
        "createdAt",
    }
    assert (data["title"], data["level"], data["link"], data["alertId"]) == (
        "Run 41 failed",
        "error",
        "/runs/41",
        None,
    )

    with session_scope(settings.metadata_url) as session:  # the same fact again
        again = notify_users(
            session,
            [alice, bob],
            title="Run 41 failed",
            body="",
            level="error",
            key="run:41:failed",
        )
    assert again == []

    with session_scope(settings.metadata_url) as session:
        rows = session.scalars(sa.select(Notification).order_by(Notification.id)).all()
        assert [(row.user_id, row.dedupe_key) for row in rows] == [
            (alice, f"run:41:failed:user:{alice}"),
            (bob, f"run:41:failed:user:{bob}"),
        ]
        assert data["notificationId"] == rows[0].id
        events = session.scalars(sa.select(Event).order_by(Event.id)).all()
        assert [(event.user_id, event.dedupe_key) for event in events] == [
            (alice, f"run:41:failed:user:{alice}"),
            (bob, f"run:41:failed:user:{bob}"),
        ]


def test_notifications_without_a_key_are_always_new(settings: Settings) -> None:
    [alice] = make_users(settings, 1)
    for _ in range(2):
        with session_scope(settings.metadata_url) as session:
            [message] = notify_users(session, [alice], title="Hello", body="", level="info")
        assert message["data"]["title"] == "Hello"
    with session_scope(settings.metadata_url) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 2
    with (
        session_scope(settings.metadata_url) as session,
        pytest.raises(ValueError, match="level"),
    ):
        notify_users(session, [alice], title="x", body="", level="urgent")
