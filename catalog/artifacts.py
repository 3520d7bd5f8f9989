"""The newest dbt artifacts, whoever built the project.

dbt writes its artifacts (``manifest.json``, ``run_results.json``, ``compiled/``)
to a target folder. Headwater's commands write to ``settings.dbt_target_dir``;
each Dagster run of the dbt assets writes to a subfolder of it
(``dbt_models-<run>-<id>/``); an analyst's plain ``dbt build --profiles-dir
profiles`` writes to the project's ``target/``. Each of these folders is one
*artifact set*. This module reads them all and answers with:

- the newest manifest (by ``metadata.generated_at``);
- for every node, its newest ``run_results`` entry (a selected build reports
  only the nodes it ran, so the newest entry of one node may come from an
  older set than another's);
- for every model and snapshot, its compiled SQL, never stale: the newest
  manifest's own ``compiled_code``, else the compiled SQL of an older set whose
  manifest has the very same checksum for that node.

Files being written while they are read (a run in progress) or otherwise
invalid are skipped with a logged warning; reading never fails.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.settings import Settings

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
RUN_RESULTS = "run_results.json"
COMPILED_KINDS = frozenset({"model", "snapshot"})
"""Nodes whose compiled SQL is collected (what lineage reads)."""
RESULT_KINDS = frozenset({"model", "seed", "snapshot", "test", "unit_test"})
"""Nodes that a build reports in ``run_results.json`` (ephemeral models excepted)."""
HEAD_BYTES = 4096
_GENERATED_AT = re.compile(rb'"generated_at"\s*:\s*"([^"]+)"')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class DbtArtifacts:
    """What the newest dbt artifacts say (see the module docstring)."""

    manifest: dict[str, Any] | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``unique_id`` → the newest ``run_results`` entry of that node, plus ``generated_at``
    (the ``metadata.generated_at`` of the run results it comes from)."""
    compiled: dict[str, str] = field(default_factory=dict)
    """``unique_id`` → compiled SQL, for models and snapshots of the newest manifest."""


def artifact_dirs(settings: Settings) -> list[Path]:
    """Folders that may hold one set of artifacts: Headwater's target folder, the
    project's own ``target/`` and the direct subfolders of each (Dagster's runs)."""
    roots: list[Path] = []
    for root in (settings.dbt_target_dir, settings.project_dir / "target"):
        resolved = root.expanduser().resolve()
        if resolved not in roots:
            roots.append(resolved)
    out: list[Path] = []
    for root in roots:
        if not root.is_dir():
            continue
        out.append(root)
        try:
            children = sorted(root.iterdir())
        except OSError as exc:
            log.warning("cannot list dbt artifacts in %s: %s", root, exc)
            continue
        out += [
            child
            for child in children
            if child.is_dir()
            and child not in roots
            and ((child / MANIFEST).is_file() or (child / RUN_RESULTS).is_file())
        ]
    return out


def read_artifacts(settings: Settings) -> DbtArtifacts:
    """The newest manifest, run results and compiled SQL over every artifact set."""
    return collect_artifacts(artifact_dirs(settings))


class _ArtifactSet:
    """One target folder; its files are read at most once, and only when needed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _stamp(self, name: str) -> datetime | None:
        """``metadata.generated_at`` of an artifact, read from its first bytes (dbt writes
        the metadata first); the file's modification time when it does not say."""
        path = self.folder / name
        try:
            with path.open("rb") as handle:
                head = handle.read(HEAD_BYTES)
            modified = path.stat().st_mtime
        except OSError:
            return None
        found = _GENERATED_AT.search(head)
        stamp = _parse_time(found.group(1).decode("ascii", "replace")) if found else None
        return stamp or datetime.fromtimestamp(modified, UTC)

    @cached_property
    def manifest_stamp(self) -> datetime | None:
        return self._stamp(MANIFEST)

    @cached_property
    def results_stamp(self) -> datetime | None:
        return self._stamp(RUN_RESULTS)

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        return _read_json(self.folder / MANIFEST, "nodes")

    @cached_property
    def run_results(self) -> dict[str, Any] | None:
        return _read_json(self.folder / RUN_RESULTS, "results")

    @cached_property
    def results_by_node(self) -> dict[str, dict[str, Any]]:
        results = self.run_results or {}
        entries = results.get("results")
        if not isinstance(entries, list):
            return {}
        return {
            str(entry["unique_id"]): entry
            for entry in entries
            if isinstance(entry, dict) and entry.get("unique_id")
        }

    @cached_property
    def started_at(self) -> datetime | None:
        """When the invocation that wrote the manifest started (files older are not its)."""
        manifest = self.manifest or {}
        metadata = manifest.get("metadata") or {}
        return _parse_time(str(metadata.get("invocation_started_at") or ""))

    def compiled_sql(self, unique_id: str, checksum: Any) -> str | None:
        """This set's compiled SQL of a node, if its manifest has the same ``checksum``."""
        manifest = self.manifest
        if manifest is None:
            return None
        node = (manifest.get("nodes") or {}).get(unique_id)
        if not isinstance(node, dict) or node.get("checksum") != checksum:
            return None
        code = _node_sql(node)
        if code is not None:
            return code
        result = self.results_by_node.get(unique_id) or {}
        if isinstance(result.get("compiled_code"), str) and result["compiled_code"]:
            return str(result["compiled_code"])
        return self._compiled_file(node)

    def _compiled_file(self, node: dict[str, Any]) -> str | None:
        """``compiled/<package>/<path>``, if this set's invocation wrote it."""
        package, path = node.get("package_name"), node.get("original_file_path")
        if not package or not path or self.started_at is None:
            return None
        file = self.folder / "compiled" / str(package) / str(path)
        try:
            if datetime.fromtimestamp(file.stat().st_mtime, UTC) < self.started_at:
                return None  # left there by an earlier invocation: maybe other code
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None


def collect_artifacts(folders: Iterable[Path]) -> DbtArtifacts:
    """:func:`read_artifacts` over the given folders (each one artifact set)."""
    sets = [_ArtifactSet(folder) for folder in folders]

    by_manifest = sorted(
        (s for s in sets if s.manifest_stamp is not None),
        key=lambda s: s.manifest_stamp or _EPOCH,
        reverse=True,
    )
    newest: _ArtifactSet | None = next((s for s in by_manifest if s.manifest is not None), None)
    manifest = newest.manifest if newest is not None else None
    nodes: dict[str, Any] = (manifest or {}).get("nodes") or {}

    results = _newest_results(sets, nodes, (manifest or {}).get("unit_tests") or {})
    compiled = _compiled(newest, by_manifest, nodes)
    return DbtArtifacts(manifest=manifest, results=results, compiled=compiled)


def _newest_results(
    sets: list[_ArtifactSet], nodes: dict[str, Any], unit_tests: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """The newest entry per node, reading run results newest first and stopping as soon
    as every node of the manifest that a build reports has one."""
    wanted = {
        unique_id
        for unique_id, node in nodes.items()
        if isinstance(node, dict)
        and node.get("resource_type") in RESULT_KINDS
        and (node.get("config") or {}).get("materialized") != "ephemeral"
    }
    wanted |= set(unit_tests)  # beside the nodes in the manifest, reported like them
    results: dict[str, dict[str, Any]] = {}
    by_results = sorted(
        (s for s in sets if s.results_stamp is not None),
        key=lambda s: s.results_stamp or _EPOCH,
        reverse=True,
    )
    for artifact_set in by_results:
        run_results = artifact_set.run_results
        if run_results is None:
            continue
        metadata = run_results.get("metadata") or {}
        generated_at = metadata.get("generated_at") or (
            artifact_set.results_stamp.isoformat() if artifact_set.results_stamp else None
        )
        for unique_id, entry in artifact_set.results_by_node.items():
            if unique_id not in results:
                results[unique_id] = {**entry, "generated_at": generated_at}
        if wanted and wanted <= results.keys():
            break
    return results


def _compiled(
    newest: _ArtifactSet | None, by_manifest: list[_ArtifactSet], nodes: dict[str, Any]
) -> dict[str, str]:
    compiled: dict[str, str] = {}
    missing: dict[str, Any] = {}
    for unique_id, node in nodes.items():
        if not isinstance(node, dict) or node.get("resource_type") not in COMPILED_KINDS:
            continue
        code = _node_sql(node)
        if code is not None:
            compiled[unique_id] = code
        elif node.get("checksum"):
            missing[unique_id] = node["checksum"]
    for artifact_set in by_manifest:
        if not missing:
            break
        for unique_id, checksum in list(missing.items()):
            code = artifact_set.compiled_sql(unique_id, checksum)
            if code is not None:
                compiled[unique_id] = code
                del missing[unique_id]
    if newest is not None and missing:
        log.debug("no compiled SQL for %d nodes (never compiled as they are now)", len(missing))
    return compiled


def _node_sql(node: dict[str, Any]) -> str | None:
    for key in ("compiled_code", "compiled_sql"):  # compiled_sql: dbt before 1.3
        code = node.get(key)
        if isinstance(code, str) and code:
            return code
    return None


def _read_json(path: Path, required: str) -> dict[str, Any] | None:
    """A JSON artifact, or None (with a warning) when it is missing, half written or invalid."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("skipping dbt artifact %s: %s", path, exc)
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        log.warning("skipping dbt artifact %s: not valid JSON (%s)", path, exc.msg)
        return None
    if not isinstance(data, dict) or not isinstance(data.get(required), list | dict):
        log.warning("skipping dbt artifact %s: no %r in it", path, required)
        return None
    return data


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
