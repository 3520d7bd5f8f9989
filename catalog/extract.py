"""Extractors: what the warehouse, dbt and dlt know, as plain data.

Pure functions over parsed artifacts where possible; the I/O is at the edges
(``warehouse_tables``, ``read_manifest``, ``dlt_tables``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.errors import CatalogError
from headwater.warehouse import connect_duckdb_read_only, connect_postgres

if TYPE_CHECKING:
    from headwater.settings import Settings

DBT_LAYERS = ("staging", "intermediate", "marts")


@dataclass
class ColumnInfo:
    name: str
    data_type: str
    position: int
    is_nullable: bool | None = None
    description: str | None = None


@dataclass
class DatasetInfo:
    name: str
    kind: str
    schema_name: str
    table_name: str
    description: str | None = None
    row_count: int | None = None
    columns: list[ColumnInfo] = field(default_factory=list)


@dataclass(frozen=True)
class Edge:
    upstream: str
    downstream: str
    origin: str


def dataset_name(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def source_dataset_name(source: str, table: str) -> str:
    return f"source.{source}.{table}"


def is_catalogued_schema(schema: str, prefix: str) -> bool:
    """Warehouse schemas the catalog covers: raw loads and the dbt layers, not dlt staging."""
    if not schema.startswith(prefix):
        return False
    bare = schema[len(prefix) :]
    if bare.startswith("raw_"):
        return not bare.endswith("_staging")
    return bare in DBT_LAYERS


def kind_of(schema: str, prefix: str) -> str:
    bare = schema[len(prefix) :]
    if bare.startswith("raw_"):
        return "raw"
    return {"staging": "staging", "intermediate": "intermediate", "marts": "mart"}.get(
        bare, "table"
    )


def warehouse_tables(settings: Settings) -> list[DatasetInfo]:
    """Every catalogued table and view in the warehouse with its columns and types."""
    prefix = settings.schema_prefix
    if settings.warehouse == "duckdb":
        rows, sizes = _duckdb_columns(settings)
    else:
        rows, sizes = _postgres_columns(settings)
    datasets: dict[str, DatasetInfo] = {}
    for schema, table, column, data_type, position, nullable in rows:
        if not is_catalogued_schema(schema, prefix) or table.startswith("_dlt_"):
            continue
        name = dataset_name(schema, table)
        dataset = datasets.get(name)
        if dataset is None:
            dataset = datasets[name] = DatasetInfo(
                name, kind_of(schema, prefix), schema, table, row_count=sizes.get((schema, table))
            )
        dataset.columns.append(
            ColumnInfo(column, str(data_type).lower(), int(position), _yes(nullable))
        )
    return list(datasets.values())


def _yes(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.upper() == "YES"
    return bool(value)


COLUMNS_SQL = """
select table_schema, table_name, column_name, data_type, ordinal_position, is_nullable
from information_schema.columns
order by table_schema, table_name, ordinal_position
"""


def _duckdb_columns(
    settings: Settings,
) -> tuple[list[tuple[Any, ...]], dict[tuple[str, str], int]]:
    import duckdb

    path = settings.duckdb_path
    if not path.exists():
        return [], {}
    try:
        connection = connect_duckdb_read_only(settings)
    except duckdb.IOException as exc:
        raise CatalogError(
            f"cannot read the warehouse {path}: {str(exc).splitlines()[0]}",
            hint="another process is writing it; try again when the load finishes",
        ) from None
    try:
        rows = connection.execute(COLUMNS_SQL).fetchall()
        sizes = {
            (schema, table): int(size)
            for schema, table, size in connection.execute(
                "select schema_name, table_name, estimated_size from duckdb_tables()"
            ).fetchall()
        }
    finally:
        connection.close()
    return rows, sizes


def _postgres_columns(
    settings: Settings,
) -> tuple[list[tuple[Any, ...]], dict[tuple[str, str], int]]:
    import psycopg2

    try:
        connection = connect_postgres(settings)
    except psycopg2.OperationalError:
        raise CatalogError(
            f"cannot connect to the PostgreSQL warehouse at "
            f"{settings.warehouse_host}:{settings.warehouse_port}/{settings.warehouse_dbname}"
        ) from None
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                COLUMNS_SQL.replace(
                    "from information_schema.columns",
                    "from information_schema.columns where table_schema like %s",
                ),
                (settings.schema_prefix.replace("_", r"\_") + "%",),
            )
            rows = cursor.fetchall()
            cursor.execute(
                "select n.nspname, c.relname, greatest(c.reltuples, 0)::bigint "
                "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where c.relkind in ('r', 'p')"
            )
            sizes = {(s, t): int(n) for s, t, n in cursor.fetchall()}
    finally:
        connection.close()
    return rows, sizes


def read_manifest(path: Path) -> dict[str, Any] | None:
    """dbt's manifest.json, or None when dbt has not parsed the project yet."""
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"{path} is not valid JSON ({exc.msg})", hint="run `headwater transform`"
        ) from None


def dbt_lineage(manifest: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[Edge]]:
    """Descriptions and table-level edges from a dbt manifest.

    Returns ``{dataset name: {"description", "columns": {name: description}}}`` for
    every relation dbt knows, and the edges between relations. Ephemeral models
    have no relation: edges pass through them.
    """
    nodes: dict[str, dict[str, Any]] = {**manifest.get("nodes", {}), **manifest.get("sources", {})}

    def relation(node: dict[str, Any]) -> str | None:
        if node.get("resource_type") not in {"model", "seed", "snapshot", "source"}:
            return None
        if node.get("config", {}).get("materialized") == "ephemeral":
            return None
        table = node.get("alias") or node.get("identifier") or node.get("name")
        return dataset_name(str(node["schema"]), str(table))

    def upstream_relations(unique_id: str, seen: set[str]) -> set[str]:
        out: set[str] = set()
        for parent in nodes.get(unique_id, {}).get("depends_on", {}).get("nodes", []):
            if parent in seen or parent not in nodes:
                continue
            seen.add(parent)
            name = relation(nodes[parent])
            out |= {name} if name else upstream_relations(parent, seen)
        return out

    docs: dict[str, dict[str, Any]] = {}
    edges: list[Edge] = []
    for unique_id, node in nodes.items():
        name = relation(node)
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


def dlt_lineage(raw_tables: Iterable[tuple[str, str, str]], prefix: str) -> list[Edge]:
    """Edges from source tables to the raw tables dlt loaded them into.

    ``raw_tables`` yields ``(source, resource, table)``: the declared source, the
    dlt resource (the table in the source system) and the warehouse table.
    """
    return [
        Edge(
            source_dataset_name(source, resource),
            dataset_name(f"{prefix}raw_{source}", table),
            "dlt",
        )
        for source, resource, table in raw_tables
    ]


def dlt_tables(settings: Settings, sources: Iterable[str]) -> list[tuple[str, str, str]]:
    """``(source, resource, table)`` for every data table in each source's dlt schema."""
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
            out.append((source, str(resource), str(table["name"])))
    return out
