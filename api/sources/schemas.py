"""Wire types of the sources domain: a source has the fields of a sources.yml entry,
in camelCase."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from api.schemas import NO_NUL

SOURCE_NAME = r"^[a-z][a-z0-9_]{0,62}$"
SourceName = Annotated[str, msgspec.Meta(pattern=SOURCE_NAME, max_length=63)]
TableName = Annotated[str, msgspec.Meta(min_length=1, max_length=63, pattern=NO_NUL)]
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Text = Annotated[str, msgspec.Meta(max_length=2000, pattern=NO_NUL)]
Kind = Literal["database", "file", "mongodb", "rest_api"]
Contract = Literal["evolve", "freeze", "discard_rows", "discard_value"]
Config = Annotated[dict[str, Any], msgspec.Meta(max_length=100)]
"""dlt rest_api configuration (client, endpoint, resource defaults): passed on as it is."""
Origin = Literal["file", "store"]


class TableFields(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """One table (database) or file (file source). Every field may be left out."""

    write_disposition: Literal["append", "replace", "merge"] | None = None
    """Unset: merge on the primary key (declared or reflected), else replace."""
    primary_key: Annotated[list[Identifier], msgspec.Meta(max_length=32)] | None = None
    cursor: Identifier | None = None
    """Incremental cursor column."""
    lag: Annotated[float, msgspec.Meta(ge=0)] | None = None
    path: Text | None = None
    format: Literal["csv", "jsonl", "json", "excel"] | None = None
    sheet: Identifier | None = None
    delimiter: Annotated[str, msgspec.Meta(min_length=1, max_length=1)] | None = None
    encoding: Identifier | None = None
    header: bool | None = None
    null_values: Annotated[list[Text], msgspec.Meta(max_length=64)] | None = None
    source_table: Identifier | None = None
    endpoint: Config | Text | None = None
    """REST API: dlt's endpoint configuration, or just the path (default: the table name)."""
    cursor_param: Identifier | None = None
    """REST API: the query parameter that receives the last cursor value."""
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)] | None = None
    """Database: one SELECT (in the source's dialect) whose rows are the table."""
    columns: Annotated[list[Identifier], msgspec.Meta(min_length=1, max_length=1000)] | None = None
    """Database: only these columns of the source table."""


Tables = Annotated[dict[TableName, TableFields], msgspec.Meta(min_length=1, max_length=1000)]


class SourceIn(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: SourceName
    """Also the warehouse schema (raw_<name>); it cannot change later."""
    kind: Kind
    tables: Tables | None = None
    """Left out (database, mongodb): every table or collection, found at each load."""
    connection: Text | None = None
    """Database or MongoDB URL; the password is stored encrypted and only ever shown masked."""
    database: Identifier | None = None
    """MongoDB: the database, when the URL names none."""
    client: Config | None = None
    """REST API: dlt's client configuration (base_url, auth, paginator, headers); the auth
    secrets are stored encrypted and only ever shown masked."""
    resource_defaults: Config | None = None
    """REST API: dlt's defaults for every endpoint."""
    schema_contract: Contract | None = None
    """New tables, columns and types: evolve (default), freeze (fail the load),
    discard_rows, discard_value."""
    destination: bool = False
    """A PostgreSQL or DuckDB connection sources may name as their ``target``: written
    to, never loaded from (listed by ``GET /api/destinations``)."""
    target: SourceName | None = None
    """Where the source loads: ``warehouse`` (the default) or a destination's name."""
    description: Text | None = None


class SourceUpdate(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Fields given replace the stored ones. Send the masked connection back to keep
    the stored password (host, port and user unchanged)."""

    tables: Tables | msgspec.UnsetType = msgspec.UNSET
    connection: Text | msgspec.UnsetType | None = msgspec.UNSET
    database: Identifier | msgspec.UnsetType | None = msgspec.UNSET
    client: Config | msgspec.UnsetType | None = msgspec.UNSET
    resource_defaults: Config | msgspec.UnsetType | None = msgspec.UNSET
    schema_contract: Contract | msgspec.UnsetType | None = msgspec.UNSET
    target: SourceName | msgspec.UnsetType | None = msgspec.UNSET
    description: Text | msgspec.UnsetType | None = msgspec.UNSET


class SourceOut(msgspec.Struct, rename="camel"):
    name: str
    kind: Kind
    origin: Origin
    """``file``: declared in sources.yml (change it through a pull request); ``store``:
    written through the API or the CLI."""
    read_only: bool
    tables: dict[str, TableFields]
    connection: str | None
    """Masked: the password never leaves the server."""
    database: str | None
    client: dict[str, Any] | None
    """REST API: auth secrets masked."""
    resource_defaults: dict[str, Any] | None
    schema_contract: Contract | None
    destination: bool
    target: str | None
    description: str | None
    created_at: datetime | None
    updated_at: datetime | None


class ConnectionTest(msgspec.Struct, rename="camel"):
    ok: bool
    message: str
    seconds: float


class LastLoadOut(msgspec.Struct, rename="camel"):
    status: Literal["loaded", "failed"]
    rows: int
    finished_at: datetime
    load_id: str | None
    error: str | None


class TableStateOut(msgspec.Struct, rename="camel"):
    table: str
    cursor: str | None
    cursor_value: str | None
    """Where the next incremental load starts (null: it reads everything)."""
    last_load: LastLoadOut | None
    renamed_columns: dict[str, str]
    """Warehouse column name → the source's own name, where they differ."""


class SchemaChangeOut(msgspec.Struct, rename="camel"):
    table: str
    column: str | None
    change: Literal["table_added", "column_added", "column_removed", "type_changed"]
    old_type: str | None
    new_type: str | None
    at: datetime
    load_id: str | None


class SourceState(msgspec.Struct, rename="camel"):
    name: str
    tables: list[TableStateOut]
    schema_changes: list[SchemaChangeOut]
    """The newest 50 changes loads made to the raw tables' schemas, newest first."""


class DestinationOut(msgspec.Struct, rename="camel"):
    """A place sources load into (a job's ``targetId``)."""

    name: str
    """``warehouse`` (the configured one, always first) or a connection's name."""
    kind: Literal["duckdb", "postgres"]
    origin: Literal["settings", "file", "store"]
    """``settings``: the configured warehouse; otherwise where the connection is declared."""
    connection: str
    """Masked: the password never leaves the server."""
    description: str | None
