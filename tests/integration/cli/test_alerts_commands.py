"""``headwater alerts list|test`` as an operator uses them: the default rules after init,
a firing alert, a test message to a real local webhook and to one that is down."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from benchmarks.api import free_port
from headwater.cli import main
from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.notify.alerting import Finding, apply
from headwater.notify.models import AlertRule, Channel
from headwater.secrets import SecretBox
from headwater.settings import get_settings

pytestmark = pytest.mark.integration


class Hook(BaseHTTPRequestHandler):
    titles: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        import json

        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Hook.titles.append(json.loads(body or b"{}").get("title", ""))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("HEADWATER_SECRET_KEYS", "HEADWATER_DATABASE_URL", "HEADWATER_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    get_settings.cache_clear()
    upgrade(get_settings().metadata_url)
    yield tmp_path
    get_settings.cache_clear()


def run(*args: str) -> Result:
    get_settings.cache_clear()
    return CliRunner().invoke(main, list(args))


def test_list_shows_the_default_rules_and_what_fires(home: Path) -> None:
    listed = run("alerts", "list")
    assert listed.exit_code == 0, listed.output
    assert "A job failed" in listed.output and "run_failed" in listed.output
    assert "success_rate_below 95 over 1440 min" in listed.output
    assert "alerts: none firing" in listed.output

    settings = get_settings()
    with session_scope(settings.metadata_url) as session:
        rule = session.scalar(select(AlertRule).where(AlertRule.builtin == "job_failed"))
        assert rule is not None
        apply(session, Finding(rule=rule, subject="job:7", firing=True, message="job 7 failed"))
    firing = run("alerts", "list")
    assert "firing" in firing.output and "A job failed: job 7 failed" in firing.output


def test_test_sends_to_each_channel_and_says_which_failed(home: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.titles.clear()
    settings = get_settings()
    box = SecretBox.from_settings(settings)
    urls = {
        "good": f"json://hook:good-secret@127.0.0.1:{server.server_address[1]}/x",
        "down": f"json://hook:down-secret@127.0.0.1:{free_port()}/x",
    }
    try:
        with session_scope(settings.metadata_url) as session:
            for name, url in urls.items():
                session.add(
                    Channel(
                        name=name,
                        kind="json",
                        url_encrypted=box.encrypt(url),
                        url_masked=url.replace(f"{name}-secret", "****"),
                    )
                )
        one = run("alerts", "test", "good")
        assert one.exit_code == 0, one.output
        assert "good (json://hook:****@" in one.output and ": sent" in one.output
        assert Hook.titles == ["Headwater test message"]

        every = run("alerts", "test")
        assert every.exit_code == 1
        assert "down (" in every.output and "FAILED:" in every.output
        assert "Connection refused" in every.output
        assert "1 of 2 channel(s) failed" in every.output
        assert "secret" not in every.output
        missing = run("alerts", "test", "nope")
        assert missing.exit_code == 1 and "no channel 'nope'" in missing.output
    finally:
        server.shutdown()
