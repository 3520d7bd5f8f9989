"""OpenLineage run events (spec 2-0-2) from what the catalog knows.

A *load* (one source's dlt run) and a *build* (one ``dbt build``) are each an
OpenLineage job run: a ``START`` event, then ``COMPLETE`` or ``FAIL``. A load reads
the source tables and writes the raw tables; a build reads the models' upstream
datasets and writes the models. Output datasets carry a ``schema`` facet and a
``columnLineage`` facet, both read from the catalog; inputs carry their ``schema``.

Names follow the OpenLineage naming spec: a dataset is ``namespace`` (the data
source, ``scheme://host:port``) plus ``name`` (its path there):

=================  ===========================  ==============================
where              namespace                    name
=================  ===========================  ==============================
DuckDB warehouse   ``duckdb://<file path>``     ``<database>.<schema>.<table>``
PostgreSQL         ``postgres://<host>:<port>`` ``<database>.<schema>.<table>``
MySQL / MariaDB    ``mysql://<host>:<port>``    ``<database>.<table>``
SQLite             ``sqlite://<file path>``     ``<table>``
MongoDB            ``mongodb://<host>:<port>``  ``<database>.<collection>``
REST API           ``https://<host>[:<port>]``  ``<path>``
local file         ``file``                     ``<path>`` (``#<sheet>`` for Excel)
=================  ===========================  ==============================

A namespace is built from a scheme, a host and a port only: never a user, a
password, a token or a query string, whatever the text it is read from holds.

The catalog's edge kinds map to OpenLineage transformations:

=============  ============  ===============
Headwater      type          subtype
=============  ============  ===============
``copy``       DIRECT        IDENTITY
``rename``     DIRECT        IDENTITY
``transform``  DIRECT        TRANSFORMATION
``aggregate``  DIRECT        AGGREGATION
``filter``     INDIRECT      FILTER
=============  ============  ===============

A ``filter`` edge shapes every column of its dataset, so it goes to the facet's
``dataset`` list (column lineage that affects the whole dataset), not to a field.

Everything here is a pure function of plain values except :func:`read_snapshot`,
:func:`load_outputs` and :func:`build_outputs`, which read the catalog tables.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import sqlglot
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, selectinload
from sqlglot import exp
from sqlglot.errors import SqlglotError

from catalog.extract import source_dataset_name
from catalog.graph import chunks
from catalog.lineage import AGGREGATE, COPY, FILTER, RENAME, TRANSFORM
from catalog.models import ColumnLineage, Dataset, LineageEdge

if TYPE_CHECKING:
    from headwater.settings import Settings

EventType = Literal["START", "COMPLETE", "FAIL", "ABORT"]

SPEC = "https://openlineage.io/spec"
RUN_EVENT_SCHEMA = f"{SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"
SCHEMA_FACET = f"{SPEC}/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
COLUMN_LINEAGE_FACET = (
    f"{SPEC}/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet"
)
PARENT_FACET = f"{SPEC}/facets/1-1-0/ParentRunFacet.json#/$defs/ParentRunFacet"
ERROR_FACET = f"{SPEC}/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
JOB_TYPE_FACET = f"{SPEC}/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"


def _version() -> str:
    try:
        return version("headwater")
    except PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0"


PRODUCER = f"urn:headwater:{_version()}"
"""The ``producer`` of every event and facet: a URI naming Headwater and its version."""

MAX_ERROR = 2000
"""The most of a failure message an event carries."""

FILE_NAMESPACE = "file"
"""Local files (OpenLineage naming: namespace ``file``, name the path)."""

TRANSFORMATIONS: Mapping[str, tuple[str, str, str]] = {
    COPY: ("DIRECT", "IDENTITY", "copied as is"),
    RENAME: ("DIRECT", "IDENTITY", "copied under another name"),
    TRANSFORM: ("DIRECT", "TRANSFORMATION", "derived by an expression"),
    AGGREGATE: ("DIRECT", "AGGREGATION", "aggregated"),
    FILTER: ("INDIRECT", "FILTER", "decides which rows arrive"),
}
"""Headwater edge kind → (type, subtype, description) of an OpenLineage transformation."""


# --- what the catalog holds, as plain values ----------------------------------------


@dataclass(frozen=True)
class CatalogColumn:
    name: str
    data_type: str
    description: str | None = None


@dataclass(frozen=True)
class CatalogDataset:
    """One dataset as the catalog stores it (see :class:`catalog.models.Dataset`)."""

    name: str
    kind: str
    schema_name: str
    table_name: str
    fqn: str | None = None
    source_kind: str | None = None
    origin: str | None = None
    description: str | None = None
    dbt_unique_id: str | None = None
    columns: tuple[CatalogColumn, ...] = ()


@dataclass(frozen=True)
class CatalogEdge:
    """``upstream.upstream_column`` feeds ``downstream.downstream_column`` (None: a
    filter edge, which shapes the whole downstream dataset)."""

    downstream: str
    downstream_column: str | None
    upstream: str
    upstream_column: str
    kind: str


@dataclass
class Snapshot:
    """The outputs of a run and what the catalog says they are made of."""

    outputs: list[str] = field(default_factory=list)
    """Output dataset names, in order."""
    datasets: dict[str, CatalogDataset] = field(default_factory=dict)
    """The outputs and every dataset they read."""
    upstream: dict[str, list[str]] = field(default_factory=dict)
    """Output → the datasets it reads (table-level lineage)."""
    columns: list[CatalogEdge] = field(default_factory=list)
    """Column edges into the outputs."""


# --- names ------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class DatasetRef:
    """An OpenLineage dataset identifier."""

    namespace: str
    name: str


@dataclass(frozen=True)
class Warehouse:
    """Where the warehouse's datasets live, in OpenLineage terms."""

    namespace: str
    database: str

    @classmethod
    def of(cls, settings: Settings) -> Warehouse:
        if settings.warehouse == "duckdb":
            path = settings.duckdb_path
            return cls(f"duckdb://{path}", path.stem)
        return cls(
            f"postgres://{settings.warehouse_host}:{settings.warehouse_port}",
            settings.warehouse_dbname,
        )

    def ref(self, dataset: CatalogDataset) -> DatasetRef:
        return DatasetRef(self.namespace, dataset.fqn or f"{self.database}.{dataset.name}")


DEFAULT_SCHEMAS = {"postgres": "public", "duckdb": "main", "sqlserver": "dbo"}
"""Engines whose tables are named ``database.schema.table``, and the schema when unsaid."""
DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mongodb": 27017, "sqlserver": 1433}
SCHEMES = {
    "postgresql": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "sqlserver",
    "sqlite": "sqlite",
    "duckdb": "duckdb",
    "mongodb": "mongodb",
    "mongodb+srv": "mongodb",
}
"""SQLAlchemy / driver URL schemes → OpenLineage namespace schemes."""

_TABLE = re.compile(r"^table (?P<table>.+?)(?: \([^()]*\))? of (?P<url>\S+)$", re.DOTALL)
_QUERY = re.compile(r"^query on (?P<url>\S+): (?P<sql>.+)$", re.DOTALL)
_COLLECTION = re.compile(r"^collection (?P<collection>\S+) of (?P<url>\S+)$")
_FILE = re.compile(r"^file (?P<path>.+?)(?:, sheet (?P<sheet>.+))?$", re.DOTALL)
_ENDPOINT = re.compile(r"^(?P<method>[A-Z]+) (?P<url>\S+)$")


@dataclass(frozen=True)
class _Server:
    scheme: str
    """OpenLineage scheme (``postgres``, ``mysql``…)."""
    namespace: str
    database: str | None


def _server(url: str) -> _Server | None:
    """A database URL's data source, without who connects or with what."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return _network_server(url)
    scheme = SCHEMES.get(parsed.get_backend_name(), parsed.get_backend_name())
    if scheme in ("sqlite", "duckdb"):
        path = parsed.database or ":memory:"
        return _Server(scheme, f"{scheme}://{path}", PurePosixPath(path).stem or path)
    if not parsed.host:
        return None
    port = parsed.port or DEFAULT_PORTS.get(scheme)
    authority = f"{parsed.host}:{port}" if port else parsed.host
    return _Server(scheme, f"{scheme}://{authority}", parsed.database)


def _network_server(url: str) -> _Server | None:
    """A URL SQLAlchemy does not read (MongoDB's): scheme, host and port only."""
    parts = urlsplit(url)
    scheme = SCHEMES.get(parts.scheme.lower(), parts.scheme.lower())
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not scheme or not host:
        return None
    port = port or DEFAULT_PORTS.get(scheme)
    authority = f"{host}:{port}" if port else host
    database = parts.path.strip("/") or None
    return _Server(scheme, f"{scheme}://{authority}", database)


def _table_name(server: _Server, table: str) -> str:
    parts = [p for p in table.split(".") if p]
    if server.scheme == "sqlite":
        return parts[-1] if parts else table
    if server.scheme in DEFAULT_SCHEMAS:
        if len(parts) == 1:
            parts = [DEFAULT_SCHEMAS[server.scheme], *parts]
        if len(parts) == 2 and server.database:
            parts = [server.database, *parts]
        return ".".join(parts)
    if len(parts) == 1 and server.database:
        parts = [server.database, *parts]
    return ".".join(parts)


def _position(node: exp.Expr) -> int:
    meta = getattr(node.this, "meta", None) or {}
    return int(meta.get("start", 0))


def query_tables(sql: str, dialect: str | None = None) -> list[str]:
    """The tables a query reads (not its CTEs), in order of appearance; [] if it does not
    parse."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (SqlglotError, ValueError):
        return []
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    seen: list[str] = []
    found = sorted(tree.find_all(exp.Table), key=_position)
    for table in found:
        if not table.name or (not table.db and table.name.lower() in ctes):
            continue
        name = ".".join(part for part in (table.catalog, table.db, table.name) if part)
        if name not in seen:
            seen.append(name)
    return seen


_DIALECTS = {"postgres": "postgres", "mysql": "mysql", "sqlite": "sqlite", "duckdb": "duckdb"}


def source_refs(source: str, table: str, kind: str | None, origin: str | None) -> list[DatasetRef]:
    """Where a source table is read from, as OpenLineage datasets.

    ``origin`` is the catalog's text (``table customers of postgresql://host/db``,
    ``query on …: select …``, ``collection db.c of mongodb://…``, ``GET https://…``,
    ``file /data/x.csv``). A query is the tables it reads. Text that names no data
    source gives ``headwater://<source>`` and the table's own name.
    """
    fallback = [DatasetRef(f"headwater://{source}", table)]
    if not origin:
        return fallback
    if match := _TABLE.match(origin):
        server = _server(match["url"])
        if server is not None:
            return [DatasetRef(server.namespace, _table_name(server, match["table"].strip()))]
    elif match := _QUERY.match(origin):
        server = _server(match["url"])
        if server is not None:
            tables = query_tables(match["sql"], _DIALECTS.get(server.scheme))
            if tables:
                return [DatasetRef(server.namespace, _table_name(server, t)) for t in tables]
    elif match := _COLLECTION.match(origin):
        server = _server(match["url"])
        if server is not None:
            collection = match["collection"]
            if "." not in collection and server.database:
                collection = f"{server.database}.{collection}"
            return [DatasetRef(server.namespace, collection)]
    elif kind == "file" and (match := _FILE.match(origin)):
        sheet = f"#{match['sheet'].strip()}" if match["sheet"] else ""
        return [DatasetRef(FILE_NAMESPACE, match["path"].strip() + sheet)]
    elif match := _ENDPOINT.match(origin):
        parts = urlsplit(match["url"])
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            return fallback
        if parts.scheme in ("http", "https") and host:
            authority = f"{host}:{port}" if port else host
            return [DatasetRef(f"{parts.scheme}://{authority}", parts.path or "/")]
    return fallback


def dataset_refs(dataset: CatalogDataset, warehouse: Warehouse) -> list[DatasetRef]:
    """A catalog dataset's OpenLineage identifiers: one, or the tables of a query source."""
    if dataset.kind == "source":
        return source_refs(
            dataset.schema_name, dataset.table_name, dataset.source_kind, dataset.origin
        )
    if dataset.kind == "destination":  # outside the warehouse: its address is not known here
        return []
    return [warehouse.ref(dataset)]


# --- runs and jobs ----------------------------------------------------------------


@dataclass(frozen=True)
class JobRef:
    namespace: str
    name: str
    integration: str
    """``DLT`` for loads, ``DBT`` for builds (the job type facet)."""


@dataclass(frozen=True)
class RunRef:
    run_id: str
    parent: tuple[str, JobRef] | None = None
    """(run id, job) of the run this one is a step of."""


def step_run(
    dagster_run_id: str | None, dagster_job: str | None, job: JobRef, *, alone: bool
) -> RunRef:
    """The OpenLineage run of one load or build.

    A Dagster run that is only this load or build lends it its id. One that holds
    several (the full pipeline: every load, then the build) gives each a stable id of
    its own derived from the Dagster run's id and the job's name, with a ``parent``
    facet naming the Dagster run. Without a Dagster run, a fresh id.
    """
    if dagster_run_id is None:
        return RunRef(str(uuid.uuid4()))
    try:
        base = uuid.UUID(dagster_run_id)
    except ValueError:
        base = uuid.uuid5(uuid.NAMESPACE_URL, f"dagster-run:{dagster_run_id}")
    if alone:
        return RunRef(str(base))
    parent_job = JobRef(job.namespace, f"dagster.{dagster_job or 'run'}", "DAGSTER")
    return RunRef(str(uuid.uuid5(base, job.name)), (str(base), parent_job))


# --- facets and events ------------------------------------------------------------


def _facet(schema_url: str, **values: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": schema_url, **values}


def schema_facet(columns: Iterable[CatalogColumn]) -> dict[str, Any]:
    fields = []
    for column in columns:
        entry = {"name": column.name, "type": column.data_type}
        if column.description:
            entry["description"] = column.description
        fields.append(entry)
    return _facet(SCHEMA_FACET, fields=fields)


def transformation(kind: str) -> dict[str, Any]:
    """The OpenLineage transformation of a Headwater edge kind."""
    kind_type, subtype, description = TRANSFORMATIONS.get(kind, ("DIRECT", "TRANSFORMATION", kind))
    return {"type": kind_type, "subtype": subtype, "description": description, "masking": False}


def column_lineage_facet(
    edges: Iterable[CatalogEdge], refs: Mapping[str, DatasetRef]
) -> dict[str, Any] | None:
    """The ``columnLineage`` facet of one output from its column edges.

    ``refs`` names each upstream dataset that maps to one OpenLineage dataset; edges
    from another (a query source read as several tables) are left out: which of the
    tables a column comes from is not known. None when no edge is left.
    """
    fields: dict[str, dict[tuple[str, str, str], list[str]]] = {}
    whole: dict[tuple[str, str, str], list[str]] = {}
    for edge in edges:
        ref = refs.get(edge.upstream)
        if ref is None:
            continue
        key = (ref.namespace, ref.name, edge.upstream_column)
        target = (
            whole
            if edge.downstream_column is None
            else fields.setdefault(edge.downstream_column, {})
        )
        kinds = target.setdefault(key, [])
        if edge.kind not in kinds:
            kinds.append(edge.kind)
    if not fields and not whole:
        return None

    def inputs(found: Mapping[tuple[str, str, str], list[str]]) -> list[dict[str, Any]]:
        return [
            {
                "namespace": namespace,
                "name": name,
                "field": column,
                "transformations": [transformation(kind) for kind in kinds],
            }
            for (namespace, name, column), kinds in sorted(found.items())
        ]

    facet = _facet(
        COLUMN_LINEAGE_FACET,
        fields={column: {"inputFields": inputs(found)} for column, found in fields.items()},
    )
    if whole:
        facet["dataset"] = inputs(whole)
    return facet


def _dataset(ref: DatasetRef, facets: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"namespace": ref.namespace, "name": ref.name}
    if facets:
        out["facets"] = dict(facets)
    return out


def event_datasets(
    snapshot: Snapshot, warehouse: Warehouse, *, facets: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) of a run whose outputs and their upstream ``snapshot`` holds.

    Inputs are the datasets the outputs read, outputs excepted (a build writes
    staging models its marts then read: they are outputs). With ``facets``, every
    dataset carries its ``schema`` and each output its ``columnLineage``.
    """
    outputs = [name for name in snapshot.outputs if name in snapshot.datasets]
    written = set(outputs)
    single: dict[str, DatasetRef] = {}
    for name, candidate in snapshot.datasets.items():
        refs = dataset_refs(candidate, warehouse)
        if len(refs) == 1:
            single[name] = refs[0]

    read: list[str] = []
    for name in outputs:
        for upstream in snapshot.upstream.get(name, []):
            if upstream not in written and upstream not in read:
                read.append(upstream)
    for edge in snapshot.columns:
        if edge.upstream not in written and edge.upstream not in read:
            read.append(edge.upstream)

    inputs: dict[DatasetRef, dict[str, Any]] = {}
    for name in read:
        upstream_dataset = snapshot.datasets.get(name)
        if upstream_dataset is None:
            continue
        refs = dataset_refs(upstream_dataset, warehouse)
        for ref in refs:
            has_schema = facets and len(refs) == 1 and upstream_dataset.columns
            inputs.setdefault(
                ref,
                _dataset(
                    ref, {"schema": schema_facet(upstream_dataset.columns)} if has_schema else None
                ),
            )

    by_output: dict[str, list[CatalogEdge]] = {}
    for edge in snapshot.columns:
        by_output.setdefault(edge.downstream, []).append(edge)
    written_refs: list[dict[str, Any]] = []
    for name in outputs:
        written_dataset = snapshot.datasets[name]
        output_facets: dict[str, Any] = {}
        if facets:
            if written_dataset.columns:
                output_facets["schema"] = schema_facet(written_dataset.columns)
            lineage = column_lineage_facet(by_output.get(name, []), single)
            if lineage is not None:
                output_facets["columnLineage"] = lineage
        written_refs.append(_dataset(warehouse.ref(written_dataset), output_facets))
    return list(inputs.values()), written_refs


def merge_inputs(
    inputs: Sequence[Mapping[str, Any]], more: Iterable[DatasetRef]
) -> list[dict[str, Any]]:
    """``inputs`` and the datasets of ``more`` not among them (names only)."""
    out = [dict(item) for item in inputs]
    seen = {(item["namespace"], item["name"]) for item in out}
    for ref in more:
        if (ref.namespace, ref.name) not in seen:
            seen.add((ref.namespace, ref.name))
            out.append(_dataset(ref))
    return out


def run_event(
    event_type: EventType,
    run: RunRef,
    job: JobRef,
    *,
    inputs: Sequence[Mapping[str, Any]] = (),
    outputs: Sequence[Mapping[str, Any]] = (),
    event_time: datetime | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One OpenLineage ``RunEvent``, ready for ``json.dumps``.

    ``error`` (a ``FAIL``'s message, already free of secrets) goes to the
    ``errorMessage`` run facet, cut to :data:`MAX_ERROR` characters.
    """
    when = (event_time or datetime.now(UTC)).astimezone(UTC)
    run_facets: dict[str, Any] = {}
    if run.parent is not None:
        parent_id, parent_job = run.parent
        run_facets["parent"] = _facet(
            PARENT_FACET,
            run={"runId": parent_id},
            job={"namespace": parent_job.namespace, "name": parent_job.name},
        )
    if error is not None:
        run_facets["errorMessage"] = _facet(
            ERROR_FACET, message=error[:MAX_ERROR] or "failed", programmingLanguage="python"
        )
    run_body: dict[str, Any] = {"runId": run.run_id}
    if run_facets:
        run_body["facets"] = run_facets
    return {
        "eventType": event_type,
        "eventTime": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "run": run_body,
        "job": {
            "namespace": job.namespace,
            "name": job.name,
            "facets": {
                "jobType": _facet(
                    JOB_TYPE_FACET,
                    processingType="BATCH",
                    integration=job.integration,
                    jobType="JOB",
                )
            },
        },
        "inputs": [dict(item) for item in inputs],
        "outputs": [dict(item) for item in outputs],
        "producer": PRODUCER,
        "schemaURL": RUN_EVENT_SCHEMA,
    }


# --- reading the catalog ----------------------------------------------------------


def load_outputs(session: Session, source: str, resources: Collection[str] | None) -> list[str]:
    """The raw tables the catalog says ``source`` loads from ``resources`` (every table of
    the source when None), nested tables included."""
    prefix = source_dataset_name(source, "")
    if resources is None:
        upstream = [
            name
            for name in session.scalars(select(Dataset.name).where(Dataset.kind == "source"))
            if name.startswith(prefix)
        ]
    else:
        upstream = [source_dataset_name(source, table) for table in resources]
    out: list[str] = []
    for chunk in chunks(upstream):
        ids = select(Dataset.id).where(Dataset.name.in_(chunk))
        query = (
            select(Dataset.name)
            .join(LineageEdge, LineageEdge.downstream_id == Dataset.id)
            .where(LineageEdge.upstream_id.in_(ids), LineageEdge.origin == "dlt")
        )
        out += session.scalars(query).all()
    return sorted(set(out))


def build_outputs(session: Session, unique_ids: Collection[str]) -> list[str]:
    """The datasets built by the dbt nodes ``unique_ids``."""
    out: list[str] = []
    for chunk in chunks(sorted(set(unique_ids))):
        out += session.scalars(select(Dataset.name).where(Dataset.dbt_unique_id.in_(chunk))).all()
    return sorted(set(out))


def _plain(row: Dataset) -> CatalogDataset:
    return CatalogDataset(
        name=row.name,
        kind=row.kind,
        schema_name=row.schema_name,
        table_name=row.table_name,
        fqn=row.fqn,
        source_kind=row.source_kind,
        origin=row.origin,
        description=row.description,
        dbt_unique_id=row.dbt_unique_id,
        columns=tuple(CatalogColumn(c.name, c.data_type, c.description) for c in row.columns),
    )


def _datasets(session: Session, where: Any, values: list[Any]) -> list[Dataset]:
    found: list[Dataset] = []
    for chunk in chunks(values):
        query = select(Dataset).where(where.in_(chunk)).options(selectinload(Dataset.columns))
        found += session.scalars(query).all()
    return found


def read_snapshot(session: Session, outputs: Sequence[str]) -> Snapshot:
    """The catalog's view of ``outputs``: their columns, what they read (tables and
    columns) and those datasets' columns. Names the catalog does not hold are left out."""
    rows = _datasets(session, Dataset.name, list(dict.fromkeys(outputs)))
    by_id = {row.id: row for row in rows}
    ids = list(by_id)
    table_edges: list[tuple[int, int]] = []
    column_rows: list[ColumnLineage] = []
    for chunk in chunks(ids):
        table_edges += [
            (up, down)
            for up, down in session.execute(
                select(LineageEdge.upstream_id, LineageEdge.downstream_id).where(
                    LineageEdge.downstream_id.in_(chunk)
                )
            )
        ]
        column_rows += session.scalars(
            select(ColumnLineage).where(ColumnLineage.downstream_id.in_(chunk))
        ).all()
    wanted = sorted(
        ({up for up, _ in table_edges} | {r.upstream_id for r in column_rows}) - set(by_id)
    )
    for row in _datasets(session, Dataset.id, wanted):
        by_id[row.id] = row
    names = {dataset_id: row.name for dataset_id, row in by_id.items()}
    found = {row.name for row in rows}
    snapshot = Snapshot(
        outputs=[name for name in dict.fromkeys(outputs) if name in found],
        datasets={row.name: _plain(row) for row in by_id.values()},
    )
    for up, down in sorted(table_edges):
        if up in names:
            snapshot.upstream.setdefault(names[down], []).append(names[up])
    snapshot.columns = sorted(
        (
            CatalogEdge(
                names[r.downstream_id],
                r.downstream_column,
                names[r.upstream_id],
                r.upstream_column,
                r.kind,
            )
            for r in column_rows
            if r.upstream_id in names
        ),
        key=lambda e: (
            e.downstream,
            e.downstream_column or "",
            e.upstream,
            e.upstream_column,
            e.kind,
        ),
    )
    return snapshot
