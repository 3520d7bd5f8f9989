"""Run a declared source into the warehouse with dlt: one ``raw_<source>`` schema each."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headwater.db import utcnow
from headwater.warehouse import LOCK_WAIT_SECONDS, is_lock_conflict, wait_for_warehouse
from ingest.errors import IngestError, SourceNotFound
from ingest.spec import SourceSpec

if TYPE_CHECKING:
    from dlt import Pipeline

    from headwater.settings import Settings
    from ingest.destinations import Destination
    from ingest.original_names import OriginalNames

# dlt must never phone home: the platform runs on machines without internet.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
# Measured with benchmarks/sources.py (2M wide rows; the environment still wins):
# - text load files stay uncompressed: they never leave this machine, and gzip made a
#   PostgreSQL load 2.4x slower;
# - a new file every 500k rows, loaded two at a time: twenty at once (dlt's default)
#   doubled the peak memory of a 10M-row load (2.3 GiB) and was slower;
# - files of completed loads are deleted: each load kept a full copy of its data;
# - extract polls for the next item every 1 ms, not 10: an incremental run slept twice
#   for nothing, 20 ms of its 350.
for _key, _value in {
    "DATA_WRITER__DISABLE_COMPRESSION": "true",
    "DATA_WRITER__FILE_MAX_ITEMS": "500000",
    "LOAD__WORKERS": "2",
    "LOAD__DELETE_COMPLETED_JOBS": "true",
    "EXTRACT__FUTURES_POLL_INTERVAL": "0.001",
    # A replaced table changes in one transaction from a staging copy: a load failing
    # midway leaves the old rows in place.
    "DESTINATION__REPLACE_STRATEGY": "insert-from-staging",
}.items():
    os.environ.setdefault(_key, _value)

DATABASE_ERROR = re.compile(
    r"(?:(?:Conversion|Constraint|Binder|Catalog|Invalid Input|Out of Memory) Error|"
    r"ERROR|DETAIL): .*"
)
ARROW_FORMATS = {"csv", "jsonl"}
"""File formats read as Arrow batches (the others yield Python rows)."""


@dataclass(frozen=True)
class LoadSummary:
    source: str
    dataset: str
    rows: dict[str, int] = field(default_factory=dict)
    load_id: str | None = None
    seconds: float = 0.0
    target: str = "warehouse"

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def pipeline(
    settings: Settings, name: str, source: SourceSpec, target: Destination, progress: Any = None
) -> Pipeline:
    """Source ``name``'s dlt pipeline into ``target``; ``progress`` a dlt collector that
    is told of every batch (the command line shows rows/s with one)."""
    import dlt

    from ingest.destinations import pipeline_name

    options: dict[str, Any] = {"progress": progress} if progress is not None else {}
    made: Pipeline = dlt.pipeline(
        pipeline_name=pipeline_name(settings, name, source),
        pipelines_dir=str(settings.dlt_dir),
        destination=target.dlt(),
        dataset_name=settings.raw_schema(name),
        **options,
    )
    return made


def load_declared(settings: Settings) -> dict[str, SourceSpec]:
    """Every source, from sources.yml and from the metadata store."""
    from ingest.store import all_sources

    return {name: declared.spec for name, declared in all_sources(settings).items()}


def select_sources(
    declared: dict[str, SourceSpec], names: list[str] | None
) -> dict[str, SourceSpec]:
    if not names:
        return dict(declared)
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise SourceNotFound(
            f"no source named {', '.join(unknown)}",
            hint=f"declared sources: {', '.join(declared) or 'none'}",
        )
    return {n: declared[n] for n in names}


def run_source(
    settings: Settings,
    name: str,
    source: SourceSpec,
    tables: list[str] | None = None,
    *,
    full_refresh: bool = False,
    progress: Any = None,
) -> LoadSummary:
    """Load ``source`` (or only ``tables`` of it) into ``raw_<name>``.

    ``full_refresh`` drops the loaded tables and their incremental state first,
    then loads everything again; so does the first load after the sample it reads
    was regenerated.
    """
    from ingest.destinations import target_of
    from ingest.original_names import OriginalNames, record_names
    from ingest.reloads import reload_pending, reloaded
    from ingest.schema_events import columns_of, diff, record_changes
    from ingest.sources import with_tables
    from ingest.state import record_loads
    from ingest.targets import check_targets

    if source.destination:
        raise IngestError(
            f"{name!r} is a destination: sources load into it (target: {name}), "
            "it is not loaded from"
        )
    check_targets(settings, name, source)
    target = target_of(settings, name, source)
    started = time.perf_counter()
    started_at = utcnow()
    sample_reload = reload_pending(settings, name, source)
    full_refresh = full_refresh or sample_reload
    source = _retried(settings, lambda: with_tables(source))
    selected = list(source.tables) if tables is None else tables
    names = OriginalNames()
    try:
        pipe, info, normalized, before = _load_source(
            settings, name, source, target, tables, selected, full_refresh, progress, names
        )
    except IngestError as exc:
        record_loads(
            settings,
            name,
            source,
            dict.fromkeys(selected, 0),
            started_at=started_at,
            error=exc.message,
        )
        raise
    loaded = {table: n for table, n in normalized.items() if not table.startswith("_dlt")}
    # Every selected table, those with no new rows included; child tables as dlt made them.
    rows = {**dict.fromkeys(selected, 0), **loaded}
    load_id = info.loads_ids[-1] if info.loads_ids else None
    record_loads(
        settings, name, source, rows, started_at=started_at, load_id=load_id, state=pipe.state
    )
    after = columns_of(pipe.default_schema if pipe.default_schema_name else None)
    record_changes(settings, name, diff(before, after, set(selected)), load_id)
    if pipe.default_schema_name:
        naming = pipe.default_schema.naming
        record_names(settings, name, names.renamed(naming.normalize_identifier))
    if sample_reload and set(selected) >= set(source.tables):  # every table reloaded
        reloaded(settings, name)
    return LoadSummary(
        name, settings.raw_schema(name), rows, load_id, time.perf_counter() - started, target.name
    )


def _load_source(
    settings: Settings,
    name: str,
    source: SourceSpec,
    target: Destination,
    tables: list[str] | None,
    selected: list[str],
    full_refresh: bool,
    progress: Any = None,
    names: OriginalNames | None = None,
) -> tuple[Pipeline, Any, dict[str, int], dict[str, Any]]:
    """(pipeline, dlt's load info, rows per table, the schema's columns before the load)."""
    from ingest.original_names import OriginalNames
    from ingest.schema_events import columns_of
    from ingest.sources import build_resources, read_ahead

    names = names if names is not None else OriginalNames()

    ahead = read_ahead(source, selected)  # the source answers while the warehouse does
    pipe = pipeline(settings, name, source, target, progress)
    _drop_stale_extracts(pipe)
    if pipe.has_pending_data:
        # A load cut short earlier (e.g. it timed out waiting for the warehouse): finish
        # it first, on its own, or drop it on a refresh.
        if full_refresh:
            pipe.drop_pending_packages()
        else:
            _load_or_raise(settings, name, source, lambda: _load_step(pipe, target))
    # State and schema from the warehouse when its copy is newer (dlt keeps both there):
    # a lost local folder never passes for empty tables, nor misses what a refresh drops.
    _load_or_raise(settings, name, source, pipe.sync_destination)
    fresh = frozenset(selected) if full_refresh else _never_loaded(pipe, selected)
    before = columns_of(pipe.default_schema if pipe.default_schema_name else None)
    first = [ahead]  # what was read ahead serves the first attempt; a retry reads anew
    resources = _retried(
        settings, lambda: build_resources(source, tables, fresh, first.pop() if first else None)
    )
    for resource in resources:
        resource.add_map(names.tap(resource.name))
    if target.kind == "postgres":
        # Arrow batches reach PostgreSQL fastest as parquet through ADBC's binary COPY
        # (measured at 2M rows: 0.79x of a plain COPY FROM; CSV through COPY 0.57x; the
        # default INSERT statements 0.16x). JSON columns are then `json`, not `jsonb`.
        # Python rows keep the default.
        for resource in resources:
            if _yields_arrow(source, resource.name):
                resource.apply_hints(file_format="parquet")
    options: dict[str, Any] = {}
    if source.schema_contract:
        # Declared tables are always created; the contract rules their columns.
        mode = source.schema_contract
        options["schema_contract"] = {"tables": "evolve", "columns": mode, "data_type": mode}
    if full_refresh:
        options["refresh"] = "drop_resources"
    normalized: dict[str, int] = {}
    done: set[str] = set()  # the steps that succeeded: a retry carries on after them

    def attempt() -> Any:
        nonlocal normalized
        if "extract" not in done:
            pipe.extract(resources, **options)
            done.add("extract")
        if "normalize" not in done:
            counts = pipe.normalize()
            normalized = dict(counts.row_counts) if counts is not None else {}
            done.add("normalize")
        return _load_step(pipe, target)

    info = _load_or_raise(settings, name, source, attempt)
    return pipe, info, normalized, before


def _load_step(pipe: Pipeline, target: Destination) -> Any:
    """``pipe.load()``. Into DuckDB, through one connection for the whole step: dlt
    otherwise opens and closes the file for each of its clients (five or six per load,
    about 75 ms of an incremental run's 350 ms, measured at 2M rows). Extract and
    normalize never hold the file, so readers keep it while data is read."""
    if target.kind != "duckdb":
        return pipe.load()
    import duckdb

    factory = pipe.destination
    configured = factory.config_params.get("credentials")
    connection = duckdb.connect(target.connection)
    try:
        return pipe.load(credentials=connection)
    finally:
        factory.config_params["credentials"] = configured  # the path, for the next step
        connection.close()


def _drop_stale_extracts(pipe: Pipeline) -> None:
    """Forget extracted packages that a killed run had already normalized.

    Normalizing writes the package's load files, then deletes what extract left; a
    process killed between the two leaves both, and the next run would normalize and
    load the same rows a second time.
    """
    stale = set(pipe.list_extracted_load_packages()) & (
        set(pipe.list_normalized_load_packages()) | set(pipe.list_completed_load_packages())
    )
    for load_id in stale:
        pipe._get_normalize_storage().extracted_packages.delete_package(load_id)


def _yields_arrow(source: SourceSpec, table: str) -> bool:
    if source.kind == "database":
        return True
    return source.kind == "file" and source.file_format(table) in ARROW_FORMATS


def _never_loaded(pipe: Pipeline, tables: list[str]) -> frozenset[str]:
    """The ``tables`` of which nothing has been loaded into the warehouse yet."""
    if not pipe.default_schema_name:
        return frozenset(tables)
    seen = set(pipe.default_schema.data_table_names(seen_data_only=True))
    return frozenset(table for table in tables if table not in seen)


def _retried(settings: Settings, work: Callable[[], Any]) -> Any:
    """``work()``, tried again while it fails transiently (e.g. reflecting the tables of a
    database that is restarting)."""
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

    from ingest.retries import is_transient

    retrying = Retrying(
        stop=stop_after_attempt(settings.ingest_attempts),
        wait=wait_exponential(multiplier=settings.ingest_retry_seconds, max=60),
        retry=retry_if_exception(is_transient),
        reraise=True,
    )
    try:
        return retrying(work)
    except IngestError as exc:
        exc.transient = is_transient(exc)
        raise


def _load_or_raise(
    settings: Settings, name: str, source: SourceSpec, load: Callable[[], Any]
) -> Any:
    """Run a dlt step, waiting for the warehouse; a failure becomes one clear IngestError.

    A transient failure (connection cut, timeout, 429 / 5xx) is tried again, up to
    ``HEADWATER_INGEST_ATTEMPTS`` times with exponential backoff; a permanent one
    (credentials, missing table or column, SQL) fails at once.
    """
    from dlt.pipeline.exceptions import PipelineStepFailed
    from tenacity import (
        RetryError,
        Retrying,
        retry_if_exception,
        stop_after_attempt,
        wait_exponential,
    )

    from ingest.retries import is_transient

    attempts = settings.ingest_attempts
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=settings.ingest_retry_seconds, max=60),
        retry=retry_if_exception(
            lambda exc: isinstance(exc, PipelineStepFailed) and is_transient(exc)
        ),
        reraise=False,
    )
    try:
        return retrying(wait_for_warehouse, settings, load, writer=True)
    except RetryError as exc:
        failure = exc.last_attempt.exception()
        assert isinstance(failure, PipelineStepFailed)  # noqa: S101 - the retry condition
        cause = failure.__cause__ or failure.exception
        error = IngestError(
            f"loading source {name!r} failed at step {failure.step} after {attempts} "
            f"attempts: {_describe(cause, source)}"
        )
        error.transient = True
        raise error from None
    except PipelineStepFailed as exc:
        cause = exc.__cause__ or exc.exception
        raise IngestError(
            f"loading source {name!r} failed at step {exc.step}: {_describe(cause, source)}"
        ) from None
    except Exception as exc:
        if not is_lock_conflict(exc):
            raise
        error = IngestError(
            f"loading source {name!r} failed: another process kept the warehouse file "
            f"locked for {LOCK_WAIT_SECONDS} s",
            hint="DuckDB admits one writing process; try again when it is done",
        )
        error.transient = True
        raise error from None


def _describe(exc: BaseException | None, source: SourceSpec) -> str:
    """The first line of the cause, with the source's password (if any) masked."""
    if exc is None:
        return "unknown error"
    entity = getattr(exc, "schema_entity", None)
    if entity is not None and hasattr(exc, "contract_mode"):  # dlt's DataValidationError
        what = {"tables": "a new table", "columns": "a new column", "data_type": "a new type"}
        column = getattr(exc, "column_name", None)
        return (
            f"table {getattr(exc, 'table_name', '?')!r} got {what.get(entity, entity)}"
            f"{f' ({column!r})' if column else ''}, which the source's schema_contract "
            f"{source.schema_contract!r} refuses"
        )
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    # A load job that failed for good carries the whole traceback: keep the database's line.
    database_line = next(
        (line.strip() for line in reversed(lines) if DATABASE_ERROR.search(line)), None
    )
    if database_line is not None:
        text = DATABASE_ERROR.search(database_line).group(0)  # type: ignore[union-attr]
    from ingest.masks import scrub, secret_paths, url_secrets

    secrets = url_secrets(source.connection)
    secrets += [value for _, value in secret_paths(source.model_dump(mode="json"))]
    return scrub(text, secrets)


def run_all(
    settings: Settings, names: list[str] | None = None, *, full_refresh: bool = False
) -> list[LoadSummary]:
    """Load every declared source (or the named ones), in declaration order."""
    return [
        run_source(settings, n, s, full_refresh=full_refresh)
        for n, s in select_sources(load_declared(settings), names).items()
        if names or not s.destination
    ]
