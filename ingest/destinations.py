"""Where a source loads: the configured warehouse, or a connection marked as a destination.

```yaml
sources:
  archive:                 # a destination: written to, never read from
    kind: database
    destination: true
    connection: postgresql://loader:${ARCHIVE_PASSWORD}@archive.internal/archive
  crm:
    kind: database
    connection: mysql+pymysql://reader:${CRM_PASSWORD}@crm.internal/crm
    target: archive        # unset: the warehouse
```

A source keeps one dlt pipeline (and so one incremental state) per destination:
changing its target starts the new destination from the beginning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy.engine import make_url

from ingest.errors import IngestError
from ingest.masks import mask_url

if TYPE_CHECKING:
    from headwater.settings import Settings
    from ingest.spec import SourceSpec

WAREHOUSE = "warehouse"
"""The name of the configured warehouse as a destination."""

DESTINATION_BACKENDS = {"postgresql": "postgres", "duckdb": "duckdb"}
"""URL backends a destination may use, and the warehouse kind each is."""


@dataclass(frozen=True)
class Destination:
    """A place sources load into. ``connection`` holds the secret: never show it (see
    ``shown``)."""

    name: str
    kind: Literal["duckdb", "postgres"]
    connection: str
    description: str | None = None

    @property
    def shown(self) -> str:
        """The connection with its password masked."""
        return mask_url(self.connection) if "://" in self.connection else self.connection

    def dlt(self) -> Any:
        """The dlt destination, credentials passed explicitly.

        ``supports_transactions``: dlt leaves it unset, and then opens no transaction
        around a job's statements. On DuckDB the ``DELETE`` and ``INSERT … SELECT`` that
        move a replaced table's rows from staging (or a merge's delete and insert) then
        committed apart: an insert failing after the delete left the table empty. With
        it set, each job commits whole or not at all, on both engines.
        """
        import dlt

        if self.kind == "duckdb":
            Path(self.connection).parent.mkdir(parents=True, exist_ok=True)
            return _capabilities_once(
                dlt.destinations.duckdb(credentials=self.connection, supports_transactions=True)
            )
        url = make_url(self.connection)
        postgres = dlt.destinations.postgres(
            supports_transactions=True,
            credentials={
                "host": url.host,
                "port": url.port or 5432,
                "username": url.username,
                "password": url.password or "",  # trust and peer logins take none
                "database": url.database,
                "query": dict(url.query),
            },
        )
        return _capabilities_once(postgres)


def _capabilities_once(factory: Any) -> Any:
    """``factory`` resolving its capabilities once instead of at every call.

    A run asks for them some thirty times, and each time dlt resolves the destination's
    whole configuration again (about 2 ms: 60 ms of a 350 ms incremental run). They
    cannot change during a run; the factory lives for one run. Only the naming
    convention's case sensitivity (the one thing dlt adjusts them for) tells two
    answers apart; each caller gets its own copy, as dlt's callers change theirs.
    """
    resolve = factory.capabilities
    known: dict[bool | None, Any] = {}

    def capabilities(config: Any = None, naming: Any = None) -> Any:
        if config is not None:
            return resolve(config, naming)
        key = None if naming is None else bool(naming.is_case_sensitive)
        if key not in known:
            known[key] = resolve(None, naming)
        return copy.deepcopy(known[key])

    factory.capabilities = capabilities
    return factory


def warehouse(settings: Settings) -> Destination:
    """The configured warehouse, always the first destination."""
    if settings.warehouse == "duckdb":
        return Destination(WAREHOUSE, "duckdb", str(settings.duckdb_path), "the warehouse")
    from sqlalchemy.engine import URL

    url = URL.create(
        "postgresql",
        username=settings.warehouse_user,
        password=settings.warehouse_password.get_secret_value(),
        host=settings.warehouse_host,
        port=settings.warehouse_port,
        database=settings.warehouse_dbname,
    )
    return Destination(
        WAREHOUSE, "postgres", url.render_as_string(hide_password=False), "the warehouse"
    )


def as_destination(name: str, spec: SourceSpec) -> Destination:
    """The destination a ``destination: true`` connection declares."""
    url = make_url(spec.connection or "")
    kind = DESTINATION_BACKENDS[url.get_backend_name()]
    if kind == "duckdb":
        return Destination(name, "duckdb", url.database or "", spec.description)
    return Destination(name, "postgres", spec.connection or "", spec.description)


def destinations(settings: Settings, sources: dict[str, SourceSpec]) -> list[Destination]:
    """The warehouse, then every connection among ``sources`` marked as a destination."""
    return [warehouse(settings)] + [
        as_destination(name, spec) for name, spec in sources.items() if spec.destination
    ]


def target_of(settings: Settings, name: str, source: SourceSpec) -> Destination:
    """The destination source ``name`` loads into.

    Raises:
        IngestError: the target names no destination.
    """
    if source.target is None or source.target == WAREHOUSE:
        return warehouse(settings)
    from ingest.runner import load_declared

    declared = load_declared(settings)
    found = declared.get(source.target)
    if found is None or not found.destination:
        known = ", ".join(d.name for d in destinations(settings, declared))
        raise IngestError(
            f"source {name!r}: target {source.target!r} is not a destination",
            hint=f"destinations: {known} (a PostgreSQL or DuckDB connection with "
            "destination: true)",
        )
    from ingest.targets import check_targets

    check_targets(settings, source.target, found)
    return as_destination(source.target, found)


def pipeline_name(settings: Settings, name: str, source: SourceSpec) -> str:
    """The dlt pipeline of source ``name`` (one per destination: its own state)."""
    base = settings.pipeline_name(name)
    if source.target is None or source.target == WAREHOUSE:
        return base
    return f"{base}__to_{source.target}"
