"""Extractors: what the warehouse, dbt and dlt know, as plain data.

Pure functions over parsed artifacts where possible; the I/O is at the edges
(``warehouse_tables``, ``dlt_table_info``; dbt's artifacts are read by
``catalog.artifacts``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError
from catalog.freshness import period_seconds
from headwater.warehouse import connect_duckdb_read_only, connect_postgres

if TYPE_CHECKING:
    from catalog.artifacts import DbtArtifacts
    from headwater.settings import Settings

log = logging.getLogger(__name__)

DBT_LAYERS = ("staging", "intermediate", "marts")
"""The sample project's model schemas: covered when no manifest says which schemas exist."""
LAYER_KINDS = {
    "staging": "staging",
    "intermediate": "intermediate",
    "marts": "mart",
    "mart": "mart",
}
RELATION_TYPES = frozenset({"model", "seed", "snapshot", "source"})
COUNT_BATCH = 100
"""Tables counted per statement (``select count(*) … union all …``)."""


@dataclass
class ColumnInfo:
    name: str
    data_type: str
    position: int
    is_nullable: bool | None = None
    description: str | None = None
    tests: list[str] = field(default_factory=list)
    """Names of the dbt tests on this column (``unique``, ``not_null``, ``relationships`` …)."""
    is_primary_key: bool | None = None


@dataclass
class DatasetInfo:
    """A table or view in the warehouse, or a table in a source system (kind ``source``)."""

    name: str
    kind: str
    schema_name: str
    table_name: str
    description: str | None = None
    row_count: int | None = None
    columns: list[ColumnInfo] = field(default_factory=list)
    fqn: str | None = None
    """``database.schema.table`` in the warehouse."""
    relation_type: str | None = None
    """What the warehouse says it is: ``table`` or ``view``."""
    dbt_unique_id: str | None = None
    dbt_source: str | None = None
    """``source_name.table`` when a dbt ``source()`` declares this table."""
    owner: str | None = None
    tags: list[str] = field(default_factory=list)
    materialization: str | None = None
    raw_sql: str | None = None
    compiled_sql: str | None = None
    size_bytes: int | None = None
    source_kind: str | None = None
    origin: str | None = None
    """Where the table is read from in its source system (never a credential)."""
    last_loaded_at: datetime | None = None
    last_built_at: datetime | None = None
    last_build_status: str | None = None
    freshness_warn_after: int | None = None
    """Seconds after which the data is expected to be reloaded (dbt source ``warn_after``)."""
    freshness_error_after: int | None = None
    fresh_as_of: datetime | None = None
    """When the data was last known fresh: newest ``loaded_at_field``, else the last load."""
    test_results: dict[str, Any] | None = None
    """Latest dbt test results: counts per status and the names of failing tests."""


@dataclass(frozen=True)
class Edge:
    upstream: str
    downstream: str
    origin: str


@dataclass(frozen=True)
class DltTable:
    """A data table in a source's dlt schema."""

    source: str
    resource: str
    """The dlt resource: the table in the source system (nested tables: their root's)."""
    table: str
    primary_key: tuple[str, ...] = ()


def dataset_name(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def source_dataset_name(source: str, table: str) -> str:
    return f"source.{source}.{table}"


# --- which schemas, which kinds ------------------------------------------------------


def is_raw_schema(settings: Settings, schema: str, declared: Collection[str] = ()) -> bool:
    """A schema a source loads into (by the naming rule), not dlt's ``_staging`` twin."""
    source = settings.raw_source(schema)
    if source is None:
        return False
    return source in declared or not source.endswith("_staging")


def dbt_schemas(manifest: Mapping[str, Any] | None) -> set[str]:
    """Every schema the dbt project writes (models, seeds, snapshots) or reads (sources)."""
    if not manifest:
        return set()
    nodes = [*(manifest.get("nodes") or {}).values(), *(manifest.get("sources") or {}).values()]
    return {str(node["schema"]) for node in nodes if relation_name(node) and node.get("schema")}


def default_schemas(settings: Settings) -> set[str]:
    """The model schemas covered before dbt has written a manifest."""
    return {settings.warehouse_schema(layer) for layer in DBT_LAYERS}


def layer_kind(settings: Settings, schema: str) -> str | None:
    """``staging``, ``intermediate`` or ``mart`` when the schema is named after a layer."""
    prefix = settings.schema_prefix
    bare = schema[len(prefix) :] if schema.startswith(prefix) else schema
    return LAYER_KINDS.get(bare.lower())


def kind_of(settings: Settings, schema: str) -> str:
    """The kind of a warehouse table that no dbt node describes, from its schema alone."""
    if is_raw_schema(settings, schema):
        return "raw"
    return layer_kind(settings, schema) or "table"


# --- the warehouse ---------------------------------------------------------------------


COLUMNS_SQL = """
select c.table_catalog, c.table_schema, c.table_name, t.table_type,
       c.column_name, c.data_type, c.ordinal_position, c.is_nullable
from information_schema.columns c
join information_schema.tables t
  on t.table_catalog = c.table_catalog
 and t.table_schema = c.table_schema
 and t.table_name = c.table_name
where {where}
order by c.table_schema, c.table_name, c.ordinal_position
"""


def warehouse_tables(
    settings: Settings,
    schemas: Collection[str] | None = None,
    loaded_at_fields: Mapping[str, str] | None = None,
    declared: Collection[str] = (),
) -> list[DatasetInfo]:
    """Every table and view in ``schemas`` and in the raw schemas, with its columns and types,
    exact row count (tables; views have none), size where the engine tells, and the last
    load of its raw schema.

    Args:
        settings: Where the warehouse is.
        schemas: Schemas to cover besides the raw ones (default: the dbt layers).
        loaded_at_fields: Lower-case dataset name → a ``loaded_at_field`` expression whose
            newest value becomes the dataset's ``fresh_as_of``.
        declared: Declared source names (their raw schemas are covered whatever they end in).
    """
    wanted = {s.lower() for s in (default_schemas(settings) if schemas is None else schemas)}

    def covered(schema: str) -> bool:
        return schema.lower() in wanted or is_raw_schema(settings, schema, declared)

    if settings.warehouse == "duckdb":
        return _duckdb_tables(settings, covered, loaded_at_fields or {})
    return _postgres_tables(settings, wanted, covered, loaded_at_fields or {})


Query = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]


def _duckdb_tables(
    settings: Settings, covered: Callable[[str], bool], loaded_at_fields: Mapping[str, str]
) -> list[DatasetInfo]:
    import duckdb

    path = settings.duckdb_path
    if not path.exists():
        return []
    try:
        connection = connect_duckdb_read_only(settings)
    except duckdb.IOException as exc:
        raise CatalogError(
            f"cannot read the warehouse {path}: {str(exc).splitlines()[0]}",
            hint="another process is writing it; try again when the load finishes",
        ) from None

    def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(connection.execute(sql, list(params)).fetchall())

    try:
        rows = query(COLUMNS_SQL.format(where="c.table_catalog = current_database()"))
        return _describe(query, rows, covered, loaded_at_fields, sizes={})
    finally:
        connection.close()


def _postgres_tables(
    settings: Settings,
    schemas: Collection[str],
    covered: Callable[[str], bool],
    loaded_at_fields: Mapping[str, str],
) -> list[DatasetInfo]:
    import psycopg2

    try:
        connection = connect_postgres(settings)
    except psycopg2.OperationalError:
        raise CatalogError(
            f"cannot connect to the PostgreSQL warehouse at "
            f"{settings.warehouse_host}:{settings.warehouse_port}/{settings.warehouse_dbname}"
        ) from None
    # Read only, and one failing statement (a loaded_at_field) does not spoil the rest.
    connection.set_session(readonly=True, autocommit=True)

    def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    raw_like = settings.raw_schema("").replace("_", r"\_") + "%"
    try:
        rows = query(
            COLUMNS_SQL.format(where="(c.table_schema = any(%s) or c.table_schema like %s)"),
            (sorted(schemas), raw_like),
        )
        names = sorted({row[1] for row in rows if covered(row[1])})
        sizes = {
            (schema, table): int(size)
            for schema, table, size in query(
                "select n.nspname, c.relname, pg_total_relation_size(c.oid) "
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.relkind in ('r', 'p') and n.nspname = any(%s)",
                (names,),
            )
        }
        return _describe(query, rows, covered, loaded_at_fields, sizes)
    finally:
        connection.close()


def _describe(
    query: Query,
    rows: list[tuple[Any, ...]],
    covered: Callable[[str], bool],
    loaded_at_fields: Mapping[str, str],
    sizes: Mapping[tuple[str, str], int],
) -> list[DatasetInfo]:
    datasets: dict[str, DatasetInfo] = {}
    loads_tables: set[str] = set()
    for catalog, schema, table, table_type, column, data_type, position, nullable in rows:
        if not covered(schema):
            continue
        if table == "_dlt_loads":
            loads_tables.add(schema)
        if table.startswith("_dlt_"):
            continue
        name = dataset_name(schema, table)
        dataset = datasets.get(name)
        if dataset is None:
            relation_type = "view" if "VIEW" in str(table_type).upper() else "table"
            dataset = datasets[name] = DatasetInfo(
                name,
                "table",
                schema,
                table,
                fqn=f"{catalog}.{schema}.{table}",
                relation_type=relation_type,
                size_bytes=sizes.get((schema, table)),
            )
        dataset.columns.append(
            ColumnInfo(column, str(data_type).lower(), int(position), _yes(nullable))
        )

    counts = _exact_counts(query, [d for d in datasets.values() if d.relation_type == "table"])
    loaded = _last_loads(query, sorted(loads_tables))
    for dataset in datasets.values():
        dataset.row_count = counts.get(dataset.name)
        dataset.last_loaded_at = loaded.get(dataset.schema_name)
        expression = loaded_at_fields.get(dataset.name.lower())
        if expression:
            dataset.fresh_as_of = _newest(query, dataset, expression)
    return list(datasets.values())


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _exact_counts(query: Query, tables: list[DatasetInfo]) -> dict[str, int]:
    """``count(*)`` of every table: exact, unlike the planner's estimates."""
    counts: dict[str, int] = {}
    for start in range(0, len(tables), COUNT_BATCH):
        batch = tables[start : start + COUNT_BATCH]
        sql = " union all ".join(
            f"select {i}, count(*) from {quote(t.schema_name)}.{quote(t.table_name)}"  # noqa: S608
            for i, t in enumerate(batch)
        )
        for index, count in query(sql, ()):
            counts[batch[int(index)].name] = int(count)
    return counts


def _last_loads(query: Query, schemas: list[str]) -> dict[str, datetime]:
    """The newest completed dlt load of each schema (``_dlt_loads`` status 0)."""
    out: dict[str, datetime] = {}
    for schema in schemas:
        try:
            loads = f"{quote(schema)}._dlt_loads"
            [(newest,)] = query(f"select max(inserted_at) from {loads} where status = 0", ())  # noqa: S608
        except Exception as exc:  # a half-created schema must not stop the catalog
            log.warning("cannot read the loads of %s: %s", schema, exc)
            continue
        stamp = as_utc(newest)
        if stamp is not None:
            out[schema] = stamp
    return out


def _newest(query: Query, dataset: DatasetInfo, expression: str) -> datetime | None:
    """``max(<loaded_at_field>)`` of a table (the project's own expression, read only)."""
    try:
        # The project's own SQL expression (as dbt runs it), on a read-only connection.
        table = f"{quote(dataset.schema_name)}.{quote(dataset.table_name)}"
        [(newest,)] = query(f"select max({expression}) from {table}", ())  # noqa: S608
    except Exception as exc:  # the project's expression may not fit this warehouse
        log.warning("freshness of %s: cannot read max(%s): %s", dataset.name, expression, exc)
        return None
    return as_utc(newest)


def as_utc(value: Any) -> datetime | None:
    """A timestamp from the warehouse in UTC (naive ones are taken as UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _yes(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.upper() == "YES"
    return bool(value)


# --- dbt --------------------------------------------------------------------------------


def relation_name(node: Mapping[str, Any]) -> str | None:
    """``schema.table`` of a dbt node that is a relation in the warehouse, else None."""
    if node.get("resource_type") not in RELATION_TYPES:
        return None
    if (node.get("config") or {}).get("materialized") == "ephemeral":
        return None
    table = node.get("alias") or node.get("identifier") or node.get("name")
    return dataset_name(str(node["schema"]), str(table))


def dbt_lineage(manifest: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[Edge]]:
    """Descriptions and table-level edges from a dbt manifest.

    Returns ``{dataset name: {"description", "columns": {name: description}}}`` for
    every relation dbt knows, and the edges between relations. Ephemeral models
    have no relation: edges pass through them.
    """
    nodes: dict[str, dict[str, Any]] = {**manifest.get("nodes", {}), **manifest.get("sources", {})}

    def upstream_relations(unique_id: str, seen: set[str]) -> set[str]:
        out: set[str] = set()
        for parent in nodes.get(unique_id, {}).get("depends_on", {}).get("nodes", []):
            if parent in seen or parent not in nodes:
                continue
            seen.add(parent)
            name = relation_name(nodes[parent])
            out |= {name} if name else upstream_relations(parent, seen)
        return out

    docs: dict[str, dict[str, Any]] = {}
    edges: list[Edge] = []
    for unique_id, node in nodes.items():
        name = relation_name(node)
        if name is None:
            continue
        docs[name] = {
            "description": node.get("description") or None,
            "columns": {
                column: (meta.get("description") or None)
                for column, meta in node.get("columns", {}).items()
            },
        }
        edges.extend(Edge(up, name, "dbt") for up in sorted(upstream_relations(unique_id, set())))
    return docs, edges


@dataclass
class DbtColumn:
    description: str | None = None
    tests: set[str] = field(default_factory=set)
    unique: bool = False
    """An unconditional ``unique`` test that fails the build (not a warning)."""
    not_null: bool = False
    primary_key: bool = False
    """Declared by a dbt ``primary_key`` constraint."""


@dataclass
class DbtRelation:
    """What dbt says about one relation (model, seed, snapshot or source table)."""

    unique_id: str
    resource_type: str
    name: str
    kind: str | None
    """``staging`` / ``intermediate`` / ``mart`` / ``model``, ``seed``, ``snapshot``; None for
    a source table (the warehouse decides: a raw table)."""
    description: str | None = None
    dbt_source: str | None = None
    owner: str | None = None
    tags: list[str] = field(default_factory=list)
    materialization: str | None = None
    raw_sql: str | None = None
    compiled_sql: str | None = None
    columns: dict[str, DbtColumn] = field(default_factory=dict)
    """By lower-case column name."""
    warn_after: int | None = None
    error_after: int | None = None
    loaded_at_field: str | None = None
    last_built_at: datetime | None = None
    last_build_status: str | None = None
    test_results: dict[str, Any] | None = None

    @property
    def primary_key(self) -> set[str]:
        """Lower-case names: a ``primary_key`` constraint, else columns both unique and not null."""
        declared = {name for name, column in self.columns.items() if column.primary_key}
        return declared or {
            name for name, column in self.columns.items() if column.unique and column.not_null
        }


def dbt_relations(artifacts: DbtArtifacts, settings: Settings) -> dict[str, DbtRelation]:
    """Every relation of the newest manifest, by lower-case dataset name."""
    manifest = artifacts.manifest or {}
    nodes: dict[str, dict[str, Any]] = manifest.get("nodes") or {}
    sources: dict[str, dict[str, Any]] = manifest.get("sources") or {}
    relations: dict[str, DbtRelation] = {}
    by_id: dict[str, DbtRelation] = {}
    for unique_id, node in [*nodes.items(), *sources.items()]:
        name = relation_name(node)
        if name is None:
            continue
        relation = _relation(unique_id, node, name, artifacts, settings)
        relations[name.lower()] = by_id[unique_id] = relation

    results: dict[str, list[tuple[str, str, str | None]]] = {}
    tests = [(i, n) for i, n in nodes.items() if n.get("resource_type") == "test"]
    for unique_id, test in tests:
        attached = _attached_node(test, by_id)
        attached_to = by_id.get(attached or "")
        if attached_to is None:
            continue
        column_name = test.get("column_name") or (
            (test.get("test_metadata") or {}).get("kwargs") or {}
        ).get("column_name")
        if isinstance(column_name, str) and column_name:
            _note_column_test(attached_to, column_name, test)
        _note_result(results, attached_to.unique_id, unique_id, test, artifacts)
    for unique_id, unit_test in (manifest.get("unit_tests") or {}).items():
        for parent in (unit_test.get("depends_on") or {}).get("nodes") or []:
            if parent in by_id:
                _note_result(results, parent, unique_id, unit_test, artifacts)
    for unique_id, outcomes in results.items():
        by_id[unique_id].test_results = summarise_tests(outcomes)
    return relations


def _relation(
    unique_id: str,
    node: dict[str, Any],
    name: str,
    artifacts: DbtArtifacts,
    settings: Settings,
) -> DbtRelation:
    config = node.get("config") or {}
    resource_type = str(node["resource_type"])
    relation = DbtRelation(
        unique_id=unique_id,
        resource_type=resource_type,
        name=name,
        kind=None if resource_type == "source" else _model_kind(node, settings),
        description=node.get("description") or None,
        owner=owner_of(node),
        tags=sorted({str(t) for t in [*(node.get("tags") or []), *(config.get("tags") or [])]}),
        materialization=(
            str(config["materialized"])
            if resource_type in {"model", "seed", "snapshot"} and config.get("materialized")
            else None
        ),
        raw_sql=node.get("raw_code") or node.get("raw_sql") or None,
        compiled_sql=artifacts.compiled.get(unique_id),
    )
    for column, meta in (node.get("columns") or {}).items():
        declared = relation.columns.setdefault(str(column).lower(), DbtColumn())
        declared.description = (meta or {}).get("description") or None
        declared.primary_key = any(
            c.get("type") == "primary_key" for c in (meta or {}).get("constraints") or []
        )
    for constraint in node.get("constraints") or []:
        if constraint.get("type") == "primary_key":
            for column in constraint.get("columns") or []:
                relation.columns.setdefault(str(column).lower(), DbtColumn()).primary_key = True
    if resource_type == "source":
        relation.dbt_source = f"{node.get('source_name')}.{node.get('name')}"
        freshness = node.get("freshness") or config.get("freshness") or {}
        relation.warn_after = period_seconds(freshness.get("warn_after"))
        relation.error_after = period_seconds(freshness.get("error_after"))
        loaded_at = node.get("loaded_at_field") or config.get("loaded_at_field")
        relation.loaded_at_field = str(loaded_at) if loaded_at else None
    result = artifacts.results.get(unique_id)
    if result is not None:
        relation.last_build_status = str(result.get("status") or "") or None
        if relation.last_build_status == "success":
            relation.last_built_at = finished_at(result)
    return relation


def _model_kind(node: Mapping[str, Any], settings: Settings) -> str:
    resource_type = str(node["resource_type"])
    if resource_type in {"seed", "snapshot"}:
        return resource_type
    for part in list(node.get("fqn") or [])[1:-1]:  # the folders under models/
        if str(part).lower() in LAYER_KINDS:
            return LAYER_KINDS[str(part).lower()]
    return layer_kind(settings, str(node.get("schema") or "")) or "model"


def owner_of(node: Mapping[str, Any]) -> str | None:
    """dbt ``meta.owner`` (or ``config.meta.owner``); an owner given as a mapping answers
    with its e-mail address or name."""
    for meta in (node.get("meta"), (node.get("config") or {}).get("meta")):
        owner = (meta or {}).get("owner")
        if isinstance(owner, Mapping):
            owner = owner.get("email") or owner.get("name")
        if isinstance(owner, list):
            owner = ", ".join(str(o) for o in owner)
        if owner:
            return str(owner)
    return None


def finished_at(result: Mapping[str, Any]) -> datetime | None:
    """When a run result's ``execute`` step completed."""
    for step in result.get("timing") or []:
        if step.get("name") == "execute" and step.get("completed_at"):
            return as_utc(str(step["completed_at"]))
    return None


def _attached_node(test: Mapping[str, Any], relations: Mapping[str, DbtRelation]) -> str | None:
    attached = test.get("attached_node")
    if attached:
        return str(attached)
    parents = [p for p in (test.get("depends_on") or {}).get("nodes") or [] if p in relations]
    return parents[0] if len(parents) == 1 else None


def dbt_test_name(test: Mapping[str, Any]) -> str:
    """A generic test's name (``unique``, ``dbt_utils.expression_is_true``), else the node's."""
    metadata = test.get("test_metadata") or {}
    if metadata.get("name"):
        namespace = metadata.get("namespace")
        return f"{namespace}.{metadata['name']}" if namespace else str(metadata["name"])
    return str(test.get("name"))


def _note_column_test(relation: DbtRelation, column_name: str, test: Mapping[str, Any]) -> None:
    column = relation.columns.setdefault(column_name.strip('"').lower(), DbtColumn())
    name = dbt_test_name(test)
    column.tests.add(name)
    config = test.get("config") or {}
    binding = str(config.get("severity") or "error").lower() == "error" and not config.get("where")
    if binding and name == "unique":
        column.unique = True
    if binding and name == "not_null":
        column.not_null = True


def _note_result(
    results: dict[str, list[tuple[str, str, str | None]]],
    relation_id: str,
    test_id: str,
    test: Mapping[str, Any],
    artifacts: DbtArtifacts,
) -> None:
    result = artifacts.results.get(test_id)
    if result is None:
        return
    results.setdefault(relation_id, []).append(
        (str(test.get("name") or test_id), str(result.get("status")), result.get("generated_at"))
    )


def summarise_tests(outcomes: Iterable[tuple[str, str, str | None]]) -> dict[str, Any]:
    """Counts per status of ``(test name, status, generated_at)``, the failing (fail or
    error) and warning tests' names, and when the newest of them ran."""
    summary: dict[str, Any] = {
        "pass": 0,
        "fail": 0,
        "warn": 0,
        "error": 0,
        "skipped": 0,
        "failing": [],
        "warning": [],
        "ran_at": None,
    }
    for name, status, generated_at in outcomes:
        status = {"success": "pass", "runtime error": "error"}.get(status, status)
        if status in ("pass", "fail", "warn", "error", "skipped"):
            summary[status] += 1
        if status in ("fail", "error"):
            summary["failing"].append(name)
        elif status == "warn":
            summary["warning"].append(name)
        if generated_at and (summary["ran_at"] is None or generated_at > summary["ran_at"]):
            summary["ran_at"] = generated_at
    summary["failing"].sort()
    summary["warning"].sort()
    return summary


# --- dlt --------------------------------------------------------------------------------


def dlt_lineage(raw_tables: Iterable[tuple[str, str, str]], settings: Settings) -> list[Edge]:
    """Edges from source tables to the raw tables dlt loaded them into.

    ``raw_tables`` yields ``(source, resource, table)``: the declared source, the
    dlt resource (the table in the source system) and the warehouse table.
    """
    return [
        Edge(
            source_dataset_name(source, resource),
            dataset_name(settings.raw_schema(source), table),
            "dlt",
        )
        for source, resource, table in raw_tables
    ]


def dlt_table_info(settings: Settings, sources: Iterable[str]) -> list[DltTable]:
    """Every data table in each source's dlt schema, with its resource and primary key."""
    import dlt
    from dlt.pipeline.exceptions import CannotRestorePipelineException

    out = []
    for source in sources:
        try:
            pipeline = dlt.attach(
                pipeline_name=settings.pipeline_name(source),
                pipelines_dir=str(settings.dlt_dir),
            )
        except CannotRestorePipelineException:
            continue  # never loaded
        tables = pipeline.default_schema.tables
        for table in pipeline.default_schema.data_tables():
            root = table
            while root.get("parent") in tables:  # nested tables belong to their root's resource
                root = tables[str(root["parent"])]
            resource = root.get("resource") or root["name"]
            key = tuple(
                str(name)
                for name, column in (table.get("columns") or {}).items()
                if column.get("primary_key")
            )
            out.append(DltTable(source, str(resource), str(table["name"]), key))
    return out


def dlt_tables(settings: Settings, sources: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(source, resource, table)`` for every data table in each source's dlt schema."""
    return [(t.source, t.resource, t.table) for t in dlt_table_info(settings, sources)]
