"""Send OpenLineage events: appended to a JSON-lines file and/or POSTed to an endpoint.

Configured by ``HEADWATER_OPENLINEAGE_FILE`` and ``HEADWATER_OPENLINEAGE_URL`` (with
``HEADWATER_OPENLINEAGE_API_KEY`` as a bearer token); with neither, nothing is sent.

Lineage is a side channel: a file that cannot be written or an endpoint that is
down, slow or refuses an event is logged (where, what happened, never the key) and
the load or build it describes goes on. A transient failure (connection refused or
cut, timeout, 429, 5xx) is tried again a few times with a growing wait; once an
endpoint has failed every attempt, the next events of the same emitter get one
attempt each for a while (in this process), so a dead endpoint costs a run seconds,
not minutes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

if TYPE_CHECKING:
    from headwater.settings import Settings

log = logging.getLogger(__name__)

LINEAGE_PATH = "/api/v1/lineage"
"""The OpenLineage HTTP API's path (Marquez, DataHub, OpenMetadata's receivers)."""
ATTEMPTS = 3
FIRST_WAIT_SECONDS = 0.5
DOWN_SECONDS = 300.0
"""After an endpoint failed every attempt, events sent to it within this time get one."""

_down_since: dict[str, float] = {}
"""Endpoint → when it last failed every attempt (this process)."""


def enabled(settings: Settings) -> bool:
    """Whether any OpenLineage destination is configured."""
    return bool(settings.openlineage_url or settings.openlineage_file)


def endpoint(url: str) -> str:
    """The URL events are POSTed to: ``url`` itself, or ``url`` + ``/api/v1/lineage``
    when it names only a server (``http://marquez:5000``)."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, LINEAGE_PATH, parts.query, ""))
    return url


def shown(url: str) -> str:
    """``url`` as a log line may show it: no user, password or query string."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status == 429 or status >= 500
    return isinstance(exc, httpx.TransportError)


class Emitter:
    """Sends each event to the configured file and endpoint; never raises."""

    def __init__(
        self,
        *,
        url: str | None = None,
        file: Path | None = None,
        api_key: str | None = None,
        timeout: float = 5.0,
        attempts: int = ATTEMPTS,
        first_wait: float = FIRST_WAIT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = endpoint(url) if url else None
        self.file = file
        self._api_key = api_key
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._first_wait = first_wait
        self._transport = transport
        self._client: httpx.Client | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Emitter | None:
        """The emitter ``settings`` configure; None when no destination is set."""
        if not enabled(settings):
            return None
        file = settings.openlineage_file
        if file is not None and not file.expanduser().is_absolute():
            file = settings.home_dir / file
        key = settings.openlineage_api_key
        return cls(
            url=settings.openlineage_url or None,
            file=file.expanduser() if file is not None else None,
            api_key=key.get_secret_value() if key is not None else None,
            timeout=settings.openlineage_timeout_seconds,
        )

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Write and send ``event``; True when every destination took it."""
        what = f"{event.get('eventType', 'an')} event of job {event.get('job', {}).get('name')}"
        try:
            line = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            log.warning("OpenLineage: the %s cannot be written as JSON (%s)", what, exc)
            return False
        delivered = True
        if self.file is not None:
            delivered &= self._append(self.file, line, what)
        if self.url is not None:
            delivered &= self._post(self.url, line, what)
        return delivered

    def _append(self, file: Path, line: str, what: str) -> bool:
        data = (line + "\n").encode("utf-8")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            # One write on an O_APPEND descriptor: lines of processes writing at once
            # do not interleave.
            descriptor = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = 0
                while written < len(data):
                    written += os.write(descriptor, data[written:])
            finally:
                os.close(descriptor)
        except OSError as exc:
            log.warning(
                "OpenLineage: the %s could not be appended to %s (%s); the run goes on",
                what,
                file,
                exc.strerror or exc,
            )
            return False
        return True

    def _http(self) -> httpx.Client:
        if self._client is None:
            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = httpx.Client(
                timeout=httpx.Timeout(self._timeout),
                headers=headers,
                transport=self._transport,
                follow_redirects=False,
            )
        return self._client

    def _post(self, url: str, line: str, what: str) -> bool:
        failed_at = _down_since.get(url)
        down = failed_at is not None and time.monotonic() - failed_at < DOWN_SECONDS
        attempts = 1 if down else self._attempts

        def send() -> None:
            response = self._http().post(url, content=line.encode("utf-8"))
            response.raise_for_status()

        try:
            for attempt in Retrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential(multiplier=self._first_wait, max=8),
                retry=retry_if_exception(_transient),
                reraise=True,
            ):
                with attempt:
                    send()
        except httpx.HTTPStatusError as exc:
            if _transient(exc):
                _down_since[url] = time.monotonic()
            log.warning(
                "OpenLineage: %s answered %s to the %s; the event is not recorded there, "
                "the run goes on",
                shown(url),
                exc.response.status_code,
                what,
            )
            return False
        except httpx.HTTPError as exc:
            _down_since[url] = time.monotonic()
            reason = f"{type(exc).__name__}: {exc}".replace(url, shown(url))
            if self._api_key:
                reason = reason.replace(self._api_key, "***")
            log.warning(
                "OpenLineage: the %s could not be sent to %s after %s attempt(s) (%s); "
                "the run goes on",
                what,
                shown(url),
                attempts,
                reason,
            )
            return False
        _down_since.pop(url, None)
        return True
