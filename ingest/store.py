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
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError
from sqlalchemy import delete, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from headwater.db import as_utc, session_scope, sqlite_path
from headwater.secrets import SecretBox
from ingest.errors import IngestError, SourceNotFound, SpecError
from ingest.models import StoredSource
from ingest.spec import (
    NAME,
    SECRET_AUTH_FIELDS,
    SourceSpec,
    load_sources,
    resolve_paths,
    validation_messages,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from headwater.settings import Settings

MASK = "***"
SENSITIVE_QUERY = re.compile(r"pass|secret|token|key|auth|credential", re.IGNORECASE)
Origin = Literal["file", "store"]


class SourceExists(IngestError):
    """A source of that name is already declared (in the file or the store)."""


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


def mask_url(url: str) -> str:
    """``url`` with its password and secret-looking query values replaced by the mask."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return MASK
    query = {
        key: MASK if SENSITIVE_QUERY.search(key) else value for key, value in parsed.query.items()
    }
    # hide_password writes the password as the mask; the mask in the query is unescaped.
    rendered = parsed.set(query=query).render_as_string(hide_password=True)
    return rendered.replace("%2A%2A%2A", MASK)


def unmask(new: str, old: str | None) -> str:
    """``new``, with masked parts taken from ``old``, the stored URL.

    Raises:
        SpecError: the mask was sent for a URL whose host, port or user changed
            (the stored password is never sent somewhere new), or there is none.
    """
    try:
        parsed = make_url(new)
    except ArgumentError:
        return new  # reported by validation, without quoting it
    masked_query = [key for key, value in parsed.query.items() if value == MASK]
    if parsed.password != MASK and not masked_query:
        return new
    previous = make_url(old) if old else None
    if previous is None or (parsed.host, parsed.port, parsed.username) != (
        previous.host,
        previous.port,
        previous.username,
    ):
        raise SpecError(
            "connection: the password is the mask but the host, port or user changed; "
            "send the password itself"
        )
    if parsed.password == MASK:
        parsed = parsed.set(password=previous.password)
    query = dict(parsed.query)
    for key in masked_query:
        if key not in previous.query:
            raise SpecError(f"connection: parameter {key!r} is the mask but none is stored")
        query[key] = previous.query[key]
    return parsed.set(query=query).render_as_string(hide_password=False)


def masked(spec: SourceSpec) -> SourceSpec:
    """``spec`` as it may be shown: the connection's and the REST API auth's secrets masked."""
    update: dict[str, Any] = {}
    if spec.connection:
        update["connection"] = mask_url(spec.connection)
    auth = (spec.client or {}).get("auth")
    if isinstance(auth, dict):
        shown = {key: MASK if key in SECRET_AUTH_FIELDS else value for key, value in auth.items()}
        update["client"] = {**(spec.client or {}), "auth": shown}
    return spec.model_copy(update=update) if update else spec


def unmask_auth(new: dict[str, Any] | None, old: dict[str, Any] | None) -> dict[str, Any] | None:
    """A REST API ``client`` whose masked auth fields take the stored values.

    Raises:
        SpecError: the mask was sent with another base_url, or for a field never stored.
    """
    auth = (new or {}).get("auth")
    if not isinstance(auth, dict) or MASK not in auth.values():
        return new
    previous = (old or {}).get("auth") or {}
    if (new or {}).get("base_url") != (old or {}).get("base_url"):
        raise SpecError(
            "client.auth: a secret is the mask but base_url changed; send the secret itself"
        )
    restored = dict(auth)
    for key, value in auth.items():
        if value == MASK:
            if key not in previous:
                raise SpecError(f"client.auth.{key} is the mask but none is stored")
            restored[key] = previous[key]
    return {**(new or {}), "auth": restored}


def _split(spec: SourceSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the spec without secrets, the secrets: connection URL and REST API auth fields)."""
    config = spec.model_dump(mode="json", exclude_none=True, exclude={"connection"})
    secrets: dict[str, Any] = {"connection": spec.connection} if spec.connection else {}
    auth = (config.get("client") or {}).get("auth")
    if isinstance(auth, dict):
        hidden = {field: auth.pop(field) for field in SECRET_AUTH_FIELDS if field in auth}
        if hidden:
            secrets["auth"] = hidden
    return config, secrets


def _joined(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The whole spec again from ``_split``'s two halves."""
    data = copy.deepcopy(config)
    if "connection" in secrets:
        data["connection"] = secrets["connection"]
    if "auth" in secrets:
        client = data.setdefault("client", {})
        client["auth"] = {**(client.get("auth") or {}), **secrets["auth"]}
    return data


def _spec_of(row: StoredSource, box: SecretBox, project_dir: Path) -> SourceSpec:
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


def resolve_paths_of(spec: SourceSpec, folder: Path) -> SourceSpec:
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


def stored_sources(session: Session, settings: Settings) -> dict[str, Declared]:
    if not store_ready(session, settings):
        return {}
    rows = list(session.scalars(select(StoredSource).order_by(StoredSource.name)))
    if not rows:
        return {}
    box = SecretBox.from_settings(settings)
    return {
        row.name: Declared(
            row.name,
            _spec_of(row, box, settings.project_dir),
            "store",
            as_utc(row.created_at),
            as_utc(row.updated_at),
        )
        for row in rows
    }


def file_sources(settings: Settings) -> dict[str, Declared]:
    import os

    env = {**os.environ, "HEADWATER_HOME": str(settings.home_dir)}
    declared = load_sources(settings.sources_file, env)
    return {name: Declared(name, spec, "file") for name, spec in declared.sources.items()}


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
    config, secrets = _split(spec)
    box = SecretBox.from_settings(settings)
    row = StoredSource(
        name=name,
        kind=spec.kind,
        config=config,
        secrets=box.encrypt(json.dumps(secrets)) if secrets else None,
    )
    session.add(row)
    session.flush()
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
    data = current.spec.model_dump(mode="json", exclude_none=True)
    data.update(changes)
    if isinstance(data.get("connection"), str):
        data["connection"] = unmask(data["connection"], current.spec.connection)
    if isinstance(data.get("client"), dict):
        data["client"] = unmask_auth(data["client"], current.spec.client)
    if data.get("kind") != current.spec.kind:
        raise SpecError(
            f"kind: a source keeps its kind ({current.spec.kind}); create a new source instead"
        )
    spec = validate_source(name, data)
    check_targets(settings, name, resolve_paths_of(spec, settings.project_dir))
    config, secrets = _split(spec)
    box = SecretBox.from_settings(settings)
    row.config = config
    row.secrets = box.encrypt(json.dumps(secrets)) if secrets else None
    session.flush()
    after = Declared(name, spec, "store", current.created_at, as_utc(row.updated_at))
    return current, after


def delete_source(session: Session, settings: Settings, name: str) -> Declared:
    current = get_source(settings, session, name)
    if current.origin == "file":
        raise ReadOnlySource(
            f"source {name!r} is declared in {settings.sources_file.name}: remove it there"
        )
    session.execute(delete(StoredSource).where(StoredSource.name == name))
    return current
