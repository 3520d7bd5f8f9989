"""``rest_api`` sources against a real local HTTP server started by the test.

The server speaks like a SaaS API: bearer tokens, API keys in the query, HTTP basic;
page-number pagination in the body, next links in the ``Link`` header; a ``since``
parameter for incremental reads; child resources per parent row; and it throttles
(429 with ``Retry-After``) and fails (503) now and then. Loads are real dlt loads into
DuckDB and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.errors import IngestError, SpecError
from ingest.runner import run_source
from ingest.sources import check_connection
from ingest.spec import SourceSpec, parse_sources
from tests.conftest import make_settings
from tests.integration.ingest.warehouses import WAREHOUSES, warehouse_rows, warehouse_settings

pytestmark = pytest.mark.integration

TOKEN = "rest-token-7731"
API_KEY = "key-4410"
PER_PAGE = 3


@dataclass
class Api:
    """State of the fake SaaS: its data, its rules, what it saw."""

    tickets: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    throttle: set[str] = field(default_factory=set)  # "path?query" answered 429 once
    fail: set[str] = field(default_factory=set)  # answered 503 once
    base_url: str = ""


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            api.calls[url.path] += 1
            if self.path in api.throttle:
                api.throttle.discard(self.path)
                self._send(429, {"error": "slow down"}, {"Retry-After": "1"})
                return
            if self.path in api.fail:
                api.fail.discard(self.path)
                self._send(503, {"error": "try later"})
                return
            if url.path.startswith("/v1/tickets"):
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self._send(401, {"error": "unauthorized"})
                    return
                self._tickets(url.path, query)
            elif url.path == "/v1/users":
                if query.get("key") != API_KEY:
                    self._send(403, {"error": "bad key"})
                    return
                page = int(query.get("page", "1"))
                rows = api.users[(page - 1) * PER_PAGE : page * PER_PAGE]
                headers = {}
                if page * PER_PAGE < len(api.users):
                    headers["Link"] = (
                        f'<{api.base_url}/users?key={API_KEY}&page={page + 1}>; rel="next"'
                    )
                self._send(200, rows, headers)
            elif url.path == "/v1/me":
                expected = base64.b64encode(b"ana:basic-pw").decode()
                ok = self.headers.get("Authorization") == f"Basic {expected}"
                self._send(200 if ok else 401, {"id": 1, "name": "Ana"} if ok else {})
            else:
                self._send(404, {"error": "no such endpoint"})

        def _tickets(self, path: str, query: dict[str, str]) -> None:
            parts = path.strip("/").split("/")
            if len(parts) == 4 and parts[3] == "comments":
                ticket = int(parts[2])
                self._send(200, [{"id": ticket * 10 + i, "body": f"c{i}"} for i in range(2)])
                return
            since = query.get("since")
            rows = [t for t in api.tickets if since is None or t["updated_at"] >= since]
            page = int(query.get("page", "1"))
            pages = max(1, -(-len(rows) // PER_PAGE))
            body = {"items": rows[(page - 1) * PER_PAGE : page * PER_PAGE], "total_pages": pages}
            self._send(200, body)

    return Handler


@pytest.fixture
def api() -> Iterator[Api]:
    state = Api(
        tickets=[
            {"id": i, "title": f"t{i}", "updated_at": f"2026-01-{i:02d}T00:00:00Z"}
            for i in range(1, 8)
        ],
        users=[{"id": i, "name": f"u{i}"} for i in range(1, 6)],
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def source(
    api: Api, tables: str, auth: str = "{type: bearer, token: '${TICKETS_TOKEN}'}"
) -> SourceSpec:
    text = (
        "sources:\n  desk:\n    kind: rest_api\n    client:\n"
        f"      base_url: {api.base_url}\n      auth: {auth}\n    tables:\n{tables}"
    )
    env = {"TICKETS_TOKEN": TOKEN, "USERS_KEY": API_KEY, "BASIC_PW": "basic-pw"}
    return parse_sources(text, env=env).sources["desk"]


TICKETS = """\
      tickets:
        endpoint:
          path: tickets
          data_selector: items
          paginator: {type: page_number, base_page: 1, total_path: total_pages}
        primary_key: id
        cursor: updated_at
        cursor_param: since
      comments:
        endpoint: {path: "tickets/{resources.tickets.id}/comments", paginator: single_page}
        primary_key: id
"""


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_paginated_authenticated_incremental_with_children_and_retries(
    tmp_path: Path, warehouse: str, request: pytest.FixtureRequest, api: Api
) -> None:
    api.throttle.add("/v1/tickets?page=2")
    api.fail.add("/v1/tickets?page=3")
    settings = warehouse_settings(tmp_path, warehouse, request)
    desk = source(api, TICKETS)

    first = run_source(settings, "desk", desk)
    assert first.rows["tickets"] == 7
    assert first.rows["comments"] == 14
    assert warehouse_rows(settings, "desk", "select count(*) from {schema}.tickets") == [(7,)]
    assert api.calls["/v1/tickets"] == 5  # 3 pages, one throttled and one failed once

    api.tickets[6]["title"] = "changed"
    api.tickets[6]["updated_at"] = "2026-02-01T00:00:00Z"
    api.tickets.append({"id": 8, "title": "t8", "updated_at": "2026-02-02T00:00:00Z"})
    second = run_source(settings, "desk", desk)
    assert second.rows["tickets"] == 2  # only what changed since the last cursor value
    assert warehouse_rows(settings, "desk", "select count(*) from {schema}.tickets") == [(8,)]
    assert warehouse_rows(settings, "desk", "select title from {schema}.tickets where id = 7") == [
        ("changed",)
    ]


def test_link_header_pagination_with_an_api_key_in_the_query(tmp_path: Path, api: Api) -> None:
    users = "      users:\n        endpoint: {path: users, paginator: header_link}\n"
    users += "        primary_key: id\n"
    desk = source(
        api, users, auth="{type: api_key, name: key, location: query, api_key: '${USERS_KEY}'}"
    )
    summary = run_source(make_settings(tmp_path), "desk", desk)
    assert summary.rows["users"] == 5
    assert api.calls["/v1/users"] == 2


def test_connection_checks_report_the_status_and_never_the_secret(api: Api) -> None:
    check_connection(source(api, TICKETS))
    check_connection(
        source(
            api, "      me: {}\n", auth="{type: http_basic, username: ana, password: '${BASIC_PW}'}"
        )
    )
    wrong = parse_sources(
        f"sources:\n  desk:\n    kind: rest_api\n    client:\n      base_url: {api.base_url}\n"
        "      auth: {type: bearer, token: '${T}'}\n    tables: {tickets: }\n",
        env={"T": "wrong-token-123"},
    ).sources["desk"]
    with pytest.raises(IngestError, match="table 'tickets': GET tickets answered 401") as info:
        check_connection(wrong)
    assert "wrong-token-123" not in str(info.value)


@pytest.mark.parametrize(
    ("client", "tables", "message"),
    [
        (
            "{auth: {type: bearer, token: written-out}, base_url: 'http://x'}",
            "{t: }",
            "clear-text secret",
        ),
        ("{base_url: 'ftp://x'}", "{t: }", "client.base_url: an http:// or https:// URL is needed"),
        ("{base_url: 'http://x', auth: {type: magic}}", "{t: }", "client.auth.type: one of"),
        (
            "{base_url: 'http://x'}",
            "{t: {cursor: updated_at, primary_key: id}}",
            "needs 'cursor_param'",
        ),
        ("{base_url: 'http://x', paginator: {type: teleport}}", "{t: }", "paginator"),
        ("{base_url: 'http://x'}", "{t: {path: a.csv}}", "belong to files"),
    ],
)
def test_bad_rest_api_sources_are_refused_in_the_files_words(
    client: str, tables: str, message: str
) -> None:
    text = f"sources:\n  desk:\n    kind: rest_api\n    client: {client}\n    tables: {tables}\n"
    with pytest.raises(SpecError) as info:
        parse_sources(text, "s.yml", env={})
    assert message in str(info.value)
    assert "written-out" not in str(info.value)
    assert "TypedDict" not in str(info.value)
