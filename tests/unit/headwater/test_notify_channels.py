"""Channel URLs: what kind each is, a display form with no secret left, and errors that
never quote a secret."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from urllib.parse import quote

import pytest

from headwater.notify.channels import (
    MAX_URL_LENGTH,
    ChannelFailed,
    ChannelInvalid,
    check_url,
    mask_url,
    scrub,
    send,
)

pytestmark = pytest.mark.unit

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"

# url, kind, secrets it holds, parts a reader must still recognise
URLS: list[tuple[str, str, list[str], list[str]]] = [
    (
        "mailto://alerts:Sm7pPassw0rd@mail.example.com?to=ops@example.com",
        "mailto",
        ["Sm7pPassw0rd"],
        ["mail.example.com", "alerts"],
    ),
    (
        "mailtos://alerts:Sm7pPassw0rd@gmail.com",
        "mailtos",
        ["Sm7pPassw0rd"],
        ["gmail.com"],
    ),
    (
        "mailto://127.0.0.1:2525?from=headwater@example.com&to=ops@example.com",
        "mailto",
        [],
        ["127.0.0.1", "2525"],
    ),
    (f"tgram://{BOT_TOKEN}/987654321", "tgram", ["AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"], []),
    (
        "json://hook:JsonPassw0rd@hooks.example.com:8443/notify?token=QueryTok99",
        "json",
        ["JsonPassw0rd", "QueryTok99"],
        ["hooks.example.com", "8443", "notify", "hook"],
    ),
    (
        "jsons://hooks.example.com/in?+Authorization=Bearer%20HdrSecret55&:api_key=GetKey77"
        "&-signature=FieldSig88",
        "jsons",
        ["HdrSecret55", "GetKey77", "FieldSig88"],
        ["hooks.example.com", "Authorization"],
    ),
    (
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts",
        "slack",
        ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"],
        ["alerts"],
    ),
    (
        "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ",
        "slack",
        ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"],
        [],
    ),
    (
        "slack://xoxb-1234-1234-4ddbc191d40ee098cbaae6f3523ada2d/#alerts",
        "slack",
        ["4ddbc191d40ee098cbaae6f3523ada2d"],
        ["alerts"],
    ),
    (
        "discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js",
        "discord",
        ["4174216298", "JHMHI8qBe7bk2ZwO5U711o3dV_js"],
        [],
    ),
    (
        "ntfy://alerts:NtfyPassw0rd@ntfy.example.com/headwater",
        "ntfy",
        ["NtfyPassw0rd"],
        ["ntfy.example.com", "headwater"],
    ),
    ("gotify://gotify.example.com/AbCdEf0123456789", "gotify", ["AbCdEf0123456789"], []),
    (
        "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
        "pover",
        ["uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi"],
        [],
    ),
]


@pytest.mark.parametrize(("url", "kind", "secrets", "visible"), URLS)
def test_every_secret_is_masked_and_the_rest_stays_readable(
    url: str, kind: str, secrets: list[str], visible: list[str]
) -> None:
    assert check_url(url) == kind
    masked = mask_url(url)
    assert masked.startswith(f"{kind}://")
    for secret in secrets:
        assert secret not in masked
        assert quote(secret, safe="") not in masked
    for part in visible:
        assert part in masked
    assert len(masked) <= MAX_URL_LENGTH


def test_mask_url_keeps_apprise_masks_for_passwords() -> None:
    masked = mask_url("ntfy://alerts:NtfyPassw0rd@ntfy.example.com/headwater")
    assert masked.startswith("ntfy://alerts:****@ntfy.example.com/headwater")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "a channel URL is required"),
        ("   ", "a channel URL is required"),
        ("hooks.example.com/notify", "must start with a service scheme"),
        ("foo://bar", "unknown channel kind foo://"),
        ("https://example.com/webhook", "is not a service apprise knows"),
        ("tgram://abc/123", "apprise cannot parse this tgram:// URL"),
        ("json://" + "a" * MAX_URL_LENGTH, "too long"),
    ],
)
def test_invalid_urls_are_refused_with_a_clear_reason(url: str, message: str) -> None:
    with pytest.raises(ChannelInvalid, match=message):
        check_url(url)
    with pytest.raises(ChannelInvalid, match=message):
        mask_url(url)


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("slack://S3cretTokenA1/S3cretTokenB2", "S3cretTokenA1"),
        ("slack://S3cretTokenA1/S3cretTokenB2", "S3cretTokenB2"),
        ("tgram://abc:S3cretBotToken/", "S3cretBotToken"),
        ("mailto://user:S3cretPassw0rd@", "S3cretPassw0rd"),
        ("pover://S3cretUserKey@", "S3cretUserKey"),
        ("discord://S3cretWebhookId", "S3cretWebhookId"),
        ("unknown://user:S3cretPassw0rd@host", "S3cretPassw0rd"),
        ("json://user:S3cretPassw0rd@" + "h" * MAX_URL_LENGTH, "S3cretPassw0rd"),
    ],
)
def test_errors_never_quote_a_secret(url: str, secret: str) -> None:
    with pytest.raises(ChannelInvalid) as caught:
        check_url(url)
    assert secret not in str(caught.value)
    assert caught.value.message


def test_the_plugin_reason_is_given_without_the_secret() -> None:
    with pytest.raises(ChannelInvalid) as caught:
        check_url("slack://S3cretTokenA1/S3cretTokenB2")
    text = str(caught.value)
    assert "Slack" in text  # the plugin's own reason
    assert "S3cretToken" not in text


def test_scrub_replaces_written_decoded_and_encoded_forms() -> None:
    text = "login p@ss/word! failed; sent p%40ss%2Fword%21 to the server"
    assert scrub(text, ["p%40ss%2Fword%21"]) == "login **** failed; sent **** to the server"


def test_home_directory_configuration_and_plugins_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "plugin-was-loaded"
    plugins = tmp_path / ".apprise" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "evil.py").write_text(
        "from pathlib import Path\n"
        "from apprise.decorators import notify\n"
        f"Path({str(marker)!r}).write_text('loaded')\n"
        "@notify(on='evil')\n"
        "def evil(body, title, **kwargs):\n"
        "    return True\n"
    )
    (tmp_path / ".apprise.yml").write_text("urls:\n  - json://config.example.com/\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("APPRISE_CONFIG_PATH", str(tmp_path / ".apprise.yml"))
    with pytest.raises(ChannelInvalid, match="unknown channel kind evil://"):
        check_url("evil://anything")
    assert check_url("json://hooks.example.com/") == "json"
    assert not marker.exists()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_channel_fails_with_the_socket_error_and_no_secret() -> None:
    port = _closed_port()
    with pytest.raises(ChannelFailed) as caught:
        send(f"json://hook:S3cretPassw0rd@127.0.0.1:{port}/in", "title", "body", timeout=2)
    text = str(caught.value)
    assert "Connection refused" in text
    assert "S3cretPassw0rd" not in text


def test_a_send_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        send("json://127.0.0.1/in", "title", "body", timeout=0)


def test_apprise_log_lines_never_reach_the_application_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from apprise.plugins.telegram import NotifyTelegram

    monkeypatch.setattr(NotifyTelegram, "notify_url", f"http://127.0.0.1:{_closed_port()}/bot")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ChannelFailed) as caught:
        send(f"tgram://{BOT_TOKEN}/987654321", "title", "body", timeout=2)
    assert "Connection refused" in str(caught.value)
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in str(caught.value)
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in caplog.text
