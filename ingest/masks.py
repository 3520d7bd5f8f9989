"""Where a source's secrets live, and how they are shown: masked, everywhere.

A secret is a connection URL's password or secret-looking query value, and any text
value under a secret-looking key (``token``, ``api_key``, ``password``,
``Authorization``, ``X-API-Key``, ``client_secret``…) anywhere in a REST API's
configuration: ``client`` (auth, headers, params), ``resource_defaults`` and each
table's ``endpoint``. One module decides, so masking, encrypting and refusing
clear text in sources.yml agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MASK = "***"
SENSITIVE = re.compile(r"pass|secret|token|key|auth|credential|signature|cookie", re.IGNORECASE)
NOT_SECRET = {"type", "location", "name"}
"""Keys that match the pattern's neighbours but never hold a secret (``auth.type``…)."""
QUERY_SECRET = re.compile(r"(?P<key>[^?&=\s]*(?:pass|secret|token|key|auth)[^=&\s]*)=[^&\s]+", re.I)
Path = tuple[str | int, ...]


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key not in NOT_SECRET and SENSITIVE.search(key) is not None


def secret_paths(tree: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """(path, value) of every text value under a secret-looking key in ``tree``."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if isinstance(value, str) and is_secret_key(key):
                yield (*path, key), value
            else:
                yield from secret_paths(value, (*path, key))
    elif isinstance(tree, list):
        for index, value in enumerate(tree):
            yield from secret_paths(value, (*path, index))


def get_path(tree: Any, path: Path) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def set_path(tree: Any, path: Path, value: Any) -> None:
    for part in path[:-1]:
        tree = tree.setdefault(part, {}) if isinstance(tree, dict) else tree[part]
    tree[path[-1]] = value


def mask_url(url: str) -> str:
    """``url`` with its password and secret-looking query values masked (any URL kind)."""
    if re.match(r"^https?://", url, re.IGNORECASE):
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{user}@{host}"
        query = QUERY_SECRET.sub(lambda m: f"{m.group('key')}={MASK}", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    if "://" not in url:
        return MASK  # not a URL at all: it may be a secret itself
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not a single-host URL (a MongoDB replica set, say): mask by shape.
        masked = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", rf"\g<1>{MASK}@", url)
        return QUERY_SECRET.sub(lambda m: f"{m.group('key')}={MASK}", masked)
    shown = {key: MASK if is_secret_key(key) else value for key, value in parsed.query.items()}
    # hide_password writes the password as the mask; the mask in the query is unescaped.
    rendered = parsed.set(query=shown).render_as_string(hide_password=True)
    return rendered.replace("%2A%2A%2A", MASK)


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of a URL, to be scrubbed from any text a driver returns."""
    if not url:
        return []
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        match = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
        return [match.group(1)] if match and match.group(1) else []
    found = [str(parsed.password)] if parsed.password else []
    for key, value in parsed.query.items():
        if is_secret_key(key):
            found += [value] if isinstance(value, str) else list(value)
    return [secret for secret in found if secret]


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every one of ``secrets`` (and its URL-encoded form) replaced by the mask."""
    from urllib.parse import quote, quote_plus

    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) < 3:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, MASK)
    return QUERY_SECRET.sub(lambda m: f"{m.group('key')}={MASK}", text)
