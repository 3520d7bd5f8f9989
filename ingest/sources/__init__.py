"""Source kinds: one module per kind, each turning a SourceSpec into dlt resources."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ingest.errors import IngestError

if TYPE_CHECKING:
    from dlt.extract.resource import DltResource

    from ingest.spec import SourceSpec


def build_resources(
    source: SourceSpec, tables: list[str] | None = None, fresh: frozenset[str] = frozenset()
) -> list[DltResource]:
    """The dlt resources for ``source``, restricted to ``tables`` when given.

    ``fresh``: tables of which nothing is loaded yet (a kind may write them faster).
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

        return database.resources(source, selected, fresh)
    if source.kind == "mongodb":
        from ingest.sources import mongodb

        return mongodb.resources(source, selected)
    if source.kind == "rest_api":
        from ingest.sources import rest_api

        return rest_api.resources(source, selected)
    from ingest.sources import file

    return file.resources(source, selected)


def check_connection(source: SourceSpec) -> None:
    """Raise IngestError with a clear message when the source cannot be reached."""
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
