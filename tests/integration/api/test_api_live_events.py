"""Live events as clients receive them: a real uvicorn server, a plain WebSocket client
(websocket-client) and a real Socket.IO client (python-socketio's), events published
the way the sensor, the API and the run steps publish them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import uvicorn
import websocket
from sqlalchemy import func, select

from api.app import create_app
from api.errors import ServiceUnavailable
from api.users.models import Role, User
from api.users.services import create_user_with_password
from benchmarks.api import free_port
from headwater.db import session_scope
from headwater.events import Event, publish, record
from headwater.settings import Settings
from tests.integration.api.conftest import (
    ADMIN,
    PASSWORD,
    VIEWER,
    make_settings,
    make_warehouse,
    seed_metadata,
)

pytestmark = pytest.mark.integration

OWNER = "owner@example.com"
OTHER = "other@example.com"
QUIET_SECONDS = 0.6


@dataclass
class Server:
    settings: Settings
    base: str
    port: int
    tokens: dict[str, str]
    ids: dict[str, int]
    app: Any = None

    def ws(self, who: str | None = None, *, query: str = "", header: bool = True) -> Any:
        headers = [f"Authorization: Bearer {self.tokens[who]}"] if who and header else []
        connection = websocket.create_connection(
            f"ws://127.0.0.1:{self.port}/api/ws{query}", header=headers, timeout=5
        )
        return connection

    def publish_job_event(self, key: str, owner: str, *, shared: bool = False) -> int:
        item = publish(
            self.settings.metadata_url,
            self.settings.redis_url,
            "job_update",
            {"runId": key, "event": "started", "status": "running"},
            key=key,
            job_id=7,
            owner_id=self.ids[owner],
            shared=shared,
        )
        assert item is not None
        return int(item["id"])


def _login(base: str, email: str) -> str:
    response = httpx.post(f"{base}/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home: Path = tmp_path_factory.mktemp("live")
    settings = make_settings(home)
    make_warehouse(settings.duckdb_path)
    seed_metadata(settings.metadata_url)
    ids = {}
    with session_scope(settings.metadata_url) as session:
        for email in (OWNER, OTHER):
            user = create_user_with_password(session, email, PASSWORD, Role.USER)
            session.flush()
            ids[email] = user.id
    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="error",
        timeout_graceful_shutdown=1,
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    tokens = {email: _login(base, email) for email in (ADMIN.email, VIEWER.email, OWNER, OTHER)}
    with session_scope(settings.metadata_url) as session:
        for email in (ADMIN.email, VIEWER.email):
            ids[email] = session.scalar(select(User.id).where(User.email == email)) or 0
    yield Server(settings, base, port, tokens, ids, app)
    uv.should_exit = True
    thread.join(10)


def _next(connection: Any, timeout: float = 5.0) -> dict[str, Any]:
    connection.settimeout(timeout)
    message: dict[str, Any] = json.loads(connection.recv())
    return message


def _silent(connection: Any) -> bool:
    connection.settimeout(QUIET_SECONDS)
    try:
        connection.recv()
    except websocket.WebSocketTimeoutException:
        return True
    return False


def test_a_client_authenticated_three_ways_receives_its_jobs_events(server: Server) -> None:
    by_header = server.ws(OWNER)
    by_query = server.ws(query=f"?token={server.tokens[OWNER]}")
    by_message = server.ws()
    by_message.send(json.dumps({"type": "auth", "token": server.tokens[OWNER]}))
    for connection in (by_header, by_query, by_message):
        assert _next(connection)["type"] == "ready"
    event_id = server.publish_job_event("three-ways", OWNER)
    for connection in (by_header, by_query, by_message):
        message = _next(connection)
        assert message == {
            "type": "job_update",
            "id": event_id,
            "data": {"runId": "three-ways", "event": "started", "status": "running"},
        }
        connection.close()


def test_a_bad_or_missing_token_is_refused_with_a_reason(server: Server) -> None:
    for query in ("?token=not-a-token", ""):
        connection = server.ws(query=query)
        if not query:
            connection.send(json.dumps({"type": "auth", "token": "forged"}))
        assert _next(connection) == {"type": "error", "message": "Invalid or expired token"}
        opcode, data = connection.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(data[:2], "big") == 4401  # the close code says why
        assert b"Invalid or expired token" in data


def test_a_user_never_receives_another_users_job_events(server: Server) -> None:
    owner, other, viewer, admin = (
        server.ws(OWNER),
        server.ws(OTHER),
        server.ws(VIEWER.email),
        server.ws(ADMIN.email),
    )
    for connection in (owner, other, viewer, admin):
        assert _next(connection)["type"] == "ready"
    private = server.publish_job_event("private-run", OWNER)
    assert _next(owner)["id"] == private
    assert _next(admin)["id"] == private
    assert _silent(other)
    assert _silent(viewer)
    shared = server.publish_job_event("shared-run", OWNER, shared=True)
    for connection in (owner, other, viewer, admin):
        assert _next(connection)["id"] == shared
        connection.close()


def test_notifications_reach_their_recipient_only(server: Server) -> None:
    owner, other = server.ws(OWNER), server.ws(OTHER)
    for connection in (owner, other):
        assert _next(connection)["type"] == "ready"
    item = publish(
        server.settings.metadata_url,
        None,
        "notification",
        {"title": "Job failed"},
        user_id=server.ids[OWNER],
    )
    assert item is not None
    assert _next(owner) == {
        "type": "notification",
        "id": item["id"],
        "data": {"title": "Job failed"},
    }
    assert _silent(other)
    owner.close()
    other.close()


def test_a_client_resumes_from_the_last_event_it_saw(server: Server) -> None:
    first = server.publish_job_event("resume-1", OWNER)
    second = server.publish_job_event("resume-2", OTHER)
    third = server.publish_job_event("resume-3", OWNER)
    connection = server.ws(OWNER, query=f"?since={first}")
    missed = [_next(connection) for _ in range(2)]
    # Another user's job is not replayed; then "ready", and nothing twice after it.
    assert [m.get("id") for m in missed] == [third, None]
    assert second != third
    assert missed[1]["type"] == "ready"
    assert missed[1]["lastEventId"] >= third
    assert _silent(connection)
    connection.ping()
    connection.send(json.dumps({"type": "ping"}))
    assert _next(connection) == {"type": "pong"}
    connection.close()


def test_socketio_clients_receive_what_they_may_see_and_resume(server: Server) -> None:
    received: dict[str, list[tuple[str, dict[str, Any]]]] = {OWNER: [], OTHER: []}
    clients = {}
    for email in (OWNER, OTHER):
        client = socketio.Client(reconnection=False)
        for kind in ("job_update", "notification"):
            client.on(
                kind, lambda data, kind=kind, email=email: received[email].append((kind, data))
            )
        client.connect(server.base, auth={"token": server.tokens[email]}, transports=["websocket"])
        clients[email] = client
    event_id = server.publish_job_event("sio-run", OWNER)

    def of_this_test(email: str) -> list[tuple[str, dict[str, Any]]]:
        # Events of earlier tests may still be on their way: only this one counts.
        return [item for item in received[email] if item[1].get("runId") == "sio-run"]

    deadline = time.monotonic() + 5
    while not of_this_test(OWNER) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(QUIET_SECONDS)
    assert of_this_test(OWNER) == [
        (
            "job_update",
            {"id": event_id, "runId": "sio-run", "event": "started", "status": "running"},
        )
    ]
    assert of_this_test(OTHER) == []
    for client in clients.values():
        client.disconnect()

    late: list[dict[str, Any]] = []
    resumed = socketio.Client(reconnection=False)
    resumed.on("job_update", late.append)
    resumed.connect(
        server.base,
        auth={"token": server.tokens[OWNER], "since": event_id - 1},
        transports=["polling"],
    )
    deadline = time.monotonic() + 5
    while not late and time.monotonic() < deadline:
        time.sleep(0.05)
    resumed.eio.disconnect(abort=True)  # a long poll would hold a polite goodbye ~25 s
    assert [item["id"] for item in late] == [event_id]


def test_socketio_refuses_a_bad_token(server: Server) -> None:
    client = socketio.Client(reconnection=False)
    reasons: list[Any] = []
    client.on("connect_error", reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(server.base, auth={"token": "forged"}, transports=["websocket"])
    assert reasons == [{"message": "Invalid or expired token"}]


def test_signing_out_ends_the_live_connection(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.events.live

    monkeypatch.setattr(api.events.live, "RECHECK_SECONDS", 0.3)
    token = _login(server.base, OWNER)
    connection = websocket.create_connection(
        f"ws://127.0.0.1:{server.port}/api/ws", header=[f"Authorization: Bearer {token}"], timeout=5
    )
    assert _next(connection)["type"] == "ready"
    out = httpx.post(f"{server.base}/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204
    connection.settimeout(5)
    opcode, data = connection.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 4401


def test_a_resume_reaches_past_other_users_events_and_a_page(server: Server) -> None:
    """More than a page of events the client may not see, then one it may: it gets that
    one, and nothing of the others."""
    with session_scope(server.settings.metadata_url) as session:
        for n in range(1100):
            record(session, "job_update", {"n": n}, job_id=8, owner_id=server.ids[OTHER])
        start = session.scalar(select(func.min(Event.id)).where(Event.job_id == 8)) or 0
    mine = server.publish_job_event("after-the-crowd", OWNER)
    connection = server.ws(OWNER, query=f"?since={start - 1}")
    first = _next(connection)
    assert first["id"] == mine and first["data"]["runId"] == "after-the-crowd"
    ready = _next(connection)
    assert ready["type"] == "ready" and ready["more"] is False and ready["lastEventId"] >= mine
    connection.close()


def test_socketio_events_carry_the_event_id_even_for_notifications(server: Server) -> None:
    heard: list[dict[str, Any]] = []
    client = socketio.Client(reconnection=False)
    client.on("notification", heard.append)
    client.connect(server.base, auth={"token": server.tokens[OWNER]}, transports=["websocket"])
    item = publish(
        server.settings.metadata_url,
        None,
        "notification",
        {"notificationId": 41, "title": "ping"},
        user_id=server.ids[OWNER],
    )
    assert item is not None
    deadline = time.monotonic() + 5
    while not heard and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    assert heard == [{"notificationId": 41, "title": "ping", "id": item["id"]}]


def test_a_store_outage_refuses_new_clients_for_now_and_keeps_the_connected(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.events.live

    monkeypatch.setattr(api.events.live, "RECHECK_SECONDS", 0.3)
    connected = server.ws(OTHER)
    assert _next(connected)["type"] == "ready"
    api.events.live._checked.clear()

    async def store_away(*_: Any, **__: Any) -> Any:
        raise ServiceUnavailable("The metadata store is not answering", retry_after=5)

    monkeypatch.setattr(server.app.state.authenticator, "authenticate", store_away)
    newcomer = server.ws(OWNER)
    assert _next(newcomer)["message"].startswith("The service cannot check your token")
    opcode, data = newcomer.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(data[:2], "big") == 1013  # try again later, not "unauthorized"
    time.sleep(1.0)  # several re-checks while the store is away
    connected.send(json.dumps({"type": "ping"}))
    assert _next(connected) == {"type": "pong"}
    connected.close()


def test_the_hub_hands_out_a_runs_moves_in_order_whichever_way_they_came(
    tmp_path: Path,
) -> None:
    """A run's own step records ``progress`` without Redis; the end is announced by this
    process a moment later: the client still gets the progress first, each once."""
    import asyncio

    from api.auth.schemas import CurrentUser
    from api.db import Database
    from api.events.hub import EventHub, Subscriber
    from headwater.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'meta.db'}"
    upgrade(url)
    admin = CurrentUser(id=1, email="a@example.com", name="", role="admin", session_id="s")

    async def scenario() -> list[int]:
        hub = EventHub(Database(url), None)
        await hub._start_from_store()

        async def close() -> None:
            pass

        client = Subscriber(admin, "Bearer x", close)
        hub.subscribe(client)
        ids = []
        for move in ("progress", "succeeded"):
            with session_scope(url) as session:
                item = record(session, "job_update", {"event": move}, job_id=3, owner_id=2)
                assert item is not None
                ids.append(item)
        await hub.announce([ids[1]])  # only the end is announced here
        await hub._read_store()  # the next regular read finds nothing new to hand out
        got = []
        while not client.queue.empty():
            message = client.queue.get_nowait()
            assert message is not None
            got.append(int(message["id"]))
        hub.unsubscribe(client)
        return got

    got = asyncio.run(scenario())
    assert len(got) == 2 and got == sorted(got)
