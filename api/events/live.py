"""Live events for clients: a plain WebSocket at ``/api/ws`` and Socket.IO at ``/socket.io``.

Both authenticate with the same access token as the REST API, re-checked every
minute (logout, deactivation or a role change ends the connection), and both can
resume: give the id of the last event received and what was missed since is sent
first.

WebSocket: connect with ``Authorization: Bearer <token>``, or ``?token=<token>``, or
send ``{"type": "auth", "token": "…"}`` first (browsers cannot set headers);
``since=<id>`` in the query or the auth message resumes. Messages are JSON:
``{"type": "ready", "lastEventId": N}``, then ``{"type": "job_update" | "notification",
"id": N, "data": {…}}``; send ``{"type": "ping"}`` to get ``{"type": "pong"}``.

Socket.IO: ``io({auth: {token, since}})`` (or ``?token=`` in the query); events
``job_update`` and ``notification`` carry ``{id, …data}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qs

import socketio
from litestar import WebSocket, asgi, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.types import Receive, Scope, Send

from api.auth.middleware import Authenticator
from api.auth.schemas import CurrentUser
from api.errors import AuthenticationFailed, ServiceUnavailable
from api.events.hub import CLIENTS, EventHub, Subscriber, client_text

log = logging.getLogger("headwater.api.events")

AUTH_WAIT_SECONDS = 5.0
RECHECK_SECONDS = 60.0
UNAUTHORIZED = 4401
TRY_AGAIN = 1013
INVALID = "Invalid or expired token"
BUSY = "The service cannot check your token right now; connect again shortly"
TOKEN_IN_TEXT = re.compile(r"(?i)(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Masks ``token=…`` in log lines (uvicorn logs the paths of WebSocket and Socket.IO
    connections, query included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                TOKEN_IN_TEXT.sub(r"\1***", a) if isinstance(a, str) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = TOKEN_IN_TEXT.sub(r"\1***", record.msg)
        return True


def redact_tokens_in_logs() -> None:
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {key: values[-1] for key, values in parse_qs(raw).items()}


def _since(value: object) -> int | None:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _bearer(token: str | None) -> str | None:
    if not token:
        return None
    return token if token.lower().startswith("bearer ") else f"Bearer {token}"


async def _user(authenticator: Authenticator, header: str | None) -> CurrentUser | None:
    """The user ``header`` stands for; None when refused.

    Raises:
        ServiceUnavailable: the metadata store cannot say (nobody is refused for that).
    """
    if header is None:
        return None
    try:
        return await authenticator.authenticate(header)
    except AuthenticationFailed:
        return None


_checked: dict[str, tuple[float, bool]] = {}


async def _still_valid(authenticator: Authenticator, header: str) -> bool:
    """Whether ``header`` still counts, asked of the store at most once per half minute
    however many connections hold it (a thousand tabs of one user: one query)."""
    now = time.monotonic()
    known = _checked.get(header)
    if known is not None and now - known[0] < RECHECK_SECONDS / 2:
        return known[1]
    try:
        valid = await _user(authenticator, header) is not None
    except ServiceUnavailable:
        return True  # the store is away: keep the connection, ask again next time
    if len(_checked) > 10_000:
        _checked.clear()
    _checked[header] = (now, valid)
    return valid


@websocket("/api/ws", opt={"exclude_from_auth": True}, include_in_schema=False)
async def live_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """``job_update`` and ``notification`` events, as JSON text messages."""
    hub: EventHub = socket.app.state.events
    authenticator: Authenticator = socket.app.state.authenticator
    query = _query(socket.scope)
    header = None
    for name, value in socket.scope["headers"]:
        if name == b"authorization":
            header = value.decode("latin-1")
    header = header or _bearer(query.get("token"))
    since = _since(query.get("since"))
    await socket.accept()
    if header is None:
        try:
            first = json.loads(
                await asyncio.wait_for(socket.receive_text(), timeout=AUTH_WAIT_SECONDS)
            )
        except (TimeoutError, ValueError, WebSocketDisconnect):
            first = {}
        if isinstance(first, dict) and first.get("type") == "auth":
            header = _bearer(str(first.get("token") or ""))
            since = _since(first.get("since")) if first.get("since") is not None else since
    try:
        user = await _user(authenticator, header)
    except ServiceUnavailable:
        await _refuse(socket, BUSY, TRY_AGAIN)
        return
    if user is None or header is None:
        await _refuse(socket, INVALID, UNAUTHORIZED)
        return

    async def close() -> None:
        with contextlib.suppress(Exception):
            await socket.close(code=UNAUTHORIZED, reason=INVALID)

    subscriber = Subscriber(user, header, close)
    hub.subscribe(subscriber)
    try:
        replayed, complete = 0, True
        if since is not None:
            missed = await hub.replay(user, since)
            for message in missed.messages:
                await socket.send_text(client_text(message))
            replayed, complete = missed.last, missed.complete
        ready: dict[str, Any] = {
            "type": "ready",
            # Not caught up (more than one replay holds): resume again from here.
            "lastEventId": max(hub.last_id, replayed) if complete else replayed,
            "more": not complete,
        }
        await socket.send_text(json.dumps(ready))
        await _pump(socket, subscriber, authenticator, skip_through=replayed)
    finally:
        hub.unsubscribe(subscriber)


async def _refuse(socket: WebSocket[Any, Any, Any], reason: str, code: int) -> None:
    with contextlib.suppress(Exception):
        await socket.send_text(json.dumps({"type": "error", "message": reason}))
        await socket.close(code=code, reason=reason)


async def _pump(
    socket: WebSocket[Any, Any, Any],
    subscriber: Subscriber,
    authenticator: Authenticator,
    skip_through: int,
) -> None:
    """Write queued events; answer pings; end on hang-up, a token gone stale or a client
    too slow to keep up."""

    async def reader() -> None:
        while True:
            text = await socket.receive_text()
            with contextlib.suppress(ValueError):
                if json.loads(text).get("type") == "ping":
                    await socket.send_text('{"type":"pong"}')

    async def recheck() -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            if not await _still_valid(authenticator, subscriber.header):
                await subscriber.close()
                return

    async def writer() -> None:
        while True:
            message = await subscriber.queue.get()
            if message is None:
                with contextlib.suppress(Exception):
                    await socket.close(code=TRY_AGAIN, reason="too slow: resume with since")
                return
            if int(message["id"]) > skip_through:
                await socket.send_text(client_text(message))

    tasks = [asyncio.ensure_future(job()) for job in (reader, writer, recheck)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task


def rooms_of(message: dict[str, Any]) -> list[str]:
    """The Socket.IO rooms an event goes to (see :func:`api.events.hub.may_see`)."""
    if message["kind"] == "notification":
        return [f"user:{message.get('userId')}"]
    if message.get("jobId") is not None:
        rooms = ["role:admin", f"user:{message.get('ownerId')}"]
        return [*rooms, "everyone"] if message.get("shared") else rooms
    target = message.get("userId")
    return ["everyone"] if target is None else [f"user:{target}", "role:admin"]


class SocketIO:
    """The Socket.IO server: authenticates on connect, puts each client in its rooms,
    resumes from ``since`` and relays the hub's events to the rooms that may see them."""

    def __init__(self, hub: EventHub, authenticator: Authenticator, origins: list[str]):
        self.hub = hub
        self.authenticator = authenticator
        self.server = socketio.AsyncServer(
            async_mode="asgi",
            # Browsers from other origins only when HEADWATER_CORS_ORIGINS names them.
            cors_allowed_origins=origins or None,
            logger=False,
            engineio_logger=False,
        )
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)
        hub.listeners.append(self._relay)
        self._recheck_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._recheck_task = asyncio.get_running_loop().create_task(self._recheck())

    async def stop(self) -> None:
        if self._recheck_task is not None:
            self._recheck_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recheck_task

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        given = auth if isinstance(auth, dict) else {}
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        header = (
            _bearer(str(given.get("token") or ""))
            or environ.get("HTTP_AUTHORIZATION")
            or _bearer(query.get("token"))
        )
        try:
            user = await _user(self.authenticator, header)
        except ServiceUnavailable:
            raise socketio.exceptions.ConnectionRefusedError(BUSY) from None
        if user is None:
            raise socketio.exceptions.ConnectionRefusedError(INVALID)
        CLIENTS.labels("socketio").inc()
        await self.server.save_session(sid, {"user": user, "header": header})
        since = _since(given.get("since", query.get("since")))
        if since is None:
            await self._join(sid, user)
        else:
            # What was missed first, then the live events: the rooms are joined after.
            self.server.start_background_task(self._resume, sid, user, since)

    async def _join(self, sid: str, user: CurrentUser) -> None:
        await self.server.enter_room(sid, f"user:{user.id}")
        await self.server.enter_room(sid, f"role:{user.role}")
        await self.server.enter_room(sid, "everyone")

    async def _disconnect(self, sid: str, *_: Any) -> None:
        CLIENTS.labels("socketio").dec()

    async def _resume(self, sid: str, user: CurrentUser, since: int) -> None:
        """Send what ``sid`` missed, join its rooms, then send what came meanwhile (an
        event in that short window may come twice: clients keep the ids they saw)."""
        missed = await self.hub.replay(user, since)
        for message in missed.messages:
            await self.server.emit(message["kind"], _payload(message), to=sid)
        await self._join(sid, user)
        last = missed.last
        if missed.complete:
            meanwhile = await self.hub.replay(user, last)
            for message in meanwhile.messages:
                await self.server.emit(message["kind"], _payload(message), to=sid)
            last = meanwhile.last
        await self.server.emit("ready", {"lastEventId": last, "more": not missed.complete}, to=sid)

    async def _relay(self, message: dict[str, Any]) -> None:
        await self.server.emit(message["kind"], _payload(message), to=rooms_of(message))

    async def _recheck(self) -> None:
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            for sid, _ in list(self.server.manager.get_participants("/", "everyone")):
                try:
                    session = await self.server.get_session(sid)
                except KeyError:
                    continue
                header = session.get("header")
                if not header or not await _still_valid(self.authenticator, header):
                    await self.server.disconnect(sid)

    def mount(self) -> Any:
        """Socket.IO's ASGI app, mounted at ``/socket.io`` beside the Litestar routes."""
        app = socketio.ASGIApp(self.server, socketio_path=None)

        @asgi("/socket.io", is_mount=True, opt={"exclude_from_auth": True}, include_in_schema=False)
        async def socket_io(scope: Scope, receive: Receive, send: Send) -> None:
            await app(scope, receive, send)

        return socket_io


def _payload(message: dict[str, Any]) -> dict[str, Any]:
    """A Socket.IO event: its data, with the event id clients resume from as ``id``."""
    return {**message["data"], "id": message["id"]}
