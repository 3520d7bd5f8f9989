"""In-app notifications and notification channels through the API: each user's own
notifications, admins' channels with their secrets masked, test sends to a real local
HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import select

from api.audit.models import AuditEntry
from api.users.models import User
from benchmarks.api import free_port
from headwater.db import session_scope
from headwater.notify.dispatch import notify_users
from headwater.notify.models import Channel
from headwater.settings import Settings
from tests.integration.api.conftest import ADMIN, VIEWER, Login

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-pass-word"


class Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        Receiver.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()


def _user_id(settings: Settings, email: str) -> int:
    with session_scope(settings.metadata_url) as session:
        found = session.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return found


def test_each_user_reads_and_marks_only_their_own_notifications(
    client: TestClient[Litestar], settings: Settings, login: Login
) -> None:
    viewer_id, admin_id = _user_id(settings, VIEWER.email), _user_id(settings, ADMIN.email)
    with session_scope(settings.metadata_url) as session:
        for n in range(3):
            notify_users(session, [viewer_id], title=f"viewer {n}", body="b", level="info")
        notify_users(session, [admin_id], title="admin only", body="b", level="error")
    viewer = login(client, VIEWER)
    page = client.get("/api/notifications", headers=viewer).json()
    assert [item["title"] for item in page["items"]] == ["viewer 2", "viewer 1", "viewer 0"]
    assert page["total"] == 3
    assert client.get("/api/notifications/unread-count", headers=viewer).json() == {"unread": 3}

    oldest = page["items"][-1]["id"]
    marked = client.post(f"/api/notifications/{oldest}/read", headers=viewer)
    assert marked.status_code == 200 and marked.json()["read"] is True
    listed = client.get("/api/notifications", headers=viewer).json()["items"]
    assert [item["read"] for item in listed] == [False, False, True]  # unread first
    unread = client.get("/api/notifications", params={"unreadOnly": True}, headers=viewer)
    assert unread.json()["total"] == 2

    admins = client.get("/api/notifications", headers=login(client, ADMIN)).json()["items"]
    [theirs] = [item["id"] for item in admins]
    assert client.post(f"/api/notifications/{theirs}/read", headers=viewer).status_code == 404

    assert client.post("/api/notifications/read-all", headers=viewer).json() == {"marked": 2}
    assert client.get("/api/notifications/unread-count", headers=viewer).json() == {"unread": 0}
    assert client.get("/api/notifications").status_code == 401


def test_channels_are_admins_and_never_show_their_secrets(
    client: TestClient[Litestar], settings: Settings, login: Login, receiver: int
) -> None:
    admin, viewer = login(client, ADMIN), login(client, VIEWER)
    url = f"json://hook:{SECRET}@127.0.0.1:{receiver}/hooks/alerts"
    body = {"name": "ops hook", "url": url}
    assert client.post("/api/notification-channels", json=body, headers=viewer).status_code == 403
    created = client.post("/api/notification-channels", json=body, headers=admin)
    assert created.status_code == 201, created.text
    channel = created.json()
    assert channel["kind"] == "json" and channel["enabled"] is True
    assert SECRET not in created.text
    assert client.post("/api/notification-channels", json=body, headers=admin).status_code == 409

    bad = client.post(
        "/api/notification-channels",
        json={"name": "bad", "url": f"nope://x:{SECRET}@h"},
        headers=admin,
    )
    assert bad.status_code == 400
    assert SECRET not in bad.text

    Receiver.bodies.clear()
    tested = client.post(f"/api/notification-channels/{channel['id']}/test", headers=admin)
    assert tested.status_code == 200, tested.text
    assert tested.json() == {"ok": True, "error": None}
    assert [b.get("title") for b in Receiver.bodies] == ["Headwater test message"]

    moved = f"json://hook:{SECRET}@127.0.0.1:{free_port()}/hooks/alerts"
    changed = client.patch(
        f"/api/notification-channels/{channel['id']}", json={"url": moved}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    failed = client.post(f"/api/notification-channels/{channel['id']}/test", headers=admin).json()
    assert failed["ok"] is False and failed["error"]
    assert SECRET not in json.dumps(failed)

    listed = client.get("/api/notification-channels", headers=admin)
    assert listed.json()["total"] == 1 and SECRET not in listed.text
    with session_scope(settings.metadata_url) as session:
        stored = session.scalars(select(Channel)).one()
        assert SECRET not in stored.url_encrypted and SECRET not in stored.url_masked
        trail = " ".join(
            json.dumps([e.before, e.after]) for e in session.scalars(select(AuditEntry))
        )
    assert SECRET not in trail

    gone = client.delete(f"/api/notification-channels/{channel['id']}", headers=admin)
    assert gone.status_code == 204
    assert (
        client.get(f"/api/notification-channels/{channel['id']}", headers=admin).status_code == 404
    )
