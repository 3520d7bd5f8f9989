"""The OpenLineage hook around a load or build: START, then COMPLETE or FAIL, never
failing the step itself (no Dagster, no warehouse: the catalog refresh is stubbed)."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import catalog.refresh
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.spec import SourceSpec
from orchestration.lineage import build_lineage, built_nodes, declared_inputs, load_lineage
from tests.conftest import make_settings
from tests.openlineage_schema import assert_valid

pytestmark = pytest.mark.unit

SPEC = SourceSpec.model_validate(
    {
        "kind": "database",
        "connection": "postgresql://shop:pa55word-x@db.example.com/shop",
        "tables": {"orders": {}, "customers": {}},
    }
)


@dataclass
class Run:
    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    job_name: str = "__ASSET_JOB"
    step_keys_to_execute: list[str] | None = field(default_factory=lambda: ["ingest_shop"])


@dataclass
class Context:
    run: Run = field(default_factory=Run)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    settings = make_settings(tmp_path, openlineage_file=str(tmp_path / "ol.jsonl"))
    upgrade(settings.metadata_url)
    refreshed: list[Settings] = []
    monkeypatch.setattr(catalog.refresh, "refresh", lambda s, **_: refreshed.append(s))
    return settings


def events(settings: Settings) -> list[dict[str, Any]]:
    assert settings.openlineage_file is not None
    path = settings.openlineage_file
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_load_emits_start_then_complete_with_the_dagster_run_id(settings: Settings) -> None:
    context = Context()
    with load_lineage(settings, context, "shop", SPEC, ["orders"]):
        assert [e["eventType"] for e in events(settings)] == ["START"]
    start, complete = events(settings)
    assert complete["eventType"] == "COMPLETE"
    for event in (start, complete):
        assert_valid(event)
        assert event["run"]["runId"] == context.run.run_id
        assert event["job"] == {**event["job"], "namespace": "headwater", "name": "ingest.shop"}
    assert [(i["namespace"], i["name"]) for i in start["inputs"]] == [
        ("postgres://db.example.com:5432", "shop.public.orders")
    ], "the declaration names what a first load reads"


def test_a_failed_load_emits_fail_without_its_secrets_and_still_fails(
    settings: Settings,
) -> None:
    with (
        pytest.raises(RuntimeError, match="pa55word-x"),
        load_lineage(settings, Context(), "shop", SPEC, None),
    ):
        raise RuntimeError("could not connect to shop:pa55word-x@db.example.com")
    start, fail = events(settings)
    assert fail["eventType"] == "FAIL"
    assert_valid(fail)
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert "could not connect" in message and "pa55word-x" not in message
    assert "pa55word-x" not in json.dumps(start)
    assert {i["name"] for i in start["inputs"]} == {"shop.public.orders", "shop.public.customers"}


def test_a_step_of_a_bigger_run_gets_its_own_run_with_a_parent(settings: Settings) -> None:
    context = Context(Run(job_name="full_pipeline", step_keys_to_execute=["a", "b"]))
    with build_lineage(settings, context, ["model.p.orders"]) as built:
        built.append("model.p.orders")
    start, complete = events(settings)
    assert start["run"]["runId"] == complete["run"]["runId"] != context.run.run_id
    assert complete["run"]["facets"]["parent"]["run"]["runId"] == context.run.run_id
    assert complete["job"]["name"] == "dbt.build"
    assert complete["job"]["facets"]["jobType"]["integration"] == "DBT"


def test_nothing_the_lineage_does_can_fail_the_step(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_refresh(*args: object, **kwargs: object) -> None:
        raise OSError("warehouse locked")

    monkeypatch.setattr(catalog.refresh, "refresh", broken_refresh)
    with (
        caplog.at_level(logging.WARNING),
        load_lineage(settings, Context(), "shop", SPEC, ["orders"]),
    ):
        pass
    assert [e["eventType"] for e in events(settings)] == ["START", "COMPLETE"]
    assert "catalog could not be refreshed" in caplog.text

    def explode(*args: object, **kwargs: object) -> Any:
        raise ValueError("bug in an event builder")

    monkeypatch.setattr("catalog.openlineage.run_event", explode)
    with (
        caplog.at_level(logging.WARNING),
        load_lineage(settings, Context(), "shop", SPEC, ["orders"]),
    ):
        done = True
    assert done and "could not be built" in caplog.text


def test_an_interrupted_load_is_aborted(settings: Settings) -> None:
    with pytest.raises(KeyboardInterrupt), load_lineage(settings, Context(), "shop", SPEC, None):
        raise KeyboardInterrupt
    assert [e["eventType"] for e in events(settings)] == ["START", "ABORT"]
    assert_valid(events(settings)[1])


def test_a_declaration_that_cannot_be_named_only_costs_its_events(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(spec: SourceSpec) -> Any:
        raise ValueError("postgresql://shop:pa55word-x@db")

    monkeypatch.setattr("orchestration.origins.describe", broken)
    with caplog.at_level(logging.WARNING), load_lineage(settings, Context(), "shop", SPEC, None):
        ran = True
    assert ran and events(settings) == []
    assert "no event for job ingest.shop" in caplog.text and "pa55word-x" not in caplog.text


def test_without_a_destination_nothing_is_written(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with load_lineage(settings, Context(), "shop", SPEC, None):
        pass
    with build_lineage(settings, Context(), []) as built:
        built.append("model.p.x")
    assert not list(tmp_path.rglob("*.jsonl"))


def test_the_nodes_a_build_built() -> None:
    results = {
        "results": [
            {"unique_id": "model.p.a", "status": "success"},
            {"unique_id": "model.p.b", "status": "error"},
            {"unique_id": "seed.p.c", "status": "success"},
            {"unique_id": "test.p.not_null_a_id", "status": "pass"},
            {"unique_id": "snapshot.p.d", "status": "skipped"},
        ]
    }
    assert built_nodes(results) == ["model.p.a", "seed.p.c"]
    assert built_nodes({}) == []


def test_declared_inputs_of_a_file_source() -> None:
    spec = SourceSpec.model_validate(
        {"kind": "file", "tables": {"spend": {"path": "/data/spend.csv"}}}
    )
    assert [(r.namespace, r.name) for r in declared_inputs("marketing", spec, None)] == [
        ("file", "/data/spend.csv")
    ]
