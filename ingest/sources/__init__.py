"""Source kinds: one module per kind, each turning a SourceSpec into dlt resources."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ingest.errors import IngestError

if TYPE_CHECKING:
    from dlt.extract.resource import DltResource

    from ingest.spec import SourceSpec


def with_tables(source: SourceSpec) -> SourceSpec:
    """``source`` with its tables named: a source declared without ``tables`` gets
    every table (database) or collection (mongodb) it has now, each with its defaults.

    A table whose name is not a warehouse name (upper case, odd characters) is
    loaded under the normalised name, the original kept as ``source_table``.

    Raises:
        IngestError: the source cannot be reached, has nothing to load, or two of its
            names normalise to the same table.
    """
    if not source.whole:
        return source
    from ingest.spec import TableSpec

    if source.kind == "mongodb":
        from ingest.sources import mongodb

        found = mongodb.collection_names(source)
    else:
        from ingest.sources import database

        found = database.table_names(source)
    tables: dict[str, TableSpec] = {}
    originals: dict[str, str] = {}
    for original in sorted(found):
        name = warehouse_name(original)
        if name in originals:
            raise IngestError(
                f"{originals[name]!r} and {original!r} would both load as table {name!r}",
                hint="declare the tables, mapping each with source_table",
            )
        originals[name] = original
        tables[name] = TableSpec(source_table=None if name == original else original)
    if not tables:
        raise IngestError(
            f"the source has no {'collections' if source.kind == 'mongodb' else 'tables'} to load",
            hint="declare the tables to load under 'tables'",
        )
    return source.model_copy(update={"tables": tables})


def warehouse_name(original: str) -> str:
    """The raw table name for a source table or collection called ``original``."""
    name = re.sub(r"[^a-z0-9_]+", "_", original.lower()).strip("_") or "table"
    if not name[0].isalpha():
        name = f"t_{name}"
    return name[:63]


def read_ahead(source: SourceSpec, tables: list[str]) -> Any:
    """Start, in the background, what :func:`build_resources` needs from the source and
    may read before the run has asked the warehouse what it holds (a database's table
    reflection: about 40 ms an incremental run spends in parallel instead of in turn).
    Pass the result to :func:`build_resources` as ``ahead``."""
    if source.kind != "database":
        return None
    from ingest.sources import database

    return database.reflect_ahead(source, tables)


def build_resources(
    source: SourceSpec,
    tables: list[str] | None = None,
    fresh: frozenset[str] = frozenset(),
    ahead: Any = None,
) -> list[DltResource]:
    """The dlt resources for ``source``, restricted to ``tables`` when given.

    ``fresh``: tables of which nothing is loaded yet (a kind may write them faster).
    ``ahead``: what :func:`read_ahead` started for the same tables.
    """
    selected = list(source.tables) if tables is None else tables
    unknown = [t for t in selected if t not in source.tables]
    if unknown:
        raise IngestError(
            f"unknown table(s) {', '.join(unknown)}",
            hint=f"declared: {', '.join(source.tables)}",
        )
    if source.kind == "database":
        from ingest.sources import database

        built = database.resources(source, selected, fresh, ahead)
    elif source.kind == "mongodb":
        from ingest.sources import mongodb

        built = mongodb.resources(source, selected)
    elif source.kind == "rest_api":
        from ingest.sources import rest_api

        built = rest_api.resources(source, selected)
    else:
        from ingest.sources import file

        built = file.resources(source, selected)
    for resource in built:
        if resource.name in fresh and resource.write_disposition == "replace":
            # Nothing loaded yet, so nothing to keep visible: the rows go straight into
            # the new table instead of through the staging copy a replace commits from
            # (measured on a 2M-row CSV: the load step 2.6 s -> 1.4 s).
            resource.apply_hints(write_disposition="append")
    return built


def check_connection(source: SourceSpec) -> None:
    """Raise IngestError with a clear message when the source (or destination) cannot
    be reached."""
    if source.destination and (source.connection or "").startswith("duckdb:"):
        _check_duckdb_file(source.connection or "")
        return
    source = with_tables(source)
    if source.kind == "database":
        from ingest.sources import database

        database.check_connection(source)
    elif source.kind == "mongodb":
        from ingest.sources import mongodb

        mongodb.check_connection(source)
    elif source.kind == "rest_api":
        from ingest.sources import rest_api

        rest_api.check_connection(source)
    else:
        from ingest.sources import file

        file.check_connection(source)


def _check_duckdb_file(connection: str) -> None:
    """A DuckDB destination's folder must exist and be writable (the file is made on
    the first load; opening it here could block a load that holds it)."""
    import os
    from pathlib import Path

    from sqlalchemy.engine import make_url

    folder = Path(make_url(connection).database or "").parent
    if not folder.is_dir():
        raise IngestError(f"the folder {str(folder)!r} of the DuckDB file does not exist")
    if not os.access(folder, os.W_OK):
        raise IngestError(f"the folder {str(folder)!r} of the DuckDB file is not writable")
