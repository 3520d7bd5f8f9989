from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from catalog.artifacts import artifact_dirs, collect_artifacts, read_artifacts
from tests.conftest import make_settings

pytestmark = pytest.mark.unit

T1 = "2026-01-01T10:00:00.000000Z"
T2 = "2026-01-02T10:00:00.000000Z"
T3 = "2026-01-03T10:00:00.000000Z"


def model(name: str, checksum: str, code: str | None = None) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "name": name,
        "package_name": "headwater",
        "original_file_path": f"models/{name}.sql",
        "checksum": {"name": "sha256", "checksum": checksum},
        "config": {"materialized": "view"},
        "compiled": code is not None,
        "compiled_code": code,
    }


def write_manifest(
    folder: Path, generated_at: str, nodes: dict[str, Any], started_at: str | None = None
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"generated_at": generated_at, "invocation_started_at": started_at or generated_at}
    (folder / "manifest.json").write_text(
        json.dumps({"metadata": metadata, "nodes": nodes, "sources": {}})
    )


def write_results(folder: Path, generated_at: str, entries: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run_results.json").write_text(
        json.dumps({"metadata": {"generated_at": generated_at}, "results": entries})
    )


def result(unique_id: str, status: str, **extra: Any) -> dict[str, Any]:
    return {"unique_id": unique_id, "status": status, **extra}


def test_newest_manifest_wins_by_generated_at_not_by_file_time(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    write_manifest(new, T2, {"model.p.a": model("a", "1", "select 2")})
    write_manifest(old, T1, {"model.p.a": model("a", "1", "select 1")})  # written last
    artifacts = collect_artifacts([old, new])
    assert artifacts.manifest is not None
    assert artifacts.manifest["metadata"]["generated_at"] == T2
    assert artifacts.compiled == {"model.p.a": "select 2"}


def test_compiled_sql_comes_from_an_older_build_only_for_unchanged_models(
    tmp_path: Path,
) -> None:
    build, parse = tmp_path / "build", tmp_path / "parse"
    write_manifest(
        build,
        T1,
        {
            "model.p.same": model("same", "s1", "select 1 as same"),
            "model.p.changed": model("changed", "c1", "select 1 as old_column"),
        },
    )
    # `dbt parse` after an edit: no compiled code, `changed` has a new checksum.
    write_manifest(
        parse,
        T2,
        {"model.p.same": model("same", "s1"), "model.p.changed": model("changed", "c2")},
    )
    artifacts = collect_artifacts([build, parse])
    assert artifacts.compiled == {"model.p.same": "select 1 as same"}


def test_compiled_sql_from_run_results_and_from_compiled_files(tmp_path: Path) -> None:
    older, newest = tmp_path / "older", tmp_path / "newest"
    write_manifest(older, T1, {"model.p.a": model("a", "a1"), "model.p.b": model("b", "b1")})
    write_results(older, T1, [result("model.p.a", "success", compiled_code="select 'a'")])
    compiled = older / "compiled" / "headwater" / "models" / "b.sql"
    compiled.parent.mkdir(parents=True)
    compiled.write_text("select 'b'")
    write_manifest(newest, T2, {"model.p.a": model("a", "a1"), "model.p.b": model("b", "b1")})
    assert collect_artifacts([older, newest]).compiled == {
        "model.p.a": "select 'a'",
        "model.p.b": "select 'b'",
    }


def test_a_compiled_file_older_than_its_manifest_invocation_is_not_trusted(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "target"
    compiled = folder / "compiled" / "headwater" / "models" / "b.sql"
    compiled.parent.mkdir(parents=True)
    compiled.write_text("select 'stale'")
    os.utime(compiled, (0, 0))  # left behind by an earlier build
    write_manifest(folder, T1, {"model.p.b": model("b", "b1")})
    assert collect_artifacts([folder]).compiled == {}


def test_newest_result_per_node_across_builds(tmp_path: Path) -> None:
    full, selected = tmp_path / "full", tmp_path / "dbt_models-abc1234-def5678"
    nodes = {"model.p.a": model("a", "1", "select 1"), "model.p.b": model("b", "1", "select 1")}
    write_manifest(full, T1, nodes)
    write_results(
        full,
        T1,
        [result("model.p.a", "success"), result("model.p.b", "error", message="boom")],
    )
    write_manifest(selected, T2, nodes)
    write_results(selected, T2, [result("model.p.b", "success")])
    results = collect_artifacts([full, selected]).results
    assert results["model.p.a"]["status"] == "success"
    assert results["model.p.a"]["generated_at"] == T1
    assert results["model.p.b"]["status"] == "success"
    assert results["model.p.b"]["generated_at"] == T2


def test_half_written_and_invalid_files_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, writing, broken = tmp_path / "good", tmp_path / "writing", tmp_path / "broken"
    write_manifest(good, T1, {"model.p.a": model("a", "1", "select 1")})
    write_results(good, T1, [result("model.p.a", "success")])
    write_manifest(writing, T3, {"model.p.a": model("a", "1", "select 3")})
    text = (writing / "manifest.json").read_text()
    (writing / "manifest.json").write_text(text[: len(text) // 2])  # a run still writing
    (writing / "run_results.json").write_text('{"metadata": {"generated_at": "' + T3 + '"}, "re')
    broken.mkdir()
    (broken / "manifest.json").write_text("[1, 2, 3]")
    (broken / "run_results.json").write_bytes(b"\xff\xfe not utf-8")
    with caplog.at_level(logging.WARNING, logger="catalog.artifacts"):
        artifacts = collect_artifacts([good, writing, broken])
    assert artifacts.manifest is not None
    assert artifacts.manifest["metadata"]["generated_at"] == T1
    assert artifacts.compiled == {"model.p.a": "select 1"}
    assert artifacts.results["model.p.a"]["status"] == "success"
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert str(writing / "manifest.json") in warned
    assert str(writing / "run_results.json") in warned
    assert str(broken / "manifest.json") in warned


def test_nothing_built_yet(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, project_dir=tmp_path / "project")
    artifacts = read_artifacts(settings)
    assert (artifacts.manifest, artifacts.results, artifacts.compiled) == (None, {}, {})


def test_reads_headwater_target_its_dagster_runs_and_the_projects_target(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    settings = make_settings(tmp_path / "home", project_dir=project)
    headwater = settings.dbt_target_dir
    dagster_run = headwater / "dbt_models-1a2b3c4-5d6e7f8"
    analyst = project / "target"
    write_manifest(headwater, T1, {"model.p.a": model("a", "1", "select 1")})
    write_manifest(dagster_run, T2, {"model.p.a": model("a", "1", "select 2")})
    write_results(dagster_run, T2, [result("model.p.a", "success")])
    (headwater / "compiled").mkdir()  # not an artifact set
    write_manifest(
        analyst, T3, {"model.p.a": model("a", "1", "select 3"), "model.p.new": model("new", "n")}
    )
    write_results(analyst, T3, [result("model.p.new", "success")])
    assert artifact_dirs(settings) == [headwater, dagster_run, analyst]
    artifacts = read_artifacts(settings)
    assert artifacts.manifest is not None
    assert "model.p.new" in artifacts.manifest["nodes"]
    assert artifacts.compiled == {"model.p.a": "select 3"}
    assert artifacts.results["model.p.a"]["generated_at"] == T2
    assert artifacts.results["model.p.new"]["generated_at"] == T3


def test_the_same_folder_configured_twice_is_read_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", project_dir=tmp_path / "project")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "target").symlink_to(settings.dbt_target_dir, target_is_directory=True)
    write_manifest(settings.dbt_target_dir, T1, {})
    assert artifact_dirs(settings) == [settings.dbt_target_dir]
