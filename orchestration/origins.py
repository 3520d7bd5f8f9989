"""Where each declared source's tables come from, told to the catalog.

The catalog may not import ``ingest``; this module may, and describes every
declared source as a :class:`catalog.origins.SourceOrigin` for
``catalog.refresh.refresh(..., origins=...)``. A description never carries a
credential: connection URLs lose their user, password and query.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from catalog.origins import Flow, SourceOrigin
from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from catalog.refresh import RefreshSummary
    from headwater.settings import Settings
    from ingest.spec import SourceSpec, TableSpec

log = logging.getLogger(__name__)


def source_origins(settings: Settings) -> dict[str, SourceOrigin]:
    """Every declared source (sources.yml and the metadata store), described.

    When the declarations cannot be read the catalog is still refreshed, without
    origins: the problem is logged, not raised.
    """
    from ingest.runner import load_declared

    try:
        declared = load_declared(settings)
    except HeadwaterError as exc:
        log.warning("catalog: the declared sources cannot be read (%s); no origins", exc)
        return {}
    return {name: describe(spec) for name, spec in declared.items() if not spec.destination}


def describe(spec: SourceSpec) -> SourceOrigin:
    """A source's kind and where each of its tables is read from."""
    if spec.kind == "database":
        where = _bare_url(spec.connection or "")
        tables = {name: _database_table(name, table, where) for name, table in spec.tables.items()}
        default = f"table {{table}} of {where}"
    elif spec.kind == "mongodb":
        where = _bare_url(spec.connection or "")
        database = f"{spec.database}." if spec.database else ""
        tables = {name: f"collection {database}{name} of {where}" for name in spec.tables}
        default = f"collection {database}{{table}} of {where}"
    elif spec.kind == "rest_api":
        base = _bare_url(str((spec.client or {}).get("base_url") or ""))
        tables = {name: _endpoint(name, table, base) for name, table in spec.tables.items()}
        default = None
    else:
        tables = {
            name: f"file {table.path}" + (f", sheet {table.sheet}" if table.sheet else "")
            for name, table in spec.tables.items()
        }
        default = None
    return SourceOrigin(spec.kind, tables, spec.description, default)


def _database_table(name: str, table: TableSpec, where: str) -> str:
    if table.query:
        return f"query on {where}: {' '.join(table.query.split())}"
    columns = f" ({', '.join(table.columns)})" if table.columns else ""
    return f"table {table.source_table or name}{columns} of {where}"


def _endpoint(name: str, table: TableSpec, base: str) -> str:
    endpoint = table.endpoint
    method = "GET"
    if isinstance(endpoint, dict):
        method = str(endpoint.get("method") or "GET").upper()
        path = str(endpoint.get("path") or name)
    else:
        path = endpoint or name
    if "://" in path:
        return f"{method} {_bare_url(path)}"
    return f"{method} {base.rstrip('/')}/{path.lstrip('/')}" if base else f"{method} {path}"


def _bare_url(url: str) -> str:
    """A URL without user, password, query or fragment: where, never who or with what key."""
    if not url:
        return ""
    if url.lower().startswith(("http://", "https://", "mongodb://", "mongodb+srv://")):
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url.split("://", 1)[0] if "://" in url else "the source"
    bare = URL.create(
        parsed.drivername, host=parsed.host, port=parsed.port, database=parsed.database
    )
    return bare.render_as_string(hide_password=True)


def source_flows(settings: Settings) -> list[Flow]:
    """The tables loads take to destinations outside the warehouse: each declared source
    with such a ``target``, and each job with one. Unreadable declarations: none."""
    from ingest.destinations import WAREHOUSE
    from ingest.runner import load_declared
    from orchestration.jobs import query_table
    from orchestration.store import all_jobs

    try:
        declared = load_declared(settings)
    except HeadwaterError:
        return []
    flows = [
        Flow(name, tuple(spec.tables), target, settings.raw_schema(name), "sources.yml")
        for name, spec in declared.items()
        if (target := spec.target) and target != WAREHOUSE and not spec.destination and spec.tables
    ]
    for job in all_jobs(settings):
        source = declared.get(job.source)
        if source is None or job.target == WAREHOUSE:
            continue
        tables = job.tables or ([query_table(job.name)] if job.query else list(source.tables))
        if tables:
            where = settings.raw_schema(job.source)
            by = f"job {job.id} ({job.name})"
            flows.append(Flow(job.source, tuple(tables), job.target, where, by))
    return flows


def refresh_catalog(settings: Settings, lock_wait: float | None = None) -> RefreshSummary:
    """``catalog.refresh.refresh`` with what only this layer knows: the declared sources'
    origins and the loads that leave the warehouse."""
    from catalog.refresh import refresh

    origins, flows = source_origins(settings), source_flows(settings)
    if lock_wait is None:
        return refresh(settings, origins=origins, flows=flows)
    return refresh(settings, lock_wait=lock_wait, origins=origins, flows=flows)
