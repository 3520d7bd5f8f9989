"""Sources have two homes and one model: ``sources.yml`` (reviewed in Git) and the
``sources`` table (written through the API and the CLI, credentials encrypted).

Both pass :class:`ingest.spec.SourceSpec` and its precise errors; a name in both
homes is an error that says where each one is. A stored source keeps its spec
without secrets in ``config`` and the connection URL, encrypted, in ``secrets``.
Responses show the connection with its password masked; sending the mask back
keeps the stored password, as long as host, port and user stay the same.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path as FilePath
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import delete, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError

from headwater.db import as_utc, session_scope, sqlite_path
from headwater.secrets import SecretBox, SecretsError
from ingest.errors import IngestError, SourceNotFound, SpecError
from ingest.masks import MASK, Path, get_path, mask_url, secret_paths, set_path
from ingest.models import StoredSource
from ingest.spec import (
    NAME,
    SourceSpec,
    load_sources,
    resolve_paths,
    validation_messages,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings

Origin = Literal["file", "store"]
logger = logging.getLogger("headwater.ingest")
ROUTING_PARAMETERS = {"host", "hostaddr", "port", "unix_socket", "service", "servicefile"}
"""URL parameters that change which server a connection reaches (libpq, MySQL)."""


class SourceExists(IngestError):
    """A source of that name is already declared (in the file or the store)."""


class UnreadableSource(IngestError):
    """A stored source that can no longer be read: its key is gone or its fields no longer
    validate. It can still be deleted."""


class DestinationInUse(IngestError):
    """A destination that sources still load into."""


class ReadOnlySource(IngestError):
    """The source is declared in sources.yml: change it there, through a pull request."""


@dataclass(frozen=True)
class Declared:
    """A source and where it is declared."""

    name: str
    spec: SourceSpec
    origin: Origin
    created_at: datetime | None = None
    updated_at: datetime | None = None


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def validate_source(
    name: str, data: dict[str, Any], rename: Callable[[str], str] = camel
) -> SourceSpec:
    """``data`` (one source's fields, snake_case) as a SourceSpec.

    Raises:
        SpecError: every problem, one per line, fields spelled by ``rename``.
    """
    if not NAME.match(name):
        raise SpecError(
            f"source name {name!r} must start with a lower case letter, then lower case "
            "letters, digits and underscores (at most 63)"
        )
    try:
        return SourceSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            "\n".join(message for _, message in validation_messages(exc, rename))
        ) from None


def unmask(new: str, old: str | None) -> str:
    """``new``, with masked parts taken from ``old``, the stored URL.

    Raises:
        SpecError: the mask was sent for a URL whose host, port or user changed
            (the stored password is never sent somewhere new), or there is none.
    """
    try:
        parsed = make_url(new)
    except (ArgumentError, ValueError):
        if MASK in new:
            raise SpecError(
                "connection: send the whole URL, the mask cannot be kept here"
            ) from None
        return new  # reported by validation, without quoting it
    masked_query = [key for key, value in parsed.query.items() if value == MASK]
    if parsed.password != MASK and not masked_query:
        return new
    previous = make_url(old) if old else None

    def where(url: Any) -> tuple[Any, ...]:
        routing = {k: v for k, v in url.query.items() if k.lower() in ROUTING_PARAMETERS}
        return (url.host, url.port, url.username, routing)

    if previous is None or where(parsed) != where(previous):
        raise SpecError(
            "connection: the password is the mask but the host, port, user or parameters "
            "changed; send the password itself"
        )
    if parsed.password == MASK:
        parsed = parsed.set(password=previous.password)
    query = dict(parsed.query)
    for key in masked_query:
        if key not in previous.query:
            raise SpecError(f"connection: parameter {key!r} is the mask but none is stored")
        query[key] = previous.query[key]
    return parsed.set(query=query).render_as_string(hide_password=False)


def _rest_secrets(config: dict[str, Any]) -> list[tuple[Path, str]]:
    """(path, value) of the secrets in a spec dump's REST API configuration."""
    trees: list[tuple[Path, Any]] = [
        (("client",), config.get("client")),
        (("resource_defaults",), config.get("resource_defaults")),
    ]
    trees += [
        (("tables", name, "endpoint"), table.get("endpoint"))
        for name, table in (config.get("tables") or {}).items()
        if isinstance(table, dict)
    ]
    return [found for base, tree in trees for found in secret_paths(tree, base)]


def masked(spec: SourceSpec) -> SourceSpec:
    """``spec`` as it may be shown: connection and REST API secrets masked."""
    data = spec.model_dump(mode="json", exclude_none=True)
    if spec.connection:
        data["connection"] = mask_url(spec.connection)
    for path, _ in _rest_secrets(data):
        set_path(data, path, MASK)
    client = data.get("client")
    if isinstance(client, dict) and isinstance(client.get("base_url"), str):
        client["base_url"] = mask_url(client["base_url"])
    return SourceSpec.model_validate(data)


def unmask_rest(data: dict[str, Any], current: SourceSpec) -> dict[str, Any]:
    """``data`` whose masked REST API secrets take the stored values.

    Raises:
        SpecError: a mask was sent with another base_url (a stored secret is never sent
            to a new host), or where nothing is stored.
    """
    masked_paths = [path for path, value in _rest_secrets(data) if value == MASK]
    if not masked_paths:
        return data
    stored = current.model_dump(mode="json", exclude_none=True)
    new_base = str((data.get("client") or {}).get("base_url") or "")
    old_base = str((stored.get("client") or {}).get("base_url") or "")
    if urlsplit(new_base)[:2] != urlsplit(old_base)[:2]:
        raise SpecError("client: a secret is the mask but base_url changed; send the secret itself")
    restored = copy.deepcopy(data)
    for path in masked_paths:
        try:
            set_path(restored, path, get_path(stored, path))
        except (KeyError, IndexError, TypeError):
            dotted = ".".join(str(part) for part in path)
            raise SpecError(f"{dotted} is the mask but no such secret is stored") from None
    return restored


def _split(spec: SourceSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the spec without secrets, the secrets: connection URL and REST API values)."""
    config = spec.model_dump(mode="json", exclude_none=True, exclude={"connection"})
    secrets: dict[str, Any] = {"connection": spec.connection} if spec.connection else {}
    values = _rest_secrets(config)
    for path, _ in values:
        parent = get_path(config, path[:-1])
        del parent[path[-1]]
    if values:
        secrets["values"] = [[list(path), value] for path, value in values]
    return config, secrets


def _joined(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The whole spec again from ``_split``'s two halves."""
    data = copy.deepcopy(config)
    if "connection" in secrets:
        data["connection"] = secrets["connection"]
    for path, value in secrets.get("values", []):
        set_path(data, tuple(path), value)
    if "auth" in secrets:  # stored before secrets were kept by path
        client = data.setdefault("client", {})
        client["auth"] = {**(client.get("auth") or {}), **secrets["auth"]}
    return data


def _spec_of(row: StoredSource, box: SecretBox, project_dir: FilePath) -> SourceSpec:
    secrets = (
        json.loads(box.decrypt(row.secrets, f"the credentials of source {row.name!r}"))
        if row.secrets
        else {}
    )
    try:
        spec = SourceSpec.model_validate(_joined(row.config, secrets))
    except ValidationError as exc:  # stored by an older version with other rules
        problems = "; ".join(message for _, message in validation_messages(exc, camel))
        raise SpecError(f"stored source {row.name!r} is no longer valid: {problems}") from None
    return resolve_paths_of(spec, project_dir)


def resolve_paths_of(spec: SourceSpec, folder: FilePath) -> SourceSpec:
    from ingest.spec import SourcesFile

    return resolve_paths(SourcesFile(sources={"s": spec}), folder).sources["s"]


def store_ready(
    session: Session, settings: Settings, table: str = StoredSource.__tablename__
) -> bool:
    """Whether the store holds ``table`` (``headwater init`` migrates it)."""
    store = sqlite_path(settings.metadata_url)
    if store is not None and not store.exists():
        return False
    return inspect(session.connection()).has_table(table)


def stored_sources(
    session: Session, settings: Settings, broken: dict[str, str] | None = None
) -> dict[str, Declared]:
    """Every stored source that decrypts and validates; the others are logged, and their
    problems put in ``broken``: one bad row never hides the rest."""
    if not store_ready(session, settings):
        return {}
    rows = list(session.scalars(select(StoredSource).order_by(StoredSource.name)))
    if not rows:
        return {}
    box = SecretBox.from_settings(settings)
    out = {}
    for row in rows:
        try:
            spec = _spec_of(row, box, settings.project_dir)
        except (SpecError, SecretsError) as exc:
            logger.warning("stored source %r is unusable: %s", row.name, exc.message)
            if broken is not None:
                broken[row.name] = exc.message
            continue
        out[row.name] = Declared(
            row.name, spec, "store", as_utc(row.created_at), as_utc(row.updated_at)
        )
    return out


def file_sources(settings: Settings) -> dict[str, Declared]:
    """The sources of sources.yml, parsed once per version of the file and environment
    (every API request and load asks for them)."""
    import os

    env = {**os.environ, "HEADWATER_HOME": str(settings.home_dir)}
    path = settings.sources_file
    try:
        stat = path.stat()
    except OSError:
        load_sources(path, env)  # raises the clear "not found" error
        raise
    key = (str(path), stat.st_mtime_ns, stat.st_size, tuple(sorted(env.items())))
    return dict(_parsed_sources_file(key))


@lru_cache(maxsize=4)
def _parsed_sources_file(key: tuple[Any, ...]) -> tuple[tuple[str, Declared], ...]:
    path, _, _, env = key
    declared = load_sources(FilePath(path), dict(env))
    return tuple((name, Declared(name, spec, "file")) for name, spec in declared.sources.items())


def all_sources(settings: Settings, session: Session | None = None) -> dict[str, Declared]:
    """Every source: the file's first, in their order, then the stored ones by name.

    Raises:
        SpecError: the file is invalid, or a name is declared in both homes.
    """
    from_file = file_sources(settings)
    if session is None:
        store = sqlite_path(settings.metadata_url)
        if store is not None and not store.exists():
            return from_file
        with session_scope(settings.metadata_url) as own:
            stored = stored_sources(own, settings)
    else:
        stored = stored_sources(session, settings)
    both = sorted(set(from_file) & set(stored))
    if both:
        raise SpecError(
            "; ".join(
                f"source {name!r} is declared twice: in {settings.sources_file} and in the "
                "metadata store"
                for name in both
            ),
            hint="rename or delete one of them (`headwater source delete NAME` removes the "
            "stored one)",
        )
    return {**from_file, **stored}


def get_source(settings: Settings, session: Session, name: str) -> Declared:
    sources = all_sources(settings, session)
    if name not in sources:
        broken: dict[str, str] = {}
        stored_sources(session, settings, broken)
        if name in broken:
            raise UnreadableSource(broken[name], hint="delete it and store it again")
        raise SourceNotFound(f"no source named {name!r}")
    return sources[name]


def _row(session: Session, name: str) -> StoredSource | None:
    return session.scalar(select(StoredSource).where(StoredSource.name == name))


def create_source(
    session: Session, settings: Settings, name: str, data: dict[str, Any]
) -> Declared:
    """Validate and store a new source (its connection encrypted).

    Raises:
        SpecError: invalid fields.  SourceExists: the name is taken, in either home.
        UnsafeTarget: it would read somewhere refused.
    """
    from ingest.targets import check_targets

    spec = validate_source(name, data)
    sources = all_sources(settings, session)
    if name in sources:
        where = "sources.yml" if sources[name].origin == "file" else "the metadata store"
        raise SourceExists(f"a source named {name!r} already exists (in {where})")
    check_targets(settings, name, resolve_paths_of(spec, settings.project_dir))
    _check_target_named(spec, sources)
    config, secrets = _split(spec)
    box = SecretBox.from_settings(settings)
    row = StoredSource(
        name=name,
        kind=spec.kind,
        config=config,
        secrets=box.encrypt(json.dumps(secrets)) if secrets else None,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # created at the same moment by another request
        raise SourceExists(f"a source named {name!r} already exists") from None
    return Declared(name, spec, "store", as_utc(row.created_at), as_utc(row.updated_at))


def update_source(
    session: Session, settings: Settings, name: str, changes: dict[str, Any]
) -> tuple[Declared, Declared]:
    """Apply ``changes`` (top-level fields; those given replace) to a stored source.

    Returns (before, after). A masked connection keeps the stored secrets.
    """
    from ingest.targets import check_targets

    current = get_source(settings, session, name)
    if current.origin == "file":
        raise ReadOnlySource(
            f"source {name!r} is declared in {settings.sources_file.name}: change it there"
        )
    row = _row(session, name)
    if row is None:  # deleted since it was read
        raise SourceNotFound(f"no source named {name!r}")
    # From what is stored (paths as written, not resolved), secrets decrypted.
    box = SecretBox.from_settings(settings)
    data = _joined(
        row.config,
        json.loads(box.decrypt(row.secrets, f"the credentials of source {name!r}"))
        if row.secrets
        else {},
    )
    data.update(changes)
    if isinstance(data.get("connection"), str):
        data["connection"] = unmask(data["connection"], current.spec.connection)
    data = unmask_rest(data, current.spec)
    if data.get("kind") != current.spec.kind:
        raise SpecError(
            f"kind: a source keeps its kind ({current.spec.kind}); create a new source instead"
        )
    spec = validate_source(name, data)
    check_targets(settings, name, resolve_paths_of(spec, settings.project_dir))
    _check_target_named(spec, all_sources(settings, session))
    config, secrets = _split(spec)
    box = SecretBox.from_settings(settings)
    row.config = config
    row.secrets = box.encrypt(json.dumps(secrets)) if secrets else None
    session.flush()
    after = Declared(name, spec, "store", current.created_at, as_utc(row.updated_at))
    return current, after


def _check_target_named(spec: SourceSpec, sources: dict[str, Declared]) -> None:
    """Raises SpecError unless the source's target is the warehouse or a destination."""
    from ingest.destinations import WAREHOUSE

    if spec.target is None or spec.target == WAREHOUSE:
        return
    found = sources.get(spec.target)
    if found is None or not found.spec.destination:
        known = [WAREHOUSE] + [n for n, d in sources.items() if d.spec.destination]
        raise SpecError(
            f"target: {spec.target!r} is not a destination (destinations: {', '.join(known)})"
        )


def delete_source(session: Session, settings: Settings, name: str) -> Declared | None:
    """Delete stored source ``name``; what it was (None when it could not be read any more:
    a source whose key was lost can still be removed)."""
    if name in file_sources(settings):
        raise ReadOnlySource(
            f"source {name!r} is declared in {settings.sources_file.name}: remove it there"
        )
    if _row(session, name) is None:
        raise SourceNotFound(f"no source named {name!r}")
    users = [n for n, d in all_sources(settings, session).items() if d.spec.target == name]
    if users:
        raise DestinationInUse(
            f"destination {name!r} is the target of {', '.join(sorted(users))}",
            hint="point those sources at another target first",
        )
    current = stored_sources(session, settings, {}).get(name)
    session.execute(delete(StoredSource).where(StoredSource.name == name))
    return current
