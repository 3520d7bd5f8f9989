"""Notification channels: apprise URLs checked, masked for display, and sent to.

A channel is one apprise URL (``mailto://``, ``tgram://``, ``json://``, ``slack://`` …).
Apprise is kept to that URL and nothing else: no configuration files, no plugins from
the user's home directory, no persistent storage on disk, no ``${NAME}`` templates.

Secrets in a URL (passwords, tokens, keys) never leave this module in clear: the
display form is apprise's own privacy rendering (plus the query values apprise leaves
readable but whose names say they are secret), and every error text is scrubbed of
each part of the URL that this display form hides.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from urllib.parse import quote, unquote, urlsplit

from apprise import (
    LOGGER_NAME,
    Apprise,
    AppriseAsset,
    AppriseResultStatus,
    NotificationManager,
    NotifyBase,
    NotifyFormat,
)

from headwater.errors import HeadwaterError

MAX_URL_LENGTH = 2000
"""Longest channel URL accepted (the stored masked form has the same bound)."""

DEFAULT_TIMEOUT_SECONDS = 10.0
"""The longest a channel may take to answer one message, connection included."""

MASK = "****"
MAX_ERROR_CHARS = 2000
_RESPONSE_CHARS = 300

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_NATIVE_SCHEMES = ("http", "https")  # apprise recognises some services' own web addresses
_URL_DELIMITERS = re.compile(r"[/:@?&=#,;\s]+")
# Query values apprise renders readable although their names say they are secret
# (a ``+name`` is an HTTP header, ``-name`` a payload field, ``:name`` a GET parameter).
_SECRET_NAME = re.compile(
    r"token|secret|pass|pwd|key|auth|sig|credential|cookie|session|bearer", re.I
)
_MIN_SECRET_CHARS = 3
# Apprise debug lines that carry the service's own answer or the socket's error.
_DETAIL_PREFIXES = ("Socket Exception", "Response Details")

# Apprise's log lines are secret-bearing at times ("An invalid Telegram Bot Token (…)"):
# those logged while this module works (in its context, which apprise carries into the
# worker thread that talks to the service) go to that work alone, where they are
# scrubbed, and never on to the application's logs. While a message is sent its plugin
# logs through a logger of ours, which takes apprise's debug lines too (the exact
# socket error, the service's answer) without lowering the level of the shared one.
_sink: ContextVar[list[logging.LogRecord] | None] = ContextVar(
    "headwater_notify_sink", default=None
)


class _Divert(logging.Filter):
    """Records logged in the context of a :func:`_diverted` block go to it, no further."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = _sink.get()
        if sink is None:
            return True
        if getattr(record, "apprise_capture", True):  # apprise's own "keep local" flag
            sink.append(record)
        return False


_DIVERT = _Divert()
logging.getLogger(LOGGER_NAME).addFilter(_DIVERT)
_PLUGIN_LOGGER = logging.getLogger("headwater.notify.apprise")
_PLUGIN_LOGGER.setLevel(logging.DEBUG)
_PLUGIN_LOGGER.propagate = False
_PLUGIN_LOGGER.addFilter(_DIVERT)
_PLUGIN_LOGGER.addHandler(logging.NullHandler())


@contextmanager
def _diverted() -> Iterator[list[logging.LogRecord]]:
    """The apprise records logged inside the block (kept from the application's logs)."""
    records: list[logging.LogRecord] = []
    token = _sink.set(records)
    try:
        yield records
    finally:
        _sink.reset(token)


_PLUGINS = NotificationManager()  # type: ignore[no-untyped-call]  # a singleton


class ChannelInvalid(HeadwaterError):
    """A channel URL apprise cannot use (the message never quotes its secrets)."""


class ChannelFailed(HeadwaterError):
    """A channel refused a message or could not be reached; the message is the channel's
    own error, scrubbed of the URL's secrets."""


def _asset(timeout: float) -> AppriseAsset:
    """Apprise kept to the URL given: memory only, no plugin paths, no templates."""
    return AppriseAsset(
        storage_mode="memory",
        allow_templates=False,
        language="en",
        service_timeout=timeout,
    )


def _scheme(url: str) -> str:
    match = _SCHEME.match(url)
    if match is None:
        raise ChannelInvalid(
            "not a channel URL: it must start with a service scheme such as mailto://, "
            "json://, tgram:// or slack://"
        )
    return match.group(1).lower()


def _instantiate(url: str, asset: AppriseAsset) -> NotifyBase:
    """The apprise plugin for ``url``.

    Raises:
        ChannelInvalid: empty, too long, unknown scheme, or a URL the plugin refuses.
    """
    url = url.strip()
    if not url:
        raise ChannelInvalid("a channel URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise ChannelInvalid(
            f"the channel URL is too long ({len(url)} characters, at most {MAX_URL_LENGTH})"
        )
    scheme = _scheme(url)
    if scheme not in _PLUGINS and scheme not in _NATIVE_SCHEMES:
        raise ChannelInvalid(
            f"unknown channel kind {scheme}://",
            hint="use one of apprise's service schemes, e.g. mailto://, json://, tgram://",
        )
    if scheme in _PLUGINS and not _PLUGINS[scheme].enabled:
        raise ChannelInvalid(f"{scheme}:// channels are not available on this system")
    try:
        with _diverted():
            plugin = Apprise.instantiate(url, asset=asset, suppress_exceptions=False)
    except Exception as exc:  # the plugin's constructor refused a part of the URL
        reason = scrub(str(exc), _all_parts(url, scheme))
        raise ChannelInvalid(f"apprise cannot use this {scheme}:// URL: {reason}") from None
    if plugin is None:
        if scheme in _NATIVE_SCHEMES:
            raise ChannelInvalid(
                f"this {scheme}:// address is not a service apprise knows",
                hint="to post to any web endpoint, use json:// or jsons:// instead",
            )
        raise ChannelInvalid(
            f"apprise cannot parse this {scheme}:// URL",
            hint=f"check its form in apprise's documentation of {scheme}://",
        )
    return plugin


def _kind(plugin: NotifyBase) -> str:
    return _scheme(_private_url(plugin))


def _private_url(plugin: NotifyBase) -> str:
    """Apprise's privacy rendering of the plugin's URL."""
    rendered: str = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    return rendered


def _mask_query(url: str) -> str:
    """``url`` with the values of secret-looking query parameters and headers masked."""
    head, separator, query = url.partition("?")
    if not separator:
        return url
    fragment = ""
    if "#" in query:
        query, fragment = query.split("#", 1)
        fragment = "#" + fragment
    parts = []
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        bare = unquote(name)
        if equals and value and (bare.startswith("+") or _SECRET_NAME.search(bare.lstrip("+-:"))):
            value = MASK
        parts.append(f"{name}{equals}{value}")
    return f"{head}?{'&'.join(parts)}{fragment}"


def _masked(plugin: NotifyBase) -> str:
    return _mask_query(_private_url(plugin))[:MAX_URL_LENGTH]


def _pieces(url: str) -> set[str]:
    """The parts of ``url`` between its delimiters, as written and decoded."""
    found: set[str] = set()
    for text in (url, unquote(url)):
        found.update(piece for piece in _URL_DELIMITERS.split(text) if piece)
    return found


def _all_parts(url: str, scheme: str) -> set[str]:
    """Every part of ``url`` but its scheme: the secrets of a URL apprise could not read."""
    return _pieces(url[len(scheme) + 3 :])


def _secrets(url: str, masked: str) -> set[str]:
    """The parts of ``url`` that its masked form hides, and its password in any case."""
    hidden = _pieces(url) - _pieces(masked)
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        hidden.update({password, unquote(password)})
    return hidden


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (as written, decoded or encoded) replaced by
    ``****``; values shorter than three characters are left, they would garble it."""
    variants: set[str] = set()
    for secret in secrets:
        variants.update({secret, unquote(secret), quote(secret, safe="")})
    for secret in sorted(variants, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_CHARS:
            text = text.replace(secret, MASK)
    return text


def check_url(url: str) -> str:
    """The kind of channel ``url`` is (its apprise scheme: "mailto", "tgram", "json" …).

    Raises:
        ChannelInvalid: apprise cannot use it; the message never quotes its secrets.
    """
    return _kind(_instantiate(url, _asset(DEFAULT_TIMEOUT_SECONDS)))


def mask_url(url: str) -> str:
    """``url`` fit for display: every password, token and key masked.

    Raises:
        ChannelInvalid: apprise cannot use it.
    """
    return _masked(_instantiate(url, _asset(DEFAULT_TIMEOUT_SECONDS)))


def _detail(record: logging.LogRecord) -> str | None:
    """The line of apprise's log worth showing a user, or None."""
    message = " ".join(record.getMessage().split())
    if record.levelno >= logging.WARNING:
        return message
    if message.startswith(_DETAIL_PREFIXES):
        return message[: len("Response Details: ") + _RESPONSE_CHARS]
    return None


def send(url: str, title: str, body: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
    """Send one message through the channel ``url``, waiting at most about ``timeout``
    seconds (connection, answer and apprise's own bookkeeping).

    Raises:
        ChannelInvalid: apprise cannot use ``url``.
        ChannelFailed: the channel did not take the message; its error, scrubbed.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    asset = _asset(timeout)
    plugin = _instantiate(url, asset)
    secrets = _secrets(url.strip(), _masked(plugin))
    plugin.socket_connect_timeout = min(float(plugin.socket_connect_timeout), timeout)
    plugin.socket_read_timeout = min(float(plugin.socket_read_timeout), timeout)
    plugin.logger = _PLUGIN_LOGGER
    runner = Apprise(asset=asset)
    runner.add(plugin)
    with _diverted() as records:
        result = runner.notify(
            body=body or title,
            title=title,
            body_format=NotifyFormat.TEXT,
            interpret_escapes=False,
            timeout=timeout,
        )
    try:
        if result:
            return
        status = result.status
    finally:
        result.close()
    lines: list[str] = []
    for record in list(records):  # a timed-out service may still be adding to it
        line = _detail(record)
        if line and line not in lines:
            lines.append(line)
    if status == AppriseResultStatus.TIMEOUT:
        lines.append(f"no answer within {timeout:g} s")
    if not lines:
        lines.append(f"the {_kind(plugin)} channel did not take the message")
    raise ChannelFailed(scrub("\n".join(lines), secrets)[:MAX_ERROR_CHARS])
