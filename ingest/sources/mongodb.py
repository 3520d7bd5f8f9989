"""``mongodb`` sources: collections of a MongoDB database.

Each declared table reads one collection (``source_table``, default its name).
Nested documents are flattened into ``parent__child`` columns and arrays become
child tables, the dlt way. Without ``write_disposition`` a collection is merged
on ``_id``. With a ``cursor`` only documents whose field is at least the last
value seen are read (the filter runs on the server, sorted on the cursor).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import dlt
from bson import Binary, Decimal128, ObjectId
from pymongo import ASCENDING, MongoClient
from pymongo.errors import ConfigurationError, PyMongoError

from ingest.checks import column_problems
from ingest.errors import IngestError

if TYPE_CHECKING:
    from dlt.extract.resource import DltResource

    from ingest.spec import SourceSpec, TableSpec

BATCH_SIZE = 10_000
SAMPLE_SIZE = 100
SERVER_TIMEOUT_MS = 10_000
DEFAULT_KEY = ("_id",)


def _masked(url: str) -> str:
    from ingest.masks import mask_url

    return mask_url(url)


def _client(source: SourceSpec) -> MongoClient[dict[str, Any]]:
    return MongoClient(
        source.connection or "", serverSelectionTimeoutMS=SERVER_TIMEOUT_MS, tz_aware=True
    )


def _database_name(source: SourceSpec, client: MongoClient[dict[str, Any]]) -> str:
    if source.database:
        return source.database
    try:
        return str(client.get_default_database().name)
    except ConfigurationError:
        raise IngestError(
            f"{_masked(source.connection or '')} names no database",
            hint="add it to the URL (mongodb://host:27017/shop) or set 'database'",
        ) from None


def plain(value: Any) -> Any:
    """A document with BSON-only types made plain: ids as text, decimals exact."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Binary):
        return bytes(value)
    if isinstance(value, str | int | float | bool | dt.datetime | dt.date | decimal.Decimal):
        return value
    if value is None or isinstance(value, bytes):
        return value
    return str(value)  # Regex, Code, Timestamp, MinKey…: their text


def _collection_reader(source: SourceSpec, name: str, spec: TableSpec) -> DltResource:
    disposition, key = spec.resolved(name, DEFAULT_KEY)
    collection = spec.source_table or name
    cursor_field = spec.cursor
    incremental: dlt.sources.incremental[Any] | None = (
        dlt.sources.incremental(cursor_field, lag=spec.lag) if cursor_field else None
    )

    def read(
        cursor: dlt.sources.incremental[Any] | None = incremental,
    ) -> Iterator[list[dict[str, Any]]]:
        client = _client(source)
        try:
            documents = client[_database_name(source, client)][collection]
            query: dict[str, Any] = {}
            if cursor_field and cursor is not None and cursor.last_value is not None:
                query = {cursor_field: {"$gte": cursor.last_value}}
            found = documents.find(query, batch_size=BATCH_SIZE)
            if cursor_field:
                found = found.sort(cursor_field, ASCENDING)
            batch: list[dict[str, Any]] = []
            for document in found:
                batch.append(plain(document))
                if len(batch) >= BATCH_SIZE:
                    yield batch
                    batch = []
            if batch:
                yield batch
        except PyMongoError as exc:
            raise IngestError(
                f"reading {collection!r} from {_masked(source.connection or '')} failed: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            ) from None
        finally:
            client.close()

    return dlt.resource(
        read,
        name=name,
        table_name=name,
        write_disposition=disposition,
        primary_key=list(key),
    )


def resources(source: SourceSpec, tables: list[str]) -> list[DltResource]:
    return [_collection_reader(source, name, source.tables[name]) for name in tables]


def collection_names(source: SourceSpec) -> list[str]:
    """The collections of the source's database (MongoDB's own ``system.*`` left out)."""
    client = _client(source)
    try:
        names = client[_database_name(source, client)].list_collection_names()
    except PyMongoError as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise IngestError(
            f"cannot connect to {_masked(source.connection or '')}: {reason}"
        ) from None
    finally:
        client.close()
    return [name for name in names if not name.startswith("system.")]


def check_connection(source: SourceSpec) -> None:
    """Reach the server; each collection must exist and hold the declared fields."""
    client = _client(source)
    where = _masked(source.connection or "")
    try:
        try:
            client.server_info()
            database = client[_database_name(source, client)]
            present = set(database.list_collection_names())
        except PyMongoError as exc:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise IngestError(f"cannot connect to {where}: {reason}") from None
        missing = [
            spec.source_table or name
            for name, spec in source.tables.items()
            if (spec.source_table or name) not in present
        ]
        if missing:
            raise IngestError(f"{where} has no collection(s) {', '.join(missing)}")
        problems = []
        for name, spec in source.tables.items():
            fields: set[str] = set()
            for document in database[spec.source_table or name].find({}, limit=SAMPLE_SIZE):
                fields.update(document)
            if fields:
                problems += column_problems(name, spec, sorted(fields))
        if problems:
            raise IngestError("; ".join(problems), hint="fix the field names of the source")
    finally:
        client.close()
