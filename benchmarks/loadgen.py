"""A small HTTP/1.1 keep-alive load generator: pure asyncio, one prebuilt request per run.

    python -m benchmarks.loadgen --url http://127.0.0.1:8000/api/catalog/datasets?limit=50 \\
        --header 'Authorization: Bearer ...' --connections 32 --duration 10 --json

Each of ``--connections`` connections sends the same request, waits for the whole
answer (``Content-Length`` or chunked), and sends it again, for a short warm-up and
then for ``--duration`` seconds. Only answers to requests started after the warm-up
and completed before the end count. It reports requests per second, latency
percentiles and the count of answers by status code, plus transport errors and
timeouts, so a fast run made of 401s or resets cannot pass for a good one.

Run it in its own process (uvloop when importable), so that it and the server each
get a core. From Python: :func:`run_load` for a timed run, :func:`burst` for N
requests sent at the same moment over N connections.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

WATCHDOG_INTERVAL_SECONDS = 0.05
T = TypeVar("T")


class HTTPProtocolError(ConnectionError):
    """The server sent something this client cannot read as an HTTP/1.1 response."""


class ServerClosed(ConnectionError):
    """The server closed the connection before the response was complete."""


class RequestTimeout(TimeoutError):
    """No complete response within the timeout."""


@dataclass(frozen=True)
class Target:
    """Where requests go: host, port and the request target (path plus query)."""

    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only http:// URLs with a host are supported, not {url!r}")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(parts.hostname, parts.port or 80, path)

    @property
    def authority(self) -> str:
        return self.host if self.port == 80 else f"{self.host}:{self.port}"


def parse_header(line: str) -> tuple[str, str]:
    """``'Name: value'`` as ``('Name', 'value')``."""
    name, sep, value = line.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"a header is 'Name: value', not {line!r}")
    return name.strip(), value.strip()


def build_request(
    target: Target,
    method: str = "GET",
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
) -> bytes:
    """The bytes of one keep-alive HTTP/1.1 request, built once and sent many times."""
    if method.upper() == "HEAD":
        raise ValueError("HEAD is not supported: its answers announce a body they do not carry")
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {name.lower() for name, _ in pairs}
    lines = [f"{method} {target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.authority}")
    lines.extend(f"{name}: {value}" for name, value in pairs)
    if body is not None and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    if body is not None and "content-type" not in names:
        lines.append("Content-Type: application/json")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + (body or b"")


@dataclass(frozen=True)
class Reply:
    """One complete response."""

    status: int
    headers: dict[str, str]
    """Header names in lower case (the last one wins when a name repeats)."""
    body: bytes
    latency_ns: int
    started_ns: int
    keep_alive: bool


def _parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """The body of a chunked message starting at ``start`` and where it ends, if complete."""
    position = start
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise HTTPProtocolError(f"bad chunk size {size_text!r}") from exc
        position = line_end + 2
        if size == 0:
            # Trailers, if any, end with an empty line.
            while True:
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                if line_end == position:
                    return b"".join(parts), line_end + 2
                position = line_end + 2
        if len(buffer) < position + size + 2:
            return None
        parts.append(bytes(buffer[position : position + size]))
        position += size + 2


class Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.started_ns = 0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Reply] | None = None
        self._head: tuple[int, dict[str, str], int] | None = None  # status, headers, body start
        self._keep_alive = True

    @classmethod
    async def open(cls, target: Target, timeout: float = 10.0) -> Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await asyncio.wait_for(
            loop.create_connection(cls, target.host, target.port), timeout
        )
        return protocol

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._waiter is None or self._waiter.done():
            return
        try:
            reply = self._parse(eof=False)
        except HTTPProtocolError as exc:
            self._fail(exc)
            return
        if reply is not None:
            self._waiter.set_result(reply)

    def eof_received(self) -> bool | None:
        self._finish_at_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish_at_eof(exc)

    # requests

    def send(self, payload: bytes) -> asyncio.Future[Reply]:
        """Write ``payload``; the future resolves with the complete reply."""
        if self.closed or self.transport is None:
            raise ServerClosed("the connection is closed")
        if self._waiter is not None and not self._waiter.done():
            raise RuntimeError("one request at a time per connection")
        self._waiter = asyncio.get_running_loop().create_future()
        self._head = None
        self.started_ns = time.perf_counter_ns()
        self.transport.write(payload)
        return self._waiter

    def expire(self, timeout_ns: int, now_ns: int) -> None:
        """Fail the request in flight, and drop the connection, if it is older than the timeout."""
        if (
            self._waiter is not None
            and not self._waiter.done()
            and now_ns - self.started_ns > timeout_ns
        ):
            self._fail(RequestTimeout(f"no complete response in {timeout_ns / 1e9:g} s"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def _finish_at_eof(self, exc: Exception | None = None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        try:
            reply = self._parse(eof=True)
        except HTTPProtocolError as error:
            self._waiter.set_exception(error)
            return
        if reply is not None:
            self._waiter.set_result(reply)
        else:
            reason = f": {exc}" if exc else ""
            self._waiter.set_exception(ServerClosed(f"closed before a full response{reason}"))

    def _parse(self, *, eof: bool) -> Reply | None:
        buffer = self._buffer
        if self._head is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return None
            lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
            try:
                version, code, *_ = lines[0].split(" ", 2)
                status = int(code)
            except ValueError as exc:
                raise HTTPProtocolError(f"bad status line {lines[0]!r}") from exc
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            connection = headers.get("connection", "").lower()
            self._head = (status, headers, end + 4)
            self._keep_alive = version == "HTTP/1.1" and connection != "close"
        status, headers, start = self._head
        if "content-length" in headers:
            try:
                total = start + int(headers["content-length"])
            except ValueError as exc:
                raise HTTPProtocolError(
                    f"bad Content-Length {headers['content-length']!r}"
                ) from exc
            if len(buffer) < total:
                return None
            body = bytes(buffer[start:total])
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parsed = _parse_chunked(buffer, start)
            if parsed is None:
                return None
            body, total = parsed
        elif status in (204, 304) or 100 <= status < 200:
            body, total = b"", start
        elif eof:  # the body runs to the end of the connection
            body, total = bytes(buffer[start:]), len(buffer)
            self._keep_alive = False
        else:
            return None
        del buffer[:total]
        now = time.perf_counter_ns()
        self._head = None
        return Reply(
            status, headers, body, now - self.started_ns, self.started_ns, self._keep_alive
        )


async def _watchdog(connections: Sequence[Connection], timeout: float) -> None:
    """Fail requests older than ``timeout``: one timer for every connection."""
    timeout_ns = int(timeout * 1e9)
    while True:
        await asyncio.sleep(WATCHDOG_INTERVAL_SECONDS)
        now = time.perf_counter_ns()
        for connection in connections:
            connection.expire(timeout_ns, now)


def percentile(sorted_values: Sequence[int], percent: float) -> int:
    """Nearest-rank percentile of already sorted values (0 when there are none)."""
    if not sorted_values:
        return 0
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class LoadResult:
    """What a timed run measured."""

    url: str
    method: str
    connections: int
    duration_s: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_body_bytes: float
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    """Transport failures by kind, ``RequestTimeout`` among them."""

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def failed(self) -> int:
        """Answers that were not 2xx plus requests that got no answer at all."""
        return self.non_2xx + sum(self.errors.values())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadResult:
        values = dict(data)
        values["statuses"] = {int(k): v for k, v in values["statuses"].items()}
        return cls(**values)

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"{self.method} {self.url}  {self.connections} connections, {self.duration_s:g} s\n"
            f"  {self.requests_per_s:,.0f} req/s ({self.requests:,} requests), "
            f"latency p50 {self.p50_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms, max {self.max_ms:.2f} ms\n"
            f"  statuses {{{statuses}}}, transport errors: {errors}, "
            f"mean body {self.mean_body_bytes:,.0f} bytes"
        )


async def run_load(
    url: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    method: str = "GET",
    body: bytes | None = None,
    connections: int = 32,
    duration: float = 10.0,
    warmup: float = 2.0,
    timeout: float = 10.0,
) -> LoadResult:
    """Keep ``connections`` connections busy with the same request for ``warmup + duration`` s.

    The sample is every request started in the measured window: each ends as a
    reply (its latency and status recorded, even when it completes after the
    window) or as a transport error. Requests in flight at the end are waited
    for, up to ``timeout``, so a server that stops answering shows up as
    ``RequestTimeout`` errors rather than as a quiet gap. A failed connection
    (reset, protocol error, timeout) is counted in ``errors`` and replaced. A
    non-2xx answer during the warm-up is counted in ``errors`` too.
    """
    target = Target.parse(url)
    payload = build_request(target, method, headers, body)
    live: list[Connection] = []
    latencies: list[int] = []
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    body_bytes = 0
    started = time.perf_counter_ns()
    measure_from = started + int(warmup * 1e9)
    measure_to = measure_from + int(duration * 1e9)

    async def worker(slot: int) -> None:
        nonlocal body_bytes
        connection: Connection | None = None
        while time.perf_counter_ns() < measure_to:
            if connection is None or connection.closed:
                try:
                    connection = await Connection.open(target, timeout)
                except (OSError, TimeoutError) as exc:
                    errors[f"connect: {type(exc).__name__}"] += 1
                    connection = None
                    await asyncio.sleep(0.01)
                    continue
                live[slot] = connection
            try:
                reply = await connection.send(payload)
            except (ConnectionError, TimeoutError) as exc:
                errors[type(exc).__name__] += 1
                connection.close()
                continue
            if reply.started_ns >= measure_from:
                latencies.append(reply.latency_ns)
                statuses[reply.status] += 1
                body_bytes += len(reply.body)
            elif not 200 <= reply.status < 300:
                errors[f"warm-up answer {reply.status}"] += 1
            if not reply.keep_alive:
                connection.close()
        if connection is not None:
            connection.close()

    placeholder = Connection()  # closed, never connected: stands in until a slot connects
    placeholder.closed = True
    live.extend([placeholder] * connections)
    watchdog = asyncio.ensure_future(_watchdog(live, timeout))
    workers = [asyncio.ensure_future(worker(slot)) for slot in range(connections)]
    try:
        remaining = (measure_to - time.perf_counter_ns()) / 1e9
        await asyncio.wait(workers, timeout=max(remaining, 0) + timeout + 1)
    finally:
        for task in (*workers, watchdog):
            task.cancel()
        await asyncio.gather(*workers, watchdog, return_exceptions=True)
        for connection in live:
            connection.close()
    for task in workers:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # a bug in the worker, not the server

    latencies.sort()
    count = len(latencies)
    return LoadResult(
        url=url,
        method=method,
        connections=connections,
        duration_s=duration,
        requests=count,
        requests_per_s=count / duration,
        p50_ms=percentile(latencies, 50) / 1e6,
        p90_ms=percentile(latencies, 90) / 1e6,
        p99_ms=percentile(latencies, 99) / 1e6,
        max_ms=(latencies[-1] if latencies else 0) / 1e6,
        mean_body_bytes=body_bytes / count if count else 0.0,
        statuses=dict(statuses),
        errors=dict(errors),
    )


@dataclass(frozen=True)
class Outcome:
    """What became of one request of a burst: a reply, or the error that stood for it."""

    reply: Reply | None
    error: str | None

    @property
    def status(self) -> int | None:
        return self.reply.status if self.reply is not None else None


async def burst(
    url: str,
    count: int,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    method: str = "GET",
    body: bytes | None = None,
    timeout: float = 60.0,
    connect_timeout: float = 30.0,
) -> list[Outcome]:
    """Open ``count`` connections, then send one request on each at the same moment.

    All connections are established first; the requests are then written in one
    pass of the event loop, so the server sees them arrive together. Every
    request ends as a reply or an error (``RequestTimeout`` after ``timeout`` s).
    """
    target = Target.parse(url)
    payload = build_request(target, method, headers, body)
    opened = await asyncio.gather(
        *(Connection.open(target, connect_timeout) for _ in range(count)),
        return_exceptions=True,
    )
    connections = [c for c in opened if isinstance(c, Connection)]
    futures: list[asyncio.Future[Reply] | BaseException] = []
    for item in opened:
        if isinstance(item, Connection):
            try:
                futures.append(item.send(payload))
            except ConnectionError as exc:
                futures.append(exc)
        else:
            futures.append(item)
    watchdog = asyncio.ensure_future(_watchdog(connections, timeout))
    try:
        pending = [f for f in futures if isinstance(f, asyncio.Future)]
        if pending:
            await asyncio.wait(pending)
    finally:
        watchdog.cancel()
        await asyncio.gather(watchdog, return_exceptions=True)
        for connection in connections:
            connection.close()
    outcomes: list[Outcome] = []
    for future in futures:
        if isinstance(future, asyncio.Future):
            failure = future.exception()
            outcomes.append(
                Outcome(None, f"{type(failure).__name__}: {failure}")
                if failure is not None
                else Outcome(future.result(), None)
            )
        else:
            outcomes.append(Outcome(None, f"connect: {type(future).__name__}: {future}"))
    return outcomes


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` on uvloop when it is importable, on asyncio's own loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="http://host:port/path?query")
    parser.add_argument(
        "--header", "-H", action="append", default=[], help="'Name: value' (repeatable)"
    )
    parser.add_argument("--method", "-X", default="GET")
    parser.add_argument("--data", "-d", help="request body (sent as application/json)")
    parser.add_argument("--connections", "-c", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--cpu", type=int, help="pin this process to one CPU (Linux)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    result = run(
        run_load(
            args.url,
            headers=[parse_header(h) for h in args.header],
            method=args.method,
            body=args.data.encode() if args.data is not None else None,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            timeout=args.timeout,
        )
    )
    if args.json:
        json.dump(result.to_json(), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(result.summary())


if __name__ == "__main__":
    main()
