"""The declarative source spec: a YAML file of sources, validated with precise errors.

```yaml
sources:
  shop:
    kind: database
    connection: sqlite:///${HEADWATER_HOME}/sample/shop.db
    tables:
      orders: {primary_key: id, cursor: updated_at, write_disposition: merge}
  web:
    kind: file
    tables:
      events: {path: "${HEADWATER_HOME}/sample/events.jsonl", primary_key: event_id}
```

``${VAR}`` and ``${VAR:-default}`` are read from the environment when the file
is loaded, so credentials stay out of the file. Every error names the file, the
line and what is wrong.
"""

from __future__ import annotations

import codecs
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ingest.errors import IngestError, SpecError
from ingest.masks import secret_paths

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Innermost reference first, so a default may itself hold a reference.
ENV_NAME = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
FILE_FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".xlsx": "excel",
}

WriteDisposition = Literal["append", "replace", "merge"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableSpec(_Strict):
    """One table (database) or one file (file source), loaded as one raw table."""

    write_disposition: WriteDisposition | None = Field(
        default=None,
        description="Unset: merge on the primary key (declared, or reflected from a "
        "database), else replace. append only when asked.",
    )
    primary_key: tuple[str, ...] = ()
    cursor: str | None = Field(default=None, description="Incremental cursor column.")
    lag: float | None = Field(default=None, ge=0, description="Re-read this much of the cursor.")
    path: str | None = None
    format: Literal["csv", "jsonl", "json", "excel"] | None = None
    sheet: str | None = None
    delimiter: str | None = Field(default=None, min_length=1, max_length=1, description="CSV.")
    encoding: str | None = Field(default=None, description="CSV text encoding (utf-8 if unset).")
    header: bool | None = Field(default=None, description="CSV: whether row 1 names columns.")
    null_values: tuple[str, ...] | None = Field(
        default=None, description="CSV: texts read as NULL (the empty field and NULL, NA…)."
    )
    source_table: str | None = Field(default=None, description="Name in the source, if different.")
    query: str | None = Field(
        default=None,
        description="Database: one SELECT (in the source's SQL dialect) whose rows are the table.",
    )
    columns: tuple[str, ...] | None = Field(
        default=None, description="Database: only these columns of the source table."
    )
    endpoint: dict[str, Any] | str | None = Field(
        default=None,
        description="REST API: dlt's endpoint configuration (path, params, data_selector, "
        "paginator…), or just the path. Default: the table's name as the path.",
    )
    cursor_param: str | None = Field(
        default=None,
        description="REST API: the query parameter that receives the last cursor value.",
    )

    @field_validator("primary_key", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def resolved(
        self, table: str, reflected_key: tuple[str, ...] = ()
    ) -> tuple[WriteDisposition, tuple[str, ...]]:
        """The write disposition and primary key a load uses: defaults that never duplicate.

        Raises:
            IngestError: an incremental cursor with no key and no disposition, which
                would replace the table with only the newest rows.
        """
        key = self.primary_key or reflected_key
        if self.write_disposition is not None:
            return self.write_disposition, key
        if key:
            return "merge", key
        if self.cursor:
            raise IngestError(
                f"table {table!r} has a cursor but no primary key, so its rows cannot be "
                "merged and replacing would keep only the newest ones",
                hint="declare primary_key, or set write_disposition: append",
            )
        return "replace", ()

    def csv_options_set(self) -> bool:
        return any(
            value is not None
            for value in (self.delimiter, self.encoding, self.header, self.null_values)
        )

    @field_validator("columns", mode="before")
    @classmethod
    def _one_or_many_columns(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("null_values", mode="before")
    @classmethod
    def _one_or_many_nulls(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> TableSpec:
        if self.write_disposition == "merge" and not self.primary_key:
            raise ValueError("write_disposition 'merge' needs a primary_key")
        if self.lag is not None and self.cursor is None:
            raise ValueError("'lag' needs a 'cursor'")
        if self.cursor_param is not None and self.cursor is None:
            raise ValueError("'cursor_param' needs a 'cursor'")
        if self.query is not None and (self.source_table is not None or self.columns):
            raise ValueError(
                "a 'query' names its own tables and columns: drop source_table/columns"
            )
        if self.columns is not None and not self.columns:
            raise ValueError("'columns' lists no column")
        return self


class SourceSpec(_Strict):
    """A declared source: where the data lives and which tables to load."""

    kind: Literal["database", "file", "mongodb", "rest_api"]
    description: str | None = None
    schema_contract: Literal["evolve", "freeze", "discard_rows", "discard_value"] | None = Field(
        default=None,
        description="What a load does with new tables, columns and types: evolve (take them "
        "in, the default), freeze (fail the load), discard_rows, discard_value.",
    )
    connection: str | None = None
    database: str | None = Field(
        default=None, description="MongoDB: the database (default: the one in the URL)."
    )
    client: dict[str, Any] | None = Field(
        default=None,
        description="REST API: dlt's client configuration (base_url, auth, paginator, headers).",
    )
    resource_defaults: dict[str, Any] | None = Field(
        default=None, description="REST API: dlt's defaults for every endpoint."
    )
    destination: bool = Field(
        default=False,
        description="A PostgreSQL or DuckDB connection that sources may name as their "
        "target; it is written to, never loaded from.",
    )
    target: str | None = Field(
        default=None,
        description="Where the source loads: 'warehouse' (the default) or the name of a "
        "connection marked 'destination: true'.",
    )
    tables: dict[str, TableSpec] = Field(
        default_factory=dict,
        description="The tables to load. Left out (database, mongodb): every table or "
        "collection the source has, found when it loads.",
    )

    @field_validator("tables", mode="before")
    @classmethod
    def _empty_means_defaults(cls, tables: Any) -> Any:
        """``orders:`` with nothing after it loads the table with every default."""
        if isinstance(tables, dict):
            return {name: {} if entry is None else entry for name, entry in tables.items()}
        return tables

    @field_validator("tables")
    @classmethod
    def _table_names(cls, tables: dict[str, TableSpec]) -> dict[str, TableSpec]:
        for name in tables:
            if not NAME.match(name):
                hint = ""
                lowered = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")
                if lowered and NAME.match(lowered):
                    hint = (
                        f"; to load it, name it in lower case and map the original: "
                        f"{lowered}: {{source_table: {name}}}"
                    )
                raise ValueError(
                    f"table name {name!r} must be lower case letters, digits and underscores{hint}"
                )
        return tables

    @property
    def whole(self) -> bool:
        """Every table of the source, found when it loads (no ``tables`` declared)."""
        return not self.tables and not self.destination

    @field_validator("target")
    @classmethod
    def _target_name(cls, target: str | None) -> str | None:
        if target is not None and not NAME.match(target):
            raise ValueError("must name a destination: 'warehouse' or a connection's name")
        return target

    @model_validator(mode="after")
    def _kind_fields(self) -> SourceSpec:
        if self.destination:
            self._destination_fields()
            return self
        if self.connection and _backend(self.connection) == "duckdb":
            raise ValueError(
                "a DuckDB connection can only be a destination: add 'destination: true' and "
                "name it as the 'target' of the sources that load into it"
            )
        if self.whole and self.kind not in ("database", "mongodb"):
            raise ValueError(
                f"a {self.kind!r} source needs 'tables' (only database and mongodb sources "
                "may leave them out to load everything)"
            )
        rest_only = [
            f"table {name!r}: {field}"
            for name, table in self.tables.items()
            for field in ("endpoint", "cursor_param")
            if getattr(table, field) is not None
        ] + [field for field in ("client", "resource_defaults") if getattr(self, field) is not None]
        database_only = [
            f"table {name!r}: {field}"
            for name, table in self.tables.items()
            for field in ("query", "columns")
            if getattr(table, field) is not None
        ]
        if self.kind != "database" and database_only:
            raise ValueError(f"{', '.join(database_only)}: belong(s) to 'database' sources")
        if self.kind != "rest_api" and rest_only:
            raise ValueError(f"{', '.join(rest_only)}: belong(s) to 'rest_api' sources")
        if self.kind == "rest_api":
            from ingest.sources.rest_api import rest_problems

            problems = rest_problems(self)
            if problems:
                raise ValueError("; ".join(problems))
            return self
        if self.kind == "mongodb":
            if not self.connection or not re.match(r"^mongodb(\+srv)?://", self.connection):
                raise ValueError(
                    "a 'mongodb' source needs a 'connection' URL: "
                    "mongodb://user:${PASSWORD}@host:27017/database"
                )
            self._no_file_options()
        elif self.database is not None:
            raise ValueError("'database' belongs to 'mongodb' sources")
        if self.kind == "database":
            if not self.connection:
                raise ValueError("a 'database' source needs a 'connection' URL")
            try:
                make_url(self.connection)
            except ArgumentError:
                raise ValueError(
                    "the connection is not a database URL (e.g. "
                    "postgresql://user:${PASSWORD}@host:5432/db)"
                ) from None
            self._no_file_options()
            from ingest.queries import query_problem

            for name, table in self.tables.items():
                problem = query_problem(table.query, self.connection) if table.query else None
                if problem:
                    raise ValueError(f"table {name!r}: query: {problem}")
        elif self.kind == "file":
            if self.connection:
                raise ValueError("a 'file' source takes no 'connection'; give each table a 'path'")
            for name, table in self.tables.items():
                if not table.path:
                    raise ValueError(f"table {name!r} needs a 'path'")
                if table.format is None and Path(table.path).suffix.lower() not in FILE_FORMATS:
                    raise ValueError(
                        f"table {name!r}: cannot tell the format of {table.path!r}; "
                        f"set 'format' to one of csv, jsonl, json, excel"
                    )
                if table.csv_options_set() and self.file_format(name) != "csv":
                    raise ValueError(
                        f"table {name!r}: delimiter, encoding, header and null_values are CSV "
                        "options"
                    )
                if table.encoding is not None:
                    try:
                        codecs.lookup(table.encoding)
                    except LookupError:
                        raise ValueError(
                            f"table {name!r}: unknown encoding {table.encoding!r}"
                        ) from None
        return self

    def _destination_fields(self) -> None:
        given = [
            field
            for field in ("tables", "target", "schema_contract", "database", "client")
            if getattr(self, field)
        ]
        if self.kind != "database" or given:
            raise ValueError(
                "a destination is a 'database' connection alone: "
                f"{', '.join(given) or 'kind ' + repr(self.kind)} belong(s) to sources"
            )
        backend = _backend(self.connection or "")
        if backend not in ("postgresql", "duckdb"):
            raise ValueError(
                "a destination's connection is a PostgreSQL URL "
                "(postgresql://user:${PASSWORD}@host:5432/db) or a DuckDB file "
                "(duckdb:////absolute/path/file.duckdb)"
            )
        if backend == "duckdb":
            database = make_url(self.connection or "").database or ""
            if not database.startswith("/"):
                raise ValueError(
                    "a DuckDB destination names its file by an absolute path: "
                    "duckdb:////absolute/path/file.duckdb (or duckdb:///${HEADWATER_HOME}/…)"
                )

    def _no_file_options(self) -> None:
        for name, table in self.tables.items():
            if table.path or table.sheet or table.format or table.csv_options_set():
                raise ValueError(
                    f"table {name!r}: path, sheet, format and CSV options belong to 'file' sources"
                )

    def file_format(self, table: str) -> str:
        spec = self.tables[table]
        if spec.format:
            return spec.format
        return FILE_FORMATS[Path(spec.path or "").suffix.lower()]


def _backend(connection: str) -> str | None:
    try:
        return make_url(connection).get_backend_name()
    except (ArgumentError, ValueError):
        return None


class SourcesFile(_Strict):
    sources: dict[str, SourceSpec] = Field(min_length=1)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, sources: dict[str, SourceSpec]) -> dict[str, SourceSpec]:
        for name in sources:
            if not NAME.match(name):
                raise ValueError(
                    f"source name {name!r} must be lower case letters, digits and underscores"
                )
        return sources


def _duplicate_keys(
    node: yaml.Node, path: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], str, int, int]]:
    """(mapping path, key, first line, repeated line) of every key given twice.

    YAML loaders keep the last value silently; a sources file that says the same
    thing twice is a mistake to show, not to guess.
    """
    found = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            line = key.start_mark.line + 1
            if key.value in seen:
                found.append((path or ("(top)",), key.value, seen[key.value], line))
            else:
                seen[key.value] = line
            found += _duplicate_keys(value, (*path, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, (*path, i))
    return found


def _line_index(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map every path in the document to the 1-based line where its value starts."""
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = _line_index(value, (*path, key.value))
            sub[(*path, key.value)] = key.start_mark.line + 1
            lines.update(sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_index(item, (*path, i)))
    return lines


def _interpolate(
    value: Any,
    env: Mapping[str, str],
    path: tuple[Any, ...],
    lines: dict[tuple[Any, ...], int],
    origin: str,
) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in strings; a missing one names its line."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, k), lines, origin) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, i), lines, origin) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def missing(name: str) -> str:
        raise SpecError(
            f"{origin}:{lines.get(path, 1)}: {'.'.join(map(str, path))}: "
            f"environment variable {name} is not set",
            hint=f"export {name}=...",
        )

    return _expand(value, env, missing)


def _expand(text: str, env: Mapping[str, str], missing: Callable[[str], str]) -> str:
    """``text`` with ``${VAR}`` and ``${VAR:-default}`` replaced, in one pass.

    A default may hold references itself (``${URL:-sqlite:///${HOME}/x.db}``). A
    value taken from the environment is inserted as it is, never expanded again:
    a password containing ``${`` stays that password. ``$`` not followed by a
    reference is kept.
    """
    out, _ = _expand_until(text, 0, env, missing, stop=None)
    return out


def _expand_until(
    text: str,
    start: int,
    env: Mapping[str, str],
    missing: Callable[[str], str] | None,
    stop: str | None,
) -> tuple[str, int]:
    """Expand from ``start`` up to ``stop`` (or the end); (result, index after it).

    ``missing`` is None while skipping a default that is not used: nothing is
    looked up there, so its unset variables are no error.
    """
    parts: list[str] = []
    i = start
    while i < len(text):
        if stop is not None and text[i] == stop:
            return "".join(parts), i + 1
        match = ENV_NAME.match(text, i) if text.startswith("${", i) else None
        if match is None:
            parts.append(text[i])
            i += 1
            continue
        name, i = match.group(1), match.end()
        if text.startswith("}", i):
            i += 1
            if missing is not None:
                parts.append(env[name] if name in env else missing(name))
            continue
        if text.startswith(":-", i):
            use_default = missing is not None and name not in env
            default, i = _expand_until(text, i + 2, env, missing if use_default else None, stop="}")
            if missing is not None:
                parts.append(default if use_default else env[name])
            continue
        parts.append(match.group(0))  # "${NAME" followed by something else: literal
    return "".join(parts), i


def parse_source(
    text: str, name: str, origin: str, env: Mapping[str, str] | None = None
) -> SourceSpec:
    """One source's fields (a sources.yml entry without its name), validated the same way.

    For a file read once to store a source encrypted, never one kept in Git: a
    password written out is accepted.
    """
    return parse_sources(text, origin, env, clear_passwords=True, one_source=name).sources[name]


def parse_sources(
    text: str,
    origin: str = "<sources>",
    env: Mapping[str, str] | None = None,
    *,
    clear_passwords: bool = False,
    one_source: str | None = None,
) -> SourcesFile:
    """Validate a sources document. Raises SpecError naming the file and line.

    A password written out in a connection is refused unless ``clear_passwords``.
    With ``one_source``, the document holds only that source's fields.
    """
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"{origin}{line}: not valid YAML: {problem}") from None
    if root is None:
        raise SpecError(
            f"{origin}: the file is empty; declare at least one source under 'sources:'"
        )
    duplicates = _duplicate_keys(root)
    if duplicates:
        raise SpecError(
            "\n".join(
                f"{origin}:{line}: {'.'.join(map(str, path))}: duplicate key {key!r} "
                f"(first at line {first}); keep one"
                for path, key, first, line in duplicates
            )
        )
    lines = _line_index(root)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        expected = "the fields of one source" if one_source else "a mapping with a 'sources' key"
        raise SpecError(f"{origin}:1: expected {expected}")
    if one_source is not None:
        data = {"sources": {one_source: data}}
        lines = {("sources", one_source, *path): line for path, line in lines.items()}
    clear = [] if clear_passwords else _clear_text_passwords(data)
    if clear:
        raise SpecError(
            "\n".join(
                f"{origin}:{lines.get(path, 1)}: {'.'.join(map(str, path))}: "
                f"{'the connection holds ' if path[-1] == 'connection' else ''}a clear-text "
                "secret; a sources file is reviewed and shared"
                for path in clear
            ),
            hint="write ${NAME_PASSWORD} in its place and set that variable in the "
            "environment (or store the source through the API, which encrypts it)",
        )
    # Interpolate first, so that validation sees the values the loads will use.
    data = _interpolate(data, os.environ if env is None else env, (), lines, origin)
    try:
        return SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            "\n".join(
                f"{origin}:{_deepest_line(lines, loc)}: {message}"
                for loc, message in validation_messages(exc)
            )
        ) from None


def _deepest_line(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    """The line of the deepest part of ``loc`` that exists in the document."""
    return next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), 1)


def validation_messages(
    exc: ValidationError, rename: Callable[[str], str] = str
) -> list[tuple[tuple[Any, ...], str]]:
    """(location, "dotted.path: what is wrong") for each error, in the user's words.

    ``rename`` spells field names as the user wrote them (camelCase on the wire);
    no internal class name ever appears.
    """
    out = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        dotted = ".".join(rename(part) if isinstance(part, str) else str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field (check the spelling)"
        elif error["type"] in ("model_type", "model_attributes_type", "dict_type"):
            message = "expected a mapping of settings, e.g. {primary_key: id}"
        elif error["type"] == "literal_error":
            message = f"{message} (got {error['input']!r})"
        out.append((loc, f"{dotted}: {message}" if dotted else message))
    return out


# scheme://user:password@ — the password is what lies between the first ':' after
# '//' and the last '@' before the host.
_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:(?P<password>.*)@[^@]*$")
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-)?\}")


def _clear_text_passwords(data: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Paths of secrets written out rather than a ``${VAR}``: connection passwords and
    a REST API's ``client.auth`` secrets."""
    sources = data.get("sources")
    if not isinstance(sources, dict):
        return []
    found: list[tuple[Any, ...]] = []
    for name, source in sources.items():
        if not isinstance(source, dict):
            continue
        connection = source.get("connection")
        if isinstance(connection, str):
            match = _URL_PASSWORD.match(connection)
            if match and _REFERENCE.sub("", match.group("password")):
                found.append(("sources", name, "connection"))
        trees: list[tuple[tuple[Any, ...], Any]] = [
            (("sources", name, "client"), source.get("client")),
            (("sources", name, "resource_defaults"), source.get("resource_defaults")),
        ]
        tables = source.get("tables")
        if isinstance(tables, dict):
            trees += [
                (("sources", name, "tables", table, "endpoint"), entry.get("endpoint"))
                for table, entry in tables.items()
                if isinstance(entry, dict)
            ]
        found += [
            path
            for base, tree in trees
            for path, value in secret_paths(tree, base)
            if _REFERENCE.sub("", value)
        ]
    return found


def load_sources(path: Path, env: Mapping[str, str] | None = None) -> SourcesFile:
    """Read and validate the sources file at ``path``.

    Relative file paths are resolved against the folder of the sources file, never
    against the working directory: the same file loads the same data from anywhere.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"{path}: sources file not found", hint="set HEADWATER_SOURCES_FILE or create it"
        ) from None
    return resolve_paths(parse_sources(text, str(path), env), path.resolve().parent)


def resolve_paths(spec: SourcesFile, folder: Path) -> SourcesFile:
    """``spec`` with every file path absolute: ``~`` expanded, relative ones under ``folder``."""
    sources = {}
    for name, source in spec.sources.items():
        tables = {
            table: entry.model_copy(update={"path": str(folder / Path(entry.path).expanduser())})
            if entry.path
            else entry
            for table, entry in source.tables.items()
        }
        sources[name] = source.model_copy(update={"tables": tables})
    return spec.model_copy(update={"sources": sources})
