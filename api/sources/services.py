"""Sources through the API: the two homes listed together, stored ones changed with an
audit entry in the same transaction. Every rule lives in ``ingest.store``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from api.audit.services import Actor, record
from api.errors import ServiceUnavailable
from api.schemas import Page
from api.sources.schemas import (
    ConnectionTest,
    DestinationOut,
    LastLoadOut,
    SchemaChangeOut,
    SourceIn,
    SourceOut,
    SourceState,
    SourceUpdate,
    TableFields,
    TableStateOut,
)
from ingest import store
from ingest.errors import IngestError, SourceNotFound, SpecError
from ingest.original_names import original_names
from ingest.schema_events import recent_changes
from ingest.state import table_states

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings
    from ingest.spec import TableSpec


def table_fields(spec: TableSpec) -> TableFields:
    values = spec.model_dump(mode="json", exclude_none=True)
    values = {key: value for key, value in values.items() if value != []}
    return TableFields(**values)


def source_out(declared: store.Declared) -> SourceOut:
    spec = store.masked(declared.spec)
    return SourceOut(
        name=declared.name,
        kind=spec.kind,
        origin=declared.origin,
        read_only=declared.origin == "file",
        tables={name: table_fields(table) for name, table in spec.tables.items()},
        connection=spec.connection,
        database=spec.database,
        client=spec.client,
        resource_defaults=spec.resource_defaults,
        schema_contract=spec.schema_contract,
        destination=spec.destination,
        target=spec.target,
        description=spec.description,
        created_at=declared.created_at,
        updated_at=declared.updated_at,
    )


def _snapshot(declared: store.Declared) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(source_out(declared))
    return out


def _tables_data(tables: dict[str, TableFields]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            key: value for key, value in msgspec.structs.asdict(fields).items() if value is not None
        }
        for name, fields in tables.items()
    }


def _sources(settings: Settings, session: Session) -> dict[str, store.Declared]:
    """Both homes; a broken sources file is the server's problem, not the request's."""
    try:
        return store.all_sources(settings, session)
    except SpecError as exc:
        raise ServiceUnavailable(f"The sources are misconfigured: {exc}") from None


def list_sources(
    settings: Settings,
    session: Session,
    *,
    limit: int,
    offset: int,
    kind: str | None = None,
    origin: str | None = None,
    search: str | None = None,
) -> Page[SourceOut]:
    matches = [
        declared
        for declared in _sources(settings, session).values()
        if (kind is None or declared.spec.kind == kind)
        and (origin is None or declared.origin == origin)
        and (
            search is None
            or search.lower() in declared.name
            or search.lower() in (declared.spec.description or "").lower()
        )
    ]
    page = [source_out(d) for d in matches[offset : offset + limit]]
    return Page(page, total=len(matches), limit=limit, offset=offset)


def list_destinations(settings: Settings, session: Session) -> list[DestinationOut]:
    """The configured warehouse, then every connection marked as a destination."""
    from ingest.destinations import as_destination, warehouse

    sources = _sources(settings, session)
    own = warehouse(settings)
    out = [DestinationOut(own.name, own.kind, "settings", own.shown, own.description)]
    for name, declared in sources.items():
        if declared.spec.destination:
            found = as_destination(name, declared.spec)
            out.append(
                DestinationOut(name, found.kind, declared.origin, found.shown, found.description)
            )
    return out


def get_source(settings: Settings, session: Session, name: str) -> store.Declared:
    sources = _sources(settings, session)
    if name not in sources:
        raise SourceNotFound(f"No source named {name!r}")
    return sources[name]


def create_source(settings: Settings, session: Session, data: SourceIn, actor: Actor) -> SourceOut:
    fields = {
        key: value
        for key, value in msgspec.structs.asdict(data).items()
        if value is not None and key != "name"
    }
    if data.tables is not None:
        fields["tables"] = _tables_data(data.tables)
    return store_source(settings, session, data.name, fields, actor)


def store_source(
    settings: Settings, session: Session, name: str, fields: dict[str, Any], actor: Actor
) -> SourceOut:
    """Store a new source from its fields (snake_case, as in sources.yml), audited."""
    created = store.create_source(session, settings, name, fields)
    record(session, actor, "source.create", "source", name, after=_snapshot(created))
    return source_out(created)


def update_source(
    settings: Settings, session: Session, name: str, data: SourceUpdate, actor: Actor
) -> SourceOut:
    changes = {
        key: value
        for key, value in msgspec.structs.asdict(data).items()
        if not isinstance(value, msgspec.UnsetType)
    }
    if "tables" in changes:
        changes["tables"] = _tables_data(changes["tables"])
    return change_source(settings, session, name, changes, actor)


def change_source(
    settings: Settings, session: Session, name: str, changes: dict[str, Any], actor: Actor
) -> SourceOut:
    """Apply ``changes`` (fields given replace the stored ones) to a stored source, audited."""
    before, after = store.update_source(session, settings, name, changes)
    record(
        session,
        actor,
        "source.update",
        "source",
        name,
        before=_snapshot(before),
        after=_snapshot(after),
    )
    return source_out(after)


def delete_source(settings: Settings, session: Session, name: str, actor: Actor) -> None:
    removed = store.delete_source(session, settings, name)
    before = _snapshot(removed) if removed is not None else {"name": name, "unreadable": True}
    record(session, actor, "source.delete", "source", name, before=before)


def source_state(settings: Settings, session: Session, name: str) -> SourceState:
    declared = get_source(settings, session, name)
    renamed = original_names(session, name)
    tables = [
        TableStateOut(
            table=state.table,
            cursor=state.cursor,
            cursor_value=state.cursor_value,
            last_load=None
            if state.last_load is None
            else LastLoadOut(
                status=state.last_load.status,  # type: ignore[arg-type]
                rows=state.last_load.rows,
                finished_at=state.last_load.finished_at,
                load_id=state.last_load.load_id,
                error=state.last_load.error,
            ),
            renamed_columns=renamed.get(state.table, {}),
        )
        for state in table_states(settings, session, name, declared.spec)
    ]
    changes = [
        SchemaChangeOut(
            table=c.table,
            column=c.column,
            change=c.change,  # type: ignore[arg-type]
            old_type=c.old_type,
            new_type=c.new_type,
            at=c.at,
            load_id=c.load_id,
        )
        for c in recent_changes(session, name)
    ]
    return SourceState(name=name, tables=tables, schema_changes=changes)


def test_connection(settings: Settings, name: str, declared: store.Declared) -> ConnectionTest:
    """Reach the source and check its tables and key columns (blocking: call in a thread)."""
    from ingest.masks import scrub, secret_paths, url_secrets
    from ingest.sources import check_connection, with_tables
    from ingest.targets import check_targets

    started = time.perf_counter()
    tables = 0
    try:
        check_targets(settings, name, declared.spec)
        found = with_tables(declared.spec)
        check_connection(found)
        tables = len(found.tables)
    except IngestError as exc:
        message = str(exc)
    except Exception as exc:  # a driver's own error: its first line, secrets scrubbed
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        message = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    else:
        message = ""
    if message:
        spec = declared.spec
        secrets = url_secrets(spec.connection)
        secrets += [value for _, value in secret_paths(spec.model_dump(mode="json"))]
        return ConnectionTest(
            ok=False,
            message=scrub(message, secrets),
            seconds=round(time.perf_counter() - started, 3),
        )
    return ConnectionTest(
        ok=True,
        message="destination reachable"
        if declared.spec.destination
        else f"reachable, {tables} table(s) found",
        seconds=round(time.perf_counter() - started, 3),
    )
