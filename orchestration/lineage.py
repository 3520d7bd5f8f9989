"""OpenLineage events of every load and build, sent from the Dagster step doing the work.

Where the hook sits: inside the asset bodies (``dlt_source_assets``,
``query_job_asset``, ``dbt_model_assets`` in ``orchestration/assets.py``), around the
load or the ``dbt build``. Every way a load or build runs executes those bodies: a
scheduled or API-launched run in the Dagster daemon, a Headwater job executed in
this process, and the command line's ``headwater ingest`` / ``transform`` /
``pipeline``, which are Dagster runs too (``orchestration/runs.py``). A run-status
sensor would miss the command line (no daemon there) and see runs only seconds
later; the catalog may not import orchestration, so this layer is the lowest
that knows both the run and the catalog.

What the events carry: ``START`` names the inputs (from the source's declaration
for a load) and the outputs the catalog knows; ``FAIL`` the same, with the error
(secrets scrubbed). ``COMPLETE`` carries the schema and column-lineage facets,
which come from the catalog: so, when OpenLineage is configured, the step refreshes
the catalog first (incremental: only what changed is analysed again), and the event
describes the tables as this very load or build left them, the first run of a new
model included. That refresh is the one the ``refresh_catalog`` sensor would queue
anyway, done earlier; the sensor's own refresh then finds nothing new. If the
refresh fails, ``COMPLETE`` carries the catalog as it stood, and says so in the log.

Nothing here may fail a run: events are built and sent inside a guard that logs
and carries on. With neither ``HEADWATER_OPENLINEAGE_URL`` nor
``HEADWATER_OPENLINEAGE_FILE`` set, nothing is done at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from catalog.emit import Emitter
    from catalog.openlineage import DatasetRef, EventType, JobRef, RunRef, Snapshot
    from headwater.settings import Settings
    from ingest.spec import SourceSpec

log = logging.getLogger(__name__)

REFRESH_LOCK_WAIT_SECONDS = 300
"""The refresh before a ``COMPLETE`` waits this long for a process holding the warehouse."""

BUILT = frozenset({"success", "pass", "warn"})
"""dbt statuses of a node whose table or view is there after the build."""
BUILT_TYPES = ("model.", "seed.", "snapshot.")


def _run_ref(context: Any, job: JobRef) -> RunRef:
    from catalog.openlineage import step_run

    run = getattr(context, "run", None)
    if run is None:
        return step_run(None, None, job, alone=True)
    steps = run.step_keys_to_execute
    if steps is None:
        try:
            steps = list(context.job_def.graph.nodes)
        except Exception:
            steps = []
    return step_run(run.run_id, run.job_name, job, alone=len(steps) <= 1)


class _StepEvents:
    """The events of one load or build: what to name, how to send, never raising."""

    def __init__(
        self,
        settings: Settings,
        emitter: Emitter,
        context: Any,
        job: JobRef,
        outputs: Callable[[Session], list[str]],
        declared: Sequence[DatasetRef] = (),
        secrets: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.emitter = emitter
        self.job = job
        self.run = _run_ref(context, job)
        self.outputs = outputs
        self.declared = list(declared)
        self.secrets = [s for s in secrets if s and len(s) >= 3]

    def _snapshot(self) -> Snapshot:
        from catalog.openlineage import read_snapshot
        from headwater.db import session_scope

        with session_scope(self.settings.metadata_url) as session:
            return read_snapshot(session, self.outputs(session))

    def send(self, event_type: EventType, *, facets: bool, error: str | None = None) -> None:
        from catalog.openlineage import Snapshot, Warehouse, event_datasets, merge_inputs, run_event

        try:
            try:
                snapshot = self._snapshot()
            except Exception as exc:  # the catalog may not exist yet: name what we know
                log.info("OpenLineage: the catalog cannot be read (%s)", _first_line(exc))
                snapshot = Snapshot()
            inputs, outputs = event_datasets(snapshot, Warehouse.of(self.settings), facets=facets)
            event = run_event(
                event_type,
                self.run,
                self.job,
                inputs=merge_inputs(inputs, self.declared),
                outputs=outputs,
                error=self._scrub(error) if error is not None else None,
            )
            self.emitter.emit(event)
        except Exception as exc:
            log.warning(
                "OpenLineage: the %s event of job %s could not be built (%s); the run goes on",
                event_type,
                self.job.name,
                self._scrub(_first_line(exc)),
            )

    def refresh_catalog(self) -> None:
        from orchestration.origins import refresh_catalog

        try:
            refresh_catalog(self.settings, lock_wait=REFRESH_LOCK_WAIT_SECONDS)
        except Exception as exc:
            log.warning(
                "OpenLineage: the catalog could not be refreshed before the COMPLETE event "
                "of job %s (%s); the event carries the catalog as it stood",
                self.job.name,
                self._scrub(_first_line(exc)),
            )

    def _scrub(self, text: str) -> str:
        from ingest.masks import scrub

        return scrub(text, self.secrets)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]


@contextmanager
def _events(step: _StepEvents) -> Iterator[None]:
    try:
        step.send("START", facets=False)
        try:
            yield
        except GeneratorExit:  # the step's generator was closed early: no outcome to tell
            raise
        except Exception as exc:
            step.send("FAIL", facets=False, error=str(exc) or type(exc).__name__)
            raise
        except BaseException:  # interrupted (Ctrl-C, the run terminated)
            step.send("ABORT", facets=False)
            raise
        step.refresh_catalog()
        step.send("COMPLETE", facets=True)
    finally:
        step.emitter.close()


def _prepared(
    job: JobRef, emitter: Emitter, prepare: Callable[[], _StepEvents]
) -> _StepEvents | None:
    """The step's events, or None (logged) when even naming them fails: no run fails
    for its lineage."""
    try:
        return prepare()
    except Exception as exc:
        emitter.close()
        log.warning(
            "OpenLineage: no event for job %s (%s while preparing them); the run goes on",
            job.name,
            type(exc).__name__,
        )
        return None


def _secrets(settings: Settings, spec: SourceSpec | None = None) -> list[str]:
    from ingest.masks import secret_paths, url_secrets

    found = [settings.warehouse_password.get_secret_value()]
    if settings.openlineage_api_key is not None:
        found.append(settings.openlineage_api_key.get_secret_value())
    if spec is not None:
        found += url_secrets(spec.connection)
        found += [value for _, value in secret_paths(spec.model_dump(mode="json"))]
    return found


def declared_inputs(
    source: str, spec: SourceSpec, resources: Sequence[str] | None
) -> list[DatasetRef]:
    """The source tables a load reads, from the declaration alone (no catalog needed)."""
    from catalog.openlineage import source_refs
    from orchestration.origins import describe

    origin = describe(spec)
    tables = list(resources) if resources is not None else list(spec.tables)
    refs: list[DatasetRef] = []
    for table in tables:
        for ref in source_refs(source, table, origin.kind, origin.origin_of(table)):
            if ref not in refs:
                refs.append(ref)
    return refs


@contextmanager
def load_lineage(
    settings: Settings,
    context: Any,
    source: str,
    spec: SourceSpec,
    resources: Sequence[str] | None,
    *,
    job_name: str | None = None,
) -> Iterator[None]:
    """``START`` before the load of ``resources`` (every table when None) of ``source``,
    then ``COMPLETE`` or ``FAIL``. The job is ``ingest.<source>`` unless named."""
    from catalog.emit import Emitter
    from catalog.openlineage import JobRef, load_outputs

    emitter = Emitter.from_settings(settings)
    if emitter is None:
        yield
        return
    chosen = list(resources) if resources is not None else None
    job = JobRef(settings.openlineage_namespace, job_name or f"ingest.{source}", "DLT")
    step = _prepared(
        job,
        emitter,
        lambda: _StepEvents(
            settings,
            emitter,
            context,
            job,
            lambda session: load_outputs(session, source, chosen),
            declared_inputs(source, spec, chosen),
            _secrets(settings, spec),
        ),
    )
    if step is None:
        yield
        return
    with _events(step):
        yield


@contextmanager
def build_lineage(settings: Settings, context: Any, selected: Sequence[str]) -> Iterator[list[str]]:
    """``START`` before a ``dbt build`` of the dbt nodes ``selected`` (unique ids), then
    ``COMPLETE`` or ``FAIL``. The caller appends to the yielded list the nodes the
    build did build (see :func:`built_nodes`): those are ``COMPLETE``'s outputs."""
    from catalog.emit import Emitter
    from catalog.openlineage import JobRef, build_outputs

    built: list[str] = []
    emitter = Emitter.from_settings(settings)
    if emitter is None:
        yield built
        return

    def outputs(session: Session) -> list[str]:
        return build_outputs(session, built or selected)

    job = JobRef(settings.openlineage_namespace, "dbt.build", "DBT")
    step = _prepared(
        job,
        emitter,
        lambda: _StepEvents(settings, emitter, context, job, outputs, secrets=_secrets(settings)),
    )
    if step is None:
        yield built
        return
    with _events(step):
        yield built


def built_nodes(run_results: dict[str, Any]) -> list[str]:
    """The models, seeds and snapshots a dbt run built, from its ``run_results.json``."""
    return [
        str(result["unique_id"])
        for result in run_results.get("results", [])
        if str(result.get("unique_id", "")).startswith(BUILT_TYPES)
        and str(result.get("status")) in BUILT
    ]


def selected_nodes(context: Any) -> list[str]:
    """The dbt unique ids of the assets a dbt step was asked to materialize."""
    try:
        definition = context.assets_def
        ids = []
        for key in context.selected_asset_keys:
            unique_id = definition.get_asset_spec(key).metadata.get("dagster_dbt/unique_id")
            if unique_id:
                ids.append(str(unique_id))
        return ids
    except Exception:  # lineage never fails a build
        return []
