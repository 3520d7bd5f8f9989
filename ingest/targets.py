"""Safe targets: where a source may read from.

A source may not read Headwater's own state (metadata store, warehouse, keys),
nor cloud-metadata or other link-local addresses, and file paths must lie inside
the configured data directories (``HEADWATER_DATA_DIRS``, by default the project
and ``HEADWATER_HOME``). Every refusal says why.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from headwater.db import sqlite_path
from ingest.errors import IngestError

if TYPE_CHECKING:
    from headwater.settings import Settings
    from ingest.spec import SourceSpec

METADATA_HOSTS = {"metadata.google.internal", "metadata", "instance-data"}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


class UnsafeTarget(IngestError):
    """A source points somewhere Headwater refuses to read."""


def data_dirs(settings: Settings) -> list[Path]:
    return [path.expanduser().resolve() for path in settings.data_dirs] or [
        settings.project_dir.resolve(),
        settings.home_dir,
    ]


def _private_state(settings: Settings) -> list[Path]:
    """Files and folders of Headwater's own that no source may read."""
    home = settings.home_dir
    paths = [
        settings.duckdb_path,
        home / "secret_key",
        home / "secret_keys",
        settings.dlt_dir,
        settings.dagster_home,
        settings.logs_dir,
    ]
    store = sqlite_path(settings.metadata_url)
    if store is not None:
        paths.append(store.resolve())
    return paths


PRIVATE_NAMES = (".env", ".git")
"""Names (and ``.env.*``) no source reads wherever they are: settings and history."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_path(settings: Settings, path: str, what: str) -> None:
    """Raises UnsafeTarget unless ``path`` (symlinks followed) lies in a data directory.

    A glob is checked by the folder before its first wildcard, and each file it
    matches (a match may be a symlink pointing out).
    """
    if re.search(r"[*?\[]", path):
        import glob

        if re.search(r"[*?\[][^/]*/", path):
            raise UnsafeTarget(f"{what} {path!r}: wildcards only in the file name, one folder")
        folder = re.split(r"[*?\[]", path, maxsplit=1)[0].rpartition("/")[0]
        check_path(settings, folder or ("/" if path.startswith("/") else "."), what)
        for found in glob.glob(path):
            check_path(settings, found, what)
        return
    real = Path(path).expanduser().resolve()
    for part in real.parts:
        if part in PRIVATE_NAMES or part.startswith(".env."):
            raise UnsafeTarget(f"{what} {path!r} is a settings or version-control file")
    for private in _private_state(settings):
        for candidate in (private, Path(f"{private}-wal"), Path(f"{private}-shm")):
            if _inside(real, candidate.resolve()):
                raise UnsafeTarget(f"{what} {path!r} is Headwater's own state, not a source")
    allowed = data_dirs(settings)
    if not any(_inside(real, folder) for folder in allowed):
        raise UnsafeTarget(
            f"{what} {path!r} lies outside the data directories "
            f"({', '.join(str(folder) for folder in allowed)})",
            hint="move the file there, or add its folder to HEADWATER_DATA_DIRS",
        )


def _addresses(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return {ipaddress.ip_address(host.strip("[]"))}
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return set()  # unresolvable: the connection itself will fail, and say so
    return {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}


def _forbidden_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local or address == ipaddress.ip_address("fd00:ec2::254")


def _same_database(url: URL, other: URL) -> bool:
    if url.get_backend_name() != other.get_backend_name() or url.database != other.database:
        return False
    default = DEFAULT_PORTS.get(url.get_backend_name())
    if (url.port or default) != (other.port or default):
        return False
    here, there = _addresses(url.host or "localhost"), _addresses(other.host or "localhost")
    return bool(here & there) or (url.host or "localhost") == (other.host or "localhost")


def check_connection_target(settings: Settings, connection: str) -> None:
    """Raises UnsafeTarget for link-local hosts and for Headwater's own databases."""
    try:
        url = make_url(connection)
    except (ArgumentError, ValueError):
        hosts = re.findall(r"[@,/]([^:/@,?\s]+)(?::\d+)?(?=[,/?]|$)", connection)
        for host in hosts:
            check_host(host, "connection host")
        return
    if url.get_backend_name() in ("sqlite", "duckdb"):
        database = url.database or ""
        if database.startswith("file:"):  # an SQLite URI filename: file:/path?mode=ro
            database = unquote(database.removeprefix("file:").split("?", 1)[0])
            database = database.removeprefix("//localhost").removeprefix("//")
        if database and database != ":memory:":
            check_path(settings, database, "database file")
        return
    check_host(url.host or "", "connection host")
    for key in ("host", "hostaddr"):  # libpq takes the server from the query too
        value = url.query.get(key)
        for host in [value] if isinstance(value, str) else list(value or ()):
            for one in host.split(","):
                check_host(one, f"connection {key} parameter")
    own = [make_url(settings.metadata_url)]
    if settings.warehouse == "postgres":
        own.append(
            URL.create(
                "postgresql",
                host=settings.warehouse_host,
                port=settings.warehouse_port,
                database=settings.warehouse_dbname,
            )
        )
    for store in own:
        if store.get_backend_name() != "sqlite" and _same_database(url, store):
            raise UnsafeTarget(
                f"connection points at Headwater's own database {url.database!r} on {url.host}"
            )


def check_host(host: str, what: str) -> None:
    """Raises UnsafeTarget for a link-local or cloud-metadata host."""
    name = host.strip().lower().rstrip(".")
    if not name:
        return
    if name in METADATA_HOSTS or any(_forbidden_address(a) for a in _addresses(name)):
        raise UnsafeTarget(f"{what} {host!r} is a link-local or cloud-metadata address")


def check_http_target(url: str) -> None:
    """Raises UnsafeTarget for a link-local or cloud-metadata host."""
    check_host(urlsplit(url).hostname or "", "base_url host")


def check_targets(settings: Settings, name: str, source: SourceSpec) -> None:
    """Raises UnsafeTarget when any place ``source`` reads is refused."""
    try:
        if source.connection:
            check_connection_target(settings, source.connection)
        base_url = (source.client or {}).get("base_url")
        if isinstance(base_url, str):
            check_http_target(base_url)
        for table, spec in source.tables.items():
            if spec.path:
                check_path(settings, spec.path, f"table {table!r}: path")
    except UnsafeTarget as exc:
        raise UnsafeTarget(f"source {name!r}: {exc.message}", hint=exc.hint) from None
