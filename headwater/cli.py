"""The ``headwater`` command-line tool.

A face like ``api/``: it imports the domain packages lazily, inside each
command, so ``headwater --help`` answers at once. Errors print one clear line
plus the fix and exit non-zero.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from headwater.errors import HeadwaterError

if TYPE_CHECKING:
    from headwater.settings import Settings
    from ingest.spec import SourceSpec

F = TypeVar("F", bound=Callable[..., Any])


def _settings() -> Settings:
    from headwater.settings import get_settings

    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError, shown as one line per field
        errors = getattr(exc, "errors", None)
        if callable(errors):
            lines = [
                f"HEADWATER_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
                for e in errors()
            ]
            raise HeadwaterError("invalid configuration: " + "; ".join(lines)) from None
        raise


def _fail(message: str, hint: str | None = None) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    if hint:
        click.echo(f"  fix: {hint}", err=True)


def _masked(text: str) -> str:
    """``text`` with the password of any URL in it replaced by ``***``."""
    import re

    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", text)
    return re.sub(r"([?&][^=&\s]*(?:pass|secret|token|key|auth)[^=&\s]*=)[^&\s]+", r"\1***", text)


def _one_line(exc: BaseException) -> str:
    """The first meaningful line of an error's message, passwords masked."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    first = first.removeprefix("(psycopg2.OperationalError) ").removeprefix(
        "(sqlite3.OperationalError) "
    )
    return _masked(first)[:300]


def _explain(exc: Exception) -> tuple[str, str]:
    """A message and a fix for an error no command expected."""
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        return (
            f"the metadata store did not answer: {_one_line(exc)}",
            "check HEADWATER_DATABASE_URL and that the database server is running",
        )
    if isinstance(exc, PermissionError):
        return (f"permission denied: {_one_line(exc)}", "check HEADWATER_HOME's owner and mode")
    if isinstance(exc, OSError):
        return (f"{_one_line(exc)}", "check the paths and addresses in your configuration")
    return (
        f"unexpected {type(exc).__name__}: {_one_line(exc)}",
        "run again with HEADWATER_LOG_LEVEL=DEBUG for the full traceback, and report it",
    )


def handle_errors(func: F) -> F:
    """Every failure is one line plus the fix, and a non-zero exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HeadwaterError as exc:
            _fail(_masked(exc.message), exc.hint)
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("HEADWATER_LOG_LEVEL", "").upper() == "DEBUG":
                raise
            _fail(*_explain(exc))
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def step(title: str) -> Iterator[Any]:
    """Show progress on a terminal; one line per step when not on a terminal (CI).

    Yields the terminal's status line (rich's Status), or None off a terminal.
    """
    started = time.perf_counter()
    if _interactive():
        from rich.console import Console

        console = Console(stderr=True)
        with console.status(f"{title}…") as status:
            yield status
        console.print(f"[green]✓[/green] {title} [dim]({time.perf_counter() - started:.1f}s)[/dim]")
    else:
        yield None
        click.echo(f"✓ {title} ({time.perf_counter() - started:.1f}s)", err=True)


def _rows_progress(status: Any, title: str) -> Any:
    """A dlt collector writing rows read so far, and rows/s, on the status line."""
    from dlt.common.runtime.collector_base import Collector

    class RowsProgress(Collector):
        def __init__(self) -> None:
            self.rows = 0
            self.started = time.perf_counter()
            self.shown = 0.0
            self.phase = ""
            self.reading = False

        def update(
            self,
            name: str,
            inc: int = 1,
            total: int = 0,
            inc_total: int = 0,
            message: str = "",
            label: str = "",
        ) -> None:
            if not self.reading or name == "Resources" or name.startswith("_dlt"):
                return
            self.rows += inc
            now = time.perf_counter()
            if now - self.shown > 0.2:
                self.shown = now
                rate = self.rows / max(now - self.started, 1e-6)
                status.update(f"{title}… read {self.rows:,} rows ({rate:,.0f} rows/s)")

        def _start(self, step: str) -> None:
            # dlt names its steps "Extract <pipeline>", "Normalize …", "Load …".
            self.phase = step.split()[0].lower() if step else ""
            self.reading = self.phase == "extract"
            if self.reading:
                self.rows, self.started = 0, time.perf_counter()
            status.update(f"{title}… {self.phase}")

        def _stop(self) -> None:
            pass

    return RowsProgress()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="headwater")
def main() -> None:
    """Headwater: declarative, SQL-centric data platform (dlt + dbt + Dagster)."""


def initialise(settings: Settings, *, sample: bool = True) -> bool:
    """Create HEADWATER_HOME, migrate the metadata store, create the admin, make sample data.

    Returns True when existing sample data was replaced (a different scale): what
    was loaded from the old sample must then be reloaded in full, which the next
    ingest does (see ``run_ingest``).
    """
    from api.users.services import ensure_admin
    from headwater.migrate import upgrade
    from orchestration.runs import write_instance_config

    settings.secure_home()
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    write_instance_config(settings.dagster_home)
    with step("metadata store migrated"):
        upgrade(settings.metadata_url)
    if settings.warehouse == "postgres":
        from catalog.queries.roles import ensure_query_roles

        try:
            with step("query roles ready on the warehouse"):
                ensure_query_roles(settings)
        except Exception as exc:  # the warehouse may come up later; init stays useful
            click.secho(
                f"warning: query roles not created ({_one_line(exc)}); run `headwater init` "
                "again once the warehouse answers",
                fg="yellow",
                err=True,
            )
    password = ensure_admin(settings)
    if password is not None:
        click.secho(
            f"Admin account created: {settings.admin_email}\n"
            f"  password (shown once, not stored): {password}",
            fg="yellow",
            err=True,
        )
    if not sample:
        return False

    return make_sample(settings, None, settings.sample_scale)


def make_sample(settings: Settings, database_url: str | None, scale: float) -> bool:
    """Generate the sample; True (and a reload marker) when it replaced an older one."""
    from ingest.sample_data import generate

    existed = settings.sample_dir.exists() and any(settings.sample_dir.iterdir())
    with step(f"sample data ready (scale {scale:g})"):
        written = generate(settings.sample_dir, database_url=database_url, scale=scale)
    replaced = existed and written
    if replaced:
        from ingest.reloads import sample_replaced

        sample_replaced(settings)
    return replaced


@main.command()
@click.option("--no-sample", is_flag=True, help="Do not generate the sample data.")
@handle_errors
def init(no_sample: bool) -> None:
    """Create the data directory, migrate the metadata store, create the admin user."""
    settings = _settings()
    if initialise(settings, sample=not no_sample):
        click.secho(
            "The sample data was regenerated: the next `headwater ingest` reloads it in full.",
            fg="yellow",
            err=True,
        )
    click.echo(f"Headwater home: {settings.home_dir}")


@main.command()
@click.option(
    "--database-url",
    help="Fill this database (PostgreSQL, MySQL, SQLite URL) instead of the SQLite file.",
)
@click.option(
    "--scale", type=click.FloatRange(min=0, min_open=True), help="Default: HEADWATER_SAMPLE_SCALE."
)
@handle_errors
def sample(database_url: str | None, scale: float | None) -> None:
    """Generate the sample shop: a database, plus CSV, JSONL and Excel files.

    Files go to HEADWATER_HOME/sample, and the database too unless --database-url says where.
    """
    settings = _settings()
    existed = settings.sample_dir.exists() and any(settings.sample_dir.iterdir())
    replaced = make_sample(settings, database_url, scale or settings.sample_scale)
    click.echo("generated" if replaced or not existed else "already there, unchanged", err=True)


def run_ingest(
    settings: Settings,
    names: list[str] | None = None,
    *,
    tables: list[str] | None = None,
    full_refresh: bool = False,
) -> None:
    """Load sources; those reading a replaced sample are reloaded in full (once)."""
    from ingest.reloads import reload_pending
    from ingest.runner import load_declared, select_sources
    from orchestration.runs import ingest_recorded

    _third_party_logs_to_file(settings)
    declared = load_declared(settings)
    selected = select_sources(declared, names)
    if not names:
        selected = {n: s for n, s in selected.items() if not s.destination}
    for name, source in selected.items():
        refresh = full_refresh or reload_pending(settings, name, source)
        mode = " (full refresh)" if refresh else ""
        into = "" if source.target in (None, "warehouse") else f"{source.target}:"
        title = f"ingest {name} → {into}{settings.raw_schema(name)}{mode}"
        with step(title) as status:
            summary = ingest_recorded(
                settings,
                name,
                source,
                tables,
                full_refresh=full_refresh,
                progress=_rows_progress(status, title) if status is not None else None,
            )
        rows = ", ".join(f"{t}: {n:,}" for t, n in sorted(summary.rows.items())) or "no new rows"
        click.echo(f"  {rows}", err=True)


def _third_party_logs_to_file(settings: Settings) -> None:
    """dlt's log lines and Python warnings go to HEADWATER_HOME/logs/ingest.log: the
    terminal shows Headwater's own summary, the file keeps the details."""
    import logging

    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(settings.logs_dir / "ingest.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.captureWarnings(True)
    for name in ("dlt", "py.warnings"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.FileHandler) for h in logger.handlers):
            # dlt keeps the first handler it finds on its logger instead of adding stderr.
            logger.handlers = [handler]
            logger.propagate = False


def run_transform(settings: Settings, selector: str | None = None) -> None:
    """``dbt build`` as a Dagster run, recorded where the UI shows it."""
    from orchestration.runs import transform_recorded

    with step("dbt build" + (f" --select {selector}" if selector else "")):
        summary = transform_recorded(settings, selector)
    counts = ", ".join(f"{status}: {n}" for status, n in sorted(summary.statuses.items()))
    click.echo(f"  {counts or 'nothing selected'}", err=True)


def run_catalog(settings: Settings) -> None:
    from orchestration.origins import refresh_catalog

    with step("catalog refreshed"):
        summary = refresh_catalog(settings)
    click.echo(
        f"  {summary.datasets} datasets, {summary.columns} columns, {summary.edges} table "
        f"edges, {summary.column_edges} column edges written ({summary.analysed} models "
        f"analysed, {summary.unresolved} with unresolved columns), "
        f"{summary.schema_changes} schema changes",
        err=True,
    )


def run_pipeline(settings: Settings) -> None:
    """Ingest every source, build every model, refresh the catalog."""
    run_ingest(settings)
    run_transform(settings)
    run_catalog(settings)


@main.command()
@click.argument("sources", nargs=-1)
@click.option(
    "--table",
    "tables",
    multiple=True,
    help="Only this table (repeat for more); needs exactly one source.",
)
@click.option("--check", is_flag=True, help="Only test that each source is reachable.")
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Drop what was loaded (and its cursors), load it all again.",
)
@handle_errors
def ingest(
    sources: tuple[str, ...], tables: tuple[str, ...], check: bool, full_refresh: bool
) -> None:
    """Load sources (all, or the ones named) into the warehouse.

    Sources come from sources.yml and from the metadata store (`headwater source list`).
    """
    settings = _settings()
    if tables and len(sources) != 1:
        raise HeadwaterError(
            "--table needs exactly one source", hint="headwater ingest shop --table orders"
        )
    if not check:
        run_ingest(
            settings, list(sources) or None, tables=list(tables) or None, full_refresh=full_refresh
        )
        return
    from ingest.runner import load_declared, select_sources

    for name, source in select_sources(load_declared(settings), list(sources) or None).items():
        _check_source(settings, name, source)


def _check_source(settings: Settings, name: str, source: SourceSpec) -> None:
    from ingest.sources import check_connection, with_tables
    from ingest.targets import check_targets

    check_targets(settings, name, source)
    found = with_tables(source)
    check_connection(found)
    if source.destination:
        click.echo(f"✓ {name}: destination reachable")
    else:
        click.echo(f"✓ {name}: reachable, {len(found.tables)} table(s) found")


@main.group()
def source() -> None:
    """Sources: from sources.yml (reviewed in Git) and stored (credentials encrypted)."""


@source.command("list")
@handle_errors
def source_list() -> None:
    """Every source, where it is declared, its kind and tables."""
    from ingest.masks import mask_url
    from ingest.store import all_sources

    for name, declared in all_sources(_settings()).items():
        home = "sources.yml" if declared.origin == "file" else "stored"
        where = mask_url(declared.spec.connection) if declared.spec.connection else "files"
        spec = declared.spec
        tables = "destination" if spec.destination else ", ".join(spec.tables) or "every table"
        click.echo(f"{name:<20} {declared.spec.kind:<9} {home:<12} {where}  [{tables}]")


@source.command("show")
@click.argument("name")
@handle_errors
def source_show(name: str) -> None:
    """A source as YAML, its connection masked."""
    import yaml

    from headwater.db import session_scope
    from ingest.store import get_source, masked

    settings = _settings()
    with session_scope(settings.metadata_url) as session:
        declared = get_source(settings, session, name)
    spec = masked(declared.spec).model_dump(mode="json", exclude_none=True)
    for table in spec["tables"].values():
        if table.get("primary_key") == []:
            del table["primary_key"]
    origin = settings.sources_file if declared.origin == "file" else "the metadata store"
    click.echo(f"# {name}: declared in {origin}")
    click.echo(yaml.safe_dump({name: spec}, sort_keys=False).rstrip())


@source.command("add")
@click.argument("name")
@click.argument("spec_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Replace a stored source of that name.")
@handle_errors
def source_add(name: str, spec_file: Path, replace: bool) -> None:
    """Store source NAME from SPEC_FILE: YAML with the fields of one sources.yml entry.

    ${VAR} in the file is read from the environment; the connection is stored
    encrypted. Relative paths are read from the project folder.
    """
    from api.sources.services import change_source, store_source
    from headwater.db import session_scope
    from ingest.spec import parse_source
    from ingest.store import all_sources

    settings = _settings()
    spec = parse_source(spec_file.read_text(encoding="utf-8"), name, str(spec_file))
    data = spec.model_dump(mode="json")  # every field: --replace leaves nothing of the old
    with session_scope(_migrated(settings)) as session:
        existing = all_sources(settings, session).get(name)
        if existing is not None and existing.origin == "store" and replace:
            change_source(settings, session, name, data, _cli_actor())
            click.echo(f"replaced {name}")
            return
        store_source(settings, session, name, data, _cli_actor())
    click.echo(f"stored {name} ({spec.kind}, {len(spec.tables)} table(s)); connection encrypted")


@source.command("delete")
@click.argument("name")
@handle_errors
def source_delete(name: str) -> None:
    """Delete stored source NAME (what it loaded stays in the warehouse)."""
    from api.sources.services import delete_source
    from headwater.db import session_scope

    settings = _settings()
    with session_scope(_migrated(settings)) as session:
        delete_source(settings, session, name, _cli_actor())
    click.echo(f"deleted {name}")


@source.command("test")
@click.argument("names", nargs=-1)
@handle_errors
def source_test(names: tuple[str, ...]) -> None:
    """Reach each source (all, or those named) and check its tables and key columns."""
    from ingest.errors import IngestError
    from ingest.runner import load_declared, select_sources

    settings = _settings()
    failed = 0
    for name, declared in select_sources(load_declared(settings), list(names) or None).items():
        try:
            _check_source(settings, name, declared)
        except IngestError as exc:
            failed += 1
            click.secho(f"✗ {name}: {_masked(str(exc))}", fg="red")
    if failed:
        sys.exit(1)


@source.command("state")
@click.argument("name")
@handle_errors
def source_state(name: str) -> None:
    """Each table's cursor, where the next load starts, and its last load."""
    from headwater.db import session_scope
    from ingest.original_names import original_names
    from ingest.state import table_states
    from ingest.store import get_source, store_ready

    settings = _settings()
    with session_scope(settings.metadata_url) as session:
        declared = get_source(settings, session, name)
        ready = store_ready(session, settings)
        states = table_states(settings, session if ready else None, name, declared.spec)
        renamed = (
            original_names(session, name)
            if store_ready(session, settings, "source_columns")
            else {}
        )
    for state in states:
        cursor = (
            f"{state.cursor} > {state.cursor_value}"
            if state.cursor_value
            else (f"{state.cursor} (not started)" if state.cursor else "no cursor (full reads)")
        )
        last = state.last_load
        loaded = (
            f"{last.status} {last.finished_at:%Y-%m-%d %H:%M:%S} UTC, {last.rows:,} rows"
            + (f": {last.error}" if last.error else "")
            if last
            else "never loaded"
        )
        click.echo(f"{state.table:<24} {cursor:<40} {loaded}")
        for column, original in sorted(renamed.get(state.table, {}).items()):
            click.echo(f"  {column} ← {original!r} in the source")


@source.command("reset")
@click.argument("name")
@click.option("--table", "tables", multiple=True, help="Only this table (repeat for more).")
@handle_errors
def source_reset(name: str, tables: tuple[str, ...]) -> None:
    """Forget the cursors of NAME (or of its --table T): the next load reads everything.

    The loaded rows stay; merged tables are deduplicated on their key, appended ones
    get the rows again (`headwater ingest NAME --full-refresh` drops them first).
    """
    from ingest.runner import load_declared, select_sources
    from ingest.state import reset_state

    settings = _settings()
    declared = select_sources(load_declared(settings), [name])[name]
    unknown = [t for t in tables if declared.tables and t not in declared.tables]
    if unknown:
        raise HeadwaterError(
            f"source {name!r} has no table(s) {', '.join(unknown)}",
            hint=f"its tables: {', '.join(declared.tables)}",
        )
    reset = reset_state(settings, name, declared, list(tables) or list(declared.tables))
    if reset:
        click.echo(f"reset {', '.join(reset)}: the next load reads every row")
    else:
        click.echo("nothing to reset: no table of it has a cursor position")


@main.group()
def secrets() -> None:
    """Encryption keys of stored credentials."""


@secrets.command("rotate")
@click.option("--new-key", is_flag=True, help="Generate a new key first (key file only).")
@click.option(
    "--drop-old", is_flag=True, help="Afterwards keep only the newest key (key file only)."
)
@handle_errors
def secrets_rotate(new_key: bool, drop_old: bool) -> None:
    """Re-encrypt every stored secret with the first key; safe to run again.

    With HEADWATER_SECRET_KEYS, put the new key first there, run this, then remove
    the old one. With the key file, --new-key and --drop-old do both steps.
    """
    import api.users.models  # noqa: F401 - every table with secrets is mapped
    import headwater.notify.models  # noqa: F401 - channel URLs
    import ingest.models  # noqa: F401
    from headwater.db import Base, session_scope
    from headwater.secrets import SecretBox, add_key, drop_old_keys, rotate_all

    settings = _settings()
    if new_key:
        add_key(settings)
        click.echo("new key generated and put first", err=True)
    box = SecretBox.from_settings(settings)
    with session_scope(_migrated(settings)) as session:
        count = rotate_all(session, box, Base.metadata)
    click.echo(f"{count} stored secret(s) re-encrypted with the first key")
    if drop_old:
        removed = drop_old_keys(settings)
        click.echo(
            f"{removed} old key(s) removed from {settings.home_dir / 'secret_keys'}", err=True
        )


@main.command()
@click.argument("selector", required=False)
@handle_errors
def transform(selector: str | None) -> None:
    """Run `dbt build` (optionally on a dbt SELECTOR, e.g. `marts` or `+customers`)."""
    run_transform(_settings(), selector)


@main.group()
def catalog() -> None:
    """The metadata catalog."""


@catalog.command("refresh")
@handle_errors
def catalog_refresh() -> None:
    """Rebuild the catalog from the warehouse, dbt and dlt."""
    run_catalog(_settings())


def _param(text: str) -> tuple[str, Any]:
    """``name=value``: the value read as JSON when it is (42, true, null), else as text."""
    import json

    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise click.BadParameter(f"{text!r}: write NAME=VALUE")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return name, value if isinstance(value, str | int | float | bool) or value is None else raw


@main.command()
@click.argument("sql")
@click.option(
    "--format",
    "output",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="json: one JSON object per row (JSON lines).",
)
@click.option("--dialect", type=click.Choice(["duckdb", "postgres"]), help="The SQL's dialect.")
@click.option("--limit", type=click.IntRange(1), help="Most rows (never above the row cap).")
@click.option(
    "--role",
    type=click.Choice(["admin", "user", "viewer"]),
    default="admin",
    show_default=True,
    help="Whose schemas the query may read.",
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A bound value.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Seconds.")
@handle_errors
def query(
    sql: str,
    output: str,
    dialect: str | None,
    limit: int | None,
    role: str,
    params: tuple[str, ...],
    timeout: float | None,
) -> None:
    """Run one read-only SQL query on the warehouse, checked like the API's."""
    import csv
    import json

    from catalog.queries import service
    from headwater.db import session_scope

    settings = _settings()
    values = dict(_param(p) for p in params)
    with session_scope(settings.metadata_url) as session:
        prepared = service.prepare(
            session, settings, sql, role=role, dialect=dialect, limit=limit, params=values
        )
    result = service.run(settings, prepared, values, role=role, timeout=timeout)
    names = [c.name for c in result.columns]
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(result.rows)
    elif output == "json":
        for row in result.rows:
            click.echo(json.dumps(dict(zip(names, row, strict=True)), default=str))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*names)
        for row in result.rows:
            table.add_row(*("∅" if v is None else str(v) for v in row))
        Console().print(table)
    more = " (more rows matched: raise --limit, or narrow the query)" if result.truncated else ""
    click.echo(f"{len(result.rows)} row(s) in {result.elapsed_ms:.0f} ms{more}", err=True)


@main.command()
@click.argument("target", metavar="DATASET[.COLUMN]")
@click.option("--up", "direction", flag_value="up", help="Where it comes from.")
@click.option(
    "--down", "direction", flag_value="down", default=True, help="What it feeds (the default)."
)
@click.option("--depth", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option(
    "--filters/--no-filters",
    default=None,
    help="Include the columns that decide which rows arrive (join keys, where, group by). "
    "Default: with --down (a change to them changes the rows), not with --up.",
)
@handle_errors
def lineage(target: str, direction: str, depth: int, filters: bool | None) -> None:
    """Print the lineage of a dataset, or of one of its columns, as a tree.

    DATASET is ``schema.table`` as the catalog names it (a bare table name when only
    one schema has it); COLUMN, after a last dot, follows that column. Each step
    says how: copy, rename, transform, aggregate or filter.
    """
    from rich.console import Console

    from catalog.graph import column_graph, resolve, table_graph
    from headwater.db import session_scope

    settings = _settings()
    _migrated(settings)
    with session_scope(settings.metadata_url) as session:
        dataset, column = resolve(session, target)
        if column is None:
            graph = table_graph(session, dataset, direction, depth)  # type: ignore[arg-type]
        else:
            graph = column_graph(
                session,
                dataset,
                column,
                direction,  # type: ignore[arg-type]
                depth,
                filters=direction == "down" if filters is None else filters,
            )
    Console().print(lineage_tree(graph), crop=False, overflow="ignore")


def lineage_tree(graph: Any) -> Any:
    """A rich Tree of ``graph``; a part reached twice is printed once."""
    from rich.markup import escape
    from rich.tree import Tree

    names = {node.id: node.name for node in graph.nodes}
    up = graph.direction == "up"
    children: dict[tuple[int, str | None], list[tuple[str, int, str | None]]] = {}
    if graph.column is None and not graph.columns:
        for edge in graph.tables:
            parent, child = (
                (edge.downstream_id, edge.upstream_id)
                if up
                else (edge.upstream_id, edge.downstream_id)
            )
            children.setdefault((parent, None), []).append((edge.origin, child, None))
    for link in graph.columns:
        parent = (
            (link.downstream_id, link.downstream_column)
            if up
            else (link.upstream_id, link.upstream_column)
        )
        child = (
            (link.upstream_id, link.upstream_column)
            if up
            else (link.downstream_id, link.downstream_column)
        )
        children.setdefault(parent, []).append((link.kind, child[0], child[1]))

    def kids(key: tuple[int, str | None]) -> set[tuple[str, int, str | None]]:
        dataset_id, column = key
        if column is None:  # the whole dataset: whatever any of its columns reaches
            return {c for k, cs in children.items() if k[0] == dataset_id for c in cs}
        found = set(children.get(key, []))
        if up:  # the filters that shape every column of the dataset
            found |= set(children.get((dataset_id, None), []))
        return found

    def label(dataset_id: int, column: str | None) -> str:
        name = escape(names.get(dataset_id, str(dataset_id)))
        return f"[bold]{name}[/]" + (f".{escape(column)}" if column else "")

    root_key = (graph.root.id, graph.column)
    tree = Tree(label(*root_key))
    shown: set[tuple[int, str | None]] = {root_key}

    def grow(branch: Any, key: tuple[int, str | None]) -> None:
        for kind, dataset_id, column in sorted(
            kids(key), key=lambda c: (names.get(c[1], ""), c[2] or "", c[0])
        ):
            child = (dataset_id, column)
            text = f"[dim]{kind}[/] {label(dataset_id, column)}"
            if child in shown:
                branch.add(text + " [dim](above)[/]")
                continue
            shown.add(child)
            grow(branch.add(text), child)

    grow(tree, root_key)
    for dataset_id, notes in sorted(graph.unresolved.items()):
        for column, reason in sorted(notes.items()):
            where = names.get(dataset_id, str(dataset_id))
            tree.add(f"[yellow]unresolved[/] {escape(where)}.{escape(column)}: {escape(reason)}")
    if graph.truncated:
        tree.add(f"[dim]… more beyond depth {graph.depth} (--depth)[/]")
    return tree


@main.command()
@click.option("--sample/--no-sample", default=True, help="Generate the sample data if missing.")
@handle_errors
def pipeline(sample: bool) -> None:
    """Run the whole pipeline once: ingest → dbt build → catalog refresh."""
    settings = _settings()
    initialise(settings, sample=sample)
    run_pipeline(settings)


@main.group()
def job() -> None:
    """Jobs (created through the API), their runs and logs."""


@job.command("list")
@click.option("--source", help="Only the jobs of this source.")
@handle_errors
def job_list(source: str | None) -> None:
    """Every job: id, name, source → target, schedule, last run."""
    from sqlalchemy import select

    from headwater.db import session_scope
    from orchestration.models import Job
    from orchestration.store import last_runs

    settings = _settings()
    with session_scope(_migrated(settings)) as session:
        query = select(Job).order_by(Job.id)
        if source:
            query = query.where(Job.source == source)
        jobs = list(session.scalars(query))
        last = last_runs(session, [item.id for item in jobs])
    if not jobs:
        click.echo("no jobs (create them with POST /api/jobs)", err=True)
    for item in jobs:
        schedule = f"{item.schedule} {item.timezone}" if item.schedule else "on demand"
        if not item.enabled:
            schedule = f"disabled ({schedule})"
        run = last.get(item.id)
        status = f"{run.status} {run.queued_at:%Y-%m-%d %H:%M}" if run else "never run"
        click.echo(
            f"{item.id:>5}  {item.name[:32]:<32} {item.source} → {item.target:<12} "
            f"{schedule:<28} {status}"
        )


@job.command("run")
@click.argument("job_id", type=int)
@handle_errors
def job_run(job_id: int) -> None:
    """Run job JOB_ID now: through Dagster when its webserver is up, else in this
    process, recorded in the same Dagster instance either way."""
    from headwater.db import session_scope
    from orchestration.models import Job
    from orchestration.runs import run_job

    settings = _settings()
    with session_scope(_migrated(settings)) as session:
        found = session.get(Job, job_id)
    if found is None:
        raise HeadwaterError(f"no job {job_id}", hint="`headwater job list` shows them")
    if not found.enabled:
        raise HeadwaterError(f"job {job_id} is disabled", hint="enable it first")
    with step(f"job {job_id} ({found.name})"):
        started = run_job(settings, found)
    if started.where == "dagster":
        click.echo(f"launched run {started.run_id} in Dagster (`headwater job logs` follows it)")
        return
    click.echo(f"run {started.run_id}: {started.status}")
    if started.status != "success":
        raise HeadwaterError(
            f"run {started.run_id} failed", hint=f"`headwater job logs {started.run_id}`"
        )


@job.command("logs")
@click.argument("run_id")
@click.option(
    "--level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    help="This level and above.",
)
@handle_errors
def job_logs(run_id: str, level: str) -> None:
    """The log of run RUN_ID, oldest first."""
    from orchestration.runs import run_logs

    for line in run_logs(_settings(), run_id):
        if not line.at_least(level):
            continue
        where = f" [{line.step}]" if line.step else ""
        click.echo(f"{line.at:%H:%M:%S} {line.level.upper():<7}{where} {line.message}")


@main.group()
def alerts() -> None:
    """Alert rules, fired alerts and notification channels."""


@alerts.command("list")
@click.option("--all", "everything", is_flag=True, help="Resolved alerts too, not only firing.")
@click.option("--limit", default=20, show_default=True, help="Most alerts shown.")
@handle_errors
def alerts_list(everything: bool, limit: int) -> None:
    """The alert rules, then the alerts firing now (newest first)."""
    from sqlalchemy import select

    from headwater.db import session_scope
    from headwater.notify.models import Alert, AlertRule, Channel

    settings = _settings()
    with session_scope(_migrated(settings)) as session:
        rules = list(session.scalars(select(AlertRule).order_by(AlertRule.id)))
        channels = dict(session.execute(select(Channel.id, Channel.name)).tuples().all())
        query = select(Alert).order_by(Alert.id.desc()).limit(limit)
        if not everything:
            query = query.where(Alert.state == "firing")
        fired = list(session.scalars(query))
    names = {rule.id: rule.name for rule in rules}
    click.echo("rules:")
    for rule in rules:
        scope = rule.scope_kind + (f" {rule.scope_value}" if rule.scope_value else "")
        limit_text = "" if rule.threshold is None else f" {rule.threshold:g}"
        window = f" over {rule.window_minutes} min" if rule.window_minutes else ""
        heard = ", ".join(
            ["in-app"] * rule.in_app + [channels.get(c, f"#{c}") for c in rule.channel_ids]
        )
        state = "" if rule.enabled else " (disabled)"
        click.echo(
            f"{rule.id:>5}  {rule.name[:40]:<40} {rule.condition}{limit_text}{window} "
            f"[{scope}] → {heard or 'nobody'}{state}"
        )
    click.echo("alerts:" if fired else "alerts: none firing")
    for alert in fired:
        when = f"{alert.fired_at:%Y-%m-%d %H:%M}"
        click.echo(
            f"{alert.id:>5}  {alert.state:<9} {when}  {names.get(alert.rule_id, '?')}: "
            f"{alert.message[:120]}"
        )


@alerts.command("test")
@click.argument("channel", required=False)
@handle_errors
def alerts_test(channel: str | None) -> None:
    """Send a test message to CHANNEL (a name or id), or to every enabled channel."""
    from sqlalchemy import select

    from headwater.db import session_scope
    from headwater.notify.dispatch import test_channel
    from headwater.notify.models import Channel

    settings = _settings()
    with session_scope(_migrated(settings)) as session:
        query = select(Channel.id, Channel.name, Channel.url_masked).order_by(Channel.id)
        if channel is None:
            query = query.where(Channel.enabled.is_(True))
        elif channel.isdigit():
            query = query.where(Channel.id == int(channel))
        else:
            query = query.where(Channel.name == channel)
        found = list(session.execute(query).tuples())
    if not found:
        raise HeadwaterError(
            f"no channel {channel!r}" if channel else "no enabled channel",
            hint="add one with POST /api/notification-channels",
        )
    failed = 0
    for channel_id, name, masked in found:
        result = test_channel(settings, channel_id)
        failed += not result.ok
        outcome = "sent" if result.ok else f"FAILED: {result.error}"
        click.echo(f"{name} ({masked}): {outcome}")
    if failed:
        raise HeadwaterError(f"{failed} of {len(found)} channel(s) failed")


@main.group()
def user() -> None:
    """User accounts."""


@user.command("create")
@click.argument("email")
@click.option(
    "--role", type=click.Choice(["admin", "user", "viewer"]), default="user", show_default=True
)
@click.option("--name", default="", help="Display name.")
@handle_errors
def user_create(email: str, role: str, name: str) -> None:
    """Create a user with a role (admin, user, viewer).

    The password is prompted for (never an argument, which `ps` would show), or
    read from HEADWATER_NEW_USER_PASSWORD for scripts.
    """
    from api.auth.passwords import hash_password
    from api.users.services import create_user, validate_password
    from headwater.db import session_scope

    settings = _settings()
    password = os.environ.get("HEADWATER_NEW_USER_PASSWORD") or click.prompt(
        "Password", hide_input=True, confirmation_prompt=True
    )
    validate_password(password)
    with session_scope(settings.metadata_url) as session:
        created = create_user(
            session, email, hash_password(password), role, name=name, actor=_cli_actor()
        )
        click.echo(f"created {created.email} ({created.role})")


def _migrated(settings: Settings) -> str:
    """The metadata store's URL, brought up to date first (a no-op when it is)."""
    from headwater.migrate import upgrade

    settings.secure_home()
    upgrade(settings.metadata_url)
    return settings.metadata_url


def _cli_actor() -> Any:
    """Who the audit log names for changes made with this command."""
    import getpass

    from api.audit.services import Actor

    try:
        operator = getpass.getuser()
    except (KeyError, OSError):
        operator = "unknown"
    return Actor(user_id=None, email=f"cli:{operator}"[:320])


@user.command("list")
@click.option("--role", type=click.Choice(["admin", "user", "viewer"]), help="Only this role.")
@click.option("--inactive", is_flag=True, help="Only deactivated users.")
@handle_errors
def user_list(role: str | None, inactive: bool) -> None:
    """List users: id, email, role, state, last sign-in."""
    from api.users.models import Role
    from api.users.services import UserFilter, list_users
    from headwater.db import session_scope

    settings = _settings()
    filters = UserFilter(role=Role(role) if role else None, active=False if inactive else None)
    with session_scope(settings.metadata_url) as session:
        users, total = list_users(session, limit=10_000, offset=0, filters=filters)
        for found in users:
            state = "active" if found.is_active else "inactive"
            last = found.last_login_at.strftime("%Y-%m-%d %H:%M") if found.last_login_at else "-"
            click.echo(f"{found.id:>5}  {found.email:<40} {found.role:<7} {state:<9} {last}")
        click.echo(f"{total} user(s)", err=True)


def _change_user(email: str, **changes: Any) -> None:
    from api.errors import NotFound
    from api.users.services import find_by_email, update_user
    from headwater.db import session_scope

    settings = _settings()
    with session_scope(settings.metadata_url) as session:
        found = find_by_email(session, email)
        if found is None:
            raise NotFound(f"no user with email {email!r}", hint="`headwater user list` shows them")
        before = (found.role, found.is_active)
        changed = update_user(session, found.id, _cli_actor(), **changes)
        state = "active" if changed.is_active else "inactive"
        after = (changed.role, changed.is_active)
        revoked = " (existing tokens revoked)" if before != after else ""
        click.echo(f"{changed.email}: {changed.role}, {state}{revoked}")


@user.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["admin", "user", "viewer"]))
@handle_errors
def user_set_role(email: str, role: str) -> None:
    """Change a user's role; their existing tokens stop working at once."""
    _change_user(email, role=role)


@user.command("deactivate")
@click.argument("email")
@handle_errors
def user_deactivate(email: str) -> None:
    """Deactivate a user: they cannot sign in and their tokens stop working at once."""
    _change_user(email, is_active=False)


@user.command("reactivate")
@click.argument("email")
@handle_errors
def user_reactivate(email: str) -> None:
    """Let a deactivated user sign in again."""
    _change_user(email, is_active=True)


@main.command()
@handle_errors
def api() -> None:
    """Serve the REST API (HEADWATER_API_HOST:HEADWATER_API_PORT)."""
    import uvicorn

    settings = _settings()
    proxies = settings.trusted_proxies
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        # X-Forwarded-For decides the client address (login throttling, audit log): only
        # from the proxies named in HEADWATER_TRUSTED_PROXIES, never by default.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=",".join(proxies) if proxies else None,
        server_header=False,
    )


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops `headwater up` the way Ctrl-C does."""
    raise KeyboardInterrupt


class Services:
    """Child processes started by `headwater up`, stopped together."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        self.processes[name] = subprocess.Popen(  # noqa: S603
            args,  # our own executables from this environment
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()

    def exited(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGINT to every process group (children too, even if the leader died).

        Each group gets until the deadline to finish cleanly (a Dagster run worker
        completing its step); what is left then is killed.
        """
        for process in self.processes.values():
            _signal_group(process.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            _signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group is gone
        os.killpg(pgid, signum)


def _port_in_use(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _wait_for(url: str, timeout: float) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own localhost URL)
                return True
        except urllib.error.HTTPError:
            return True  # it answers
        except OSError:
            time.sleep(0.5)
    return False


@main.command()
@click.option(
    "--skip-pipeline", is_flag=True, help="Start the services without running the pipeline."
)
@handle_errors
def up(skip_pipeline: bool) -> None:
    """Initialise, run the pipeline once, then serve the API and Dagster until Ctrl-C."""
    settings = _settings()
    for what, host, port in (
        ("API", settings.api_host, settings.api_port),
        ("DAGSTER", settings.dagster_host, settings.dagster_port),
    ):
        if _port_in_use(host, port):
            raise HeadwaterError(
                f"{host}:{port} is already in use (is Headwater already up?)",
                hint=f"stop what uses it, or set HEADWATER_{what}_PORT",
            )
    initialise(settings)
    if not skip_pipeline:
        run_pipeline(settings)
    else:
        from orchestration.transform import run_dbt

        run_dbt(settings, "parse")

    env = {**os.environ, **settings.tool_env()}
    bin_dir = Path(sys.executable).parent
    services = Services()
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        services.start(
            "api",
            [str(bin_dir / "headwater"), "api"],
            env,
            settings.logs_dir / "api.log",
        )
        services.start(
            "dagster",
            [
                str(bin_dir / "dagster"),
                "dev",
                "-w",
                str(settings.project_dir / "workspace.yaml"),
                "-h",
                settings.dagster_host,
                "-p",
                str(settings.dagster_port),
            ],
            env,
            settings.logs_dir / "dagster.log",
        )
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        dagster_url = f"http://{settings.dagster_host}:{settings.dagster_port}"
        with step("API and Dagster started"):
            api_ok = _wait_for(f"{api_url}/health", 60)
            dagster_ok = _wait_for(f"{dagster_url}/server_info", 120)
        if not (api_ok and dagster_ok):
            failed = "API" if not api_ok else "Dagster"
            raise HeadwaterError(
                f"the {failed} did not start", hint=f"see the logs in {settings.logs_dir}"
            )
        click.echo(
            "\nHeadwater is up.\n"
            f"  REST API      {api_url}   (OpenAPI: {api_url}/schema)\n"
            f"  Dagster UI    {dagster_url}\n"
            f"  Log in        POST {api_url}/api/auth/login as {settings.admin_email}\n"
            f"  Data          {settings.home_dir}\n"
            "Press Ctrl-C to stop."
        )
        while (name := services.exited()) is None:
            time.sleep(1)
        raise HeadwaterError(
            f"the {name} process stopped", hint=f"see {settings.logs_dir / (name + '.log')}"
        )
    except KeyboardInterrupt:
        click.echo("\nstopping…", err=True)
    finally:
        # A second Ctrl-C (terminals and `uv run` both deliver one) or a SIGTERM from a
        # service manager must not cut the shutdown short.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        services.stop()
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous)
    click.echo("stopped.", err=True)
