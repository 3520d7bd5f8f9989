"""OpenLineage events from the catalog: names, facets, runs, the emitter, and every event
checked against the OpenLineage rules (``tests/openlineage_schema.py`` says why that
schema is written here rather than loaded from the spec)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

import catalog.emit
from catalog.emit import Emitter, enabled, endpoint, shown
from catalog.models import ColumnLineage, Dataset, DatasetColumn, LineageEdge
from catalog.openlineage import (
    COLUMN_LINEAGE_FACET,
    RUN_EVENT_SCHEMA,
    SCHEMA_FACET,
    CatalogColumn,
    CatalogDataset,
    CatalogEdge,
    DatasetRef,
    JobRef,
    RunRef,
    Snapshot,
    Warehouse,
    build_outputs,
    column_lineage_facet,
    event_datasets,
    load_outputs,
    merge_inputs,
    query_tables,
    read_snapshot,
    run_event,
    source_refs,
    step_run,
)
from headwater.db import session_scope
from headwater.migrate import upgrade
from ingest.spec import SourceSpec
from orchestration.origins import describe
from tests.conftest import make_settings
from tests.openlineage_schema import assert_valid, errors

pytestmark = pytest.mark.unit

WAREHOUSE = Warehouse("duckdb:///data/warehouse.duckdb", "warehouse")
JOB = JobRef("headwater", "ingest.shop", "DLT")
RUN = RunRef(str(uuid.uuid4()))
PG = "postgres://db.example.com:5432"


# --- names ------------------------------------------------------------------------


def refs(origin: str, kind: str = "database", table: str = "t") -> list[tuple[str, str]]:
    return [(r.namespace, r.name) for r in source_refs("shop", table, kind, origin)]


def test_database_tables_are_named_by_the_naming_spec() -> None:
    assert refs("table orders of postgresql+psycopg2://db.example.com:5432/shop") == [
        (PG, "shop.public.orders")
    ]
    assert refs("table sales.orders (id, total) of postgresql://db.example.com/shop") == [
        (PG, "shop.sales.orders")
    ], "an explicit schema is kept, the default port is filled in"
    assert refs("table Customers of mysql+pymysql://maria:3307/crm") == [
        ("mysql://maria:3307", "crm.Customers")
    ]
    assert refs("table orders of sqlite:////srv/data/shop.db") == [
        ("sqlite:///srv/data/shop.db", "orders")
    ]
    assert refs("table orders of duckdb:////srv/ops.duckdb") == [
        ("duckdb:///srv/ops.duckdb", "ops.main.orders")
    ]


def test_a_query_source_is_the_tables_it_reads() -> None:
    origin = (
        "query on postgresql://db.example.com:5432/shop: with recent as (select * from "
        "orders where day > now() - interval '1 day') select r.id, c.email from recent r "
        "join crm.customers c on c.id = r.customer_id"
    )
    assert refs(origin) == [(PG, "shop.public.orders"), (PG, "shop.crm.customers")]
    assert query_tables("select * from (select 1) x") == []
    assert query_tables("this is not sql (") == []


def test_collections_endpoints_and_files() -> None:
    assert refs("collection crm.contacts of mongodb://mongo:27017/crm", "mongodb") == [
        ("mongodb://mongo:27017", "crm.contacts")
    ]
    assert refs("collection contacts of mongodb://mongo/crm", "mongodb") == [
        ("mongodb://mongo:27017", "crm.contacts")
    ]
    assert refs("POST https://api.example.com/v1/payments/refunds", "rest_api") == [
        ("https://api.example.com", "/v1/payments/refunds")
    ]
    assert refs("file /data/spend.csv", "file") == [("file", "/data/spend.csv")]
    assert refs("file /data/s.xlsx, sheet suppliers", "file") == [
        ("file", "/data/s.xlsx#suppliers")
    ]


def test_what_names_no_data_source_falls_back_to_the_source_and_table() -> None:
    expected = [("headwater://shop", "t")]
    assert refs("") == expected
    assert refs("table t of the source") == expected
    assert refs("query on postgresql://h/db: not sql at all (") == expected


def test_names_never_carry_a_credential_whatever_the_text_holds() -> None:
    texts = [
        "table orders of postgresql://shop:s3cretpw@db.example.com:5432/shop?password=s3cretpw",
        "collection c of mongodb://app:s3cretpw@mongo:27017/crm?authSource=admin",
        "GET https://user:s3cretpw@api.example.com/v1/orders?api_key=s3cretpw",
    ]
    for text in texts:
        for namespace, name in refs(text, "rest_api" if text.startswith("GET") else "database"):
            assert "s3cretpw" not in namespace + name and "@" not in namespace, (namespace, name)


def test_names_agree_with_the_declarations_they_come_from() -> None:
    """``source_refs`` reads the text ``orchestration.origins.describe`` writes."""
    spec = SourceSpec.model_validate(
        {
            "kind": "database",
            "connection": "postgresql://shop:s3cret@db.example.com/shop?sslmode=require",
            "tables": {
                "orders": {},
                "clients": {"source_table": "Customers", "columns": ["id", "email"]},
                "big": {"query": "select * from orders o join items i on i.order_id = o.id"},
            },
        }
    )
    origin = describe(spec)

    def named(table: str) -> list[tuple[str, str]]:
        return refs(origin.origin_of(table) or "", origin.kind, table)

    assert named("orders") == [(PG, "shop.public.orders")]
    assert named("clients") == [(PG, "shop.public.Customers")]
    assert named("big") == [(PG, "shop.public.orders"), (PG, "shop.public.items")]
    assert named("found_later") == [(PG, "shop.public.found_later")]


def test_the_warehouse_namespace_never_carries_its_password(tmp_path: Path) -> None:
    duck = Warehouse.of(make_settings(tmp_path))
    assert duck == Warehouse(f"duckdb://{(tmp_path / 'warehouse.duckdb').resolve()}", "warehouse")
    pg = Warehouse.of(
        make_settings(
            tmp_path,
            warehouse="postgres",
            warehouse_host="pg.internal",
            warehouse_port=6432,
            warehouse_password="s3cretpw",
            warehouse_dbname="dw",
        )
    )
    assert pg == Warehouse("postgres://pg.internal:6432", "dw")


# --- facets -------------------------------------------------------------------------


def test_every_edge_kind_maps_to_an_openlineage_transformation() -> None:
    up = {"staging.stg_orders": DatasetRef("duckdb:///w.duckdb", "w.staging.stg_orders")}
    edges = [
        CatalogEdge("m", "order_id", "staging.stg_orders", "id", "copy"),
        CatalogEdge("m", "customer", "staging.stg_orders", "customer_id", "rename"),
        CatalogEdge("m", "status", "staging.stg_orders", "status", "transform"),
        CatalogEdge("m", "revenue", "staging.stg_orders", "amount", "aggregate"),
        CatalogEdge("m", "revenue", "staging.stg_orders", "amount", "transform"),
        CatalogEdge("m", None, "staging.stg_orders", "status", "filter"),
        CatalogEdge("m", "x", "somewhere.else", "y", "copy"),  # not named: left out
    ]
    facet = column_lineage_facet(edges, up)
    assert facet is not None and facet["_schemaURL"] == COLUMN_LINEAGE_FACET

    def kinds(column: str) -> list[tuple[str, str, str]]:
        (only,) = facet["fields"][column]["inputFields"]
        return [(only["field"], t["type"], t["subtype"]) for t in only["transformations"]]

    assert kinds("order_id") == [("id", "DIRECT", "IDENTITY")]
    assert kinds("customer") == [("customer_id", "DIRECT", "IDENTITY")]
    assert kinds("status") == [("status", "DIRECT", "TRANSFORMATION")]
    assert kinds("revenue") == [
        ("amount", "DIRECT", "AGGREGATION"),
        ("amount", "DIRECT", "TRANSFORMATION"),
    ], "one input field, each way it reaches the column"
    assert "x" not in facet["fields"]
    assert facet["dataset"] == [
        {
            "namespace": "duckdb:///w.duckdb",
            "name": "w.staging.stg_orders",
            "field": "status",
            "transformations": [
                {
                    "type": "INDIRECT",
                    "subtype": "FILTER",
                    "description": "decides which rows arrive",
                    "masking": False,
                }
            ],
        }
    ]
    assert column_lineage_facet([], up) is None


def dataset(name: str, kind: str, columns: list[str], **extra: Any) -> CatalogDataset:
    schema, table = name.rsplit(".", 1)
    return CatalogDataset(
        name=name,
        kind=kind,
        schema_name=schema.split(".")[-1],
        table_name=table,
        fqn=None if kind == "source" else f"warehouse.{name}",
        columns=tuple(CatalogColumn(c, "VARCHAR", f"the {c}") for c in columns),
        **extra,
    )


def load_snapshot() -> Snapshot:
    source = dataset(
        "source.shop.orders",
        "source",
        ["id", "Total"],
        source_kind="database",
        origin="table orders of postgresql://db.example.com:5432/shop",
    )
    raw = dataset("raw_shop.orders", "raw", ["id", "total", "_dlt_id"])
    nested = dataset("raw_shop.orders__items", "raw", ["sku", "_dlt_parent_id"])
    return Snapshot(
        outputs=["raw_shop.orders", "raw_shop.orders__items"],
        datasets={d.name: d for d in (source, raw, nested)},
        upstream={
            "raw_shop.orders": ["source.shop.orders"],
            "raw_shop.orders__items": ["source.shop.orders"],
        },
        columns=[
            CatalogEdge("raw_shop.orders", "id", "source.shop.orders", "id", "copy"),
            CatalogEdge("raw_shop.orders", "total", "source.shop.orders", "Total", "rename"),
        ],
    )


def test_a_load_reads_the_source_table_and_writes_the_raw_tables() -> None:
    inputs, outputs = event_datasets(load_snapshot(), WAREHOUSE)
    assert [(i["namespace"], i["name"]) for i in inputs] == [(PG, "shop.public.orders")]
    assert [f["name"] for f in inputs[0]["facets"]["schema"]["fields"]] == ["id", "Total"]
    assert [(o["namespace"], o["name"]) for o in outputs] == [
        (WAREHOUSE.namespace, "warehouse.raw_shop.orders"),
        (WAREHOUSE.namespace, "warehouse.raw_shop.orders__items"),
    ]
    orders = outputs[0]["facets"]
    assert orders["schema"]["_schemaURL"] == SCHEMA_FACET
    assert orders["schema"]["fields"][1] == {
        "name": "total",
        "type": "VARCHAR",
        "description": "the total",
    }
    total = orders["columnLineage"]["fields"]["total"]["inputFields"]
    assert [(f["namespace"], f["name"], f["field"]) for f in total] == [
        (PG, "shop.public.orders", "Total")
    ]
    assert "columnLineage" not in outputs[1]["facets"], "no column edge into a nested table"
    event = run_event("COMPLETE", RUN, JOB, inputs=inputs, outputs=outputs)
    assert_valid(event)


def build_snapshot() -> Snapshot:
    raw = dataset("raw_shop.orders", "raw", ["id", "total"])
    query_source = dataset(
        "source.shop.big",
        "source",
        ["id"],
        source_kind="database",
        origin="query on postgresql://db.example.com/shop: select o.id from orders o "
        "join items i on i.order_id = o.id",
    )
    staging = dataset("staging.stg_orders", "staging", ["order_id", "total"])
    mart = dataset("marts.revenue", "mart", ["revenue", "n"])
    return Snapshot(
        outputs=["staging.stg_orders", "marts.revenue"],
        datasets={d.name: d for d in (raw, query_source, staging, mart)},
        upstream={
            "staging.stg_orders": ["raw_shop.orders"],
            "marts.revenue": ["staging.stg_orders", "source.shop.big"],
        },
        columns=[
            CatalogEdge("marts.revenue", None, "staging.stg_orders", "order_id", "filter"),
            CatalogEdge("marts.revenue", "n", "source.shop.big", "id", "aggregate"),
            CatalogEdge("marts.revenue", "revenue", "staging.stg_orders", "total", "aggregate"),
            CatalogEdge("staging.stg_orders", "order_id", "raw_shop.orders", "id", "rename"),
            CatalogEdge("staging.stg_orders", "total", "raw_shop.orders", "total", "copy"),
        ],
    )


def test_a_build_writes_its_models_and_reads_what_they_read_outside_it() -> None:
    inputs, outputs = event_datasets(build_snapshot(), WAREHOUSE)
    assert [(i["namespace"], i["name"]) for i in inputs] == [
        (WAREHOUSE.namespace, "warehouse.raw_shop.orders"),
        (PG, "shop.public.orders"),
        (PG, "shop.public.items"),
    ], "a model built in the same run is an output, not an input; a query is its tables"
    assert "facets" not in inputs[1], "which table of the query has which column is unknown"
    revenue = outputs[1]["facets"]["columnLineage"]
    assert set(revenue["fields"]) == {"revenue"}, "n comes from the query: not attributed"
    (total,) = revenue["fields"]["revenue"]["inputFields"]
    assert (total["name"], total["field"]) == ("warehouse.staging.stg_orders", "total")
    assert [f["field"] for f in revenue["dataset"]] == ["order_id"]
    assert_valid(
        run_event(
            "COMPLETE", RUN, JobRef("headwater", "dbt.build", "DBT"), inputs=inputs, outputs=outputs
        )
    )


def test_start_events_name_datasets_without_facets() -> None:
    inputs, outputs = event_datasets(build_snapshot(), WAREHOUSE, facets=False)
    assert all("facets" not in d for d in [*inputs, *outputs])
    merged = merge_inputs(inputs, [DatasetRef(PG, "shop.public.orders"), DatasetRef("file", "/x")])
    assert [d["name"] for d in merged][-1] == "/x" and len(merged) == len(inputs) + 1


# --- runs and events ------------------------------------------------------------------


def test_a_dagster_run_of_one_step_lends_its_id_others_derive_one_per_job() -> None:
    dagster_run = str(uuid.uuid4())
    assert step_run(dagster_run, "__ASSET_JOB", JOB, alone=True) == RunRef(dagster_run)
    load = step_run(dagster_run, "full_pipeline", JOB, alone=False)
    build = step_run(
        dagster_run, "full_pipeline", JobRef("headwater", "dbt.build", "DBT"), alone=False
    )
    assert load.run_id != build.run_id != dagster_run
    assert load == step_run(dagster_run, "full_pipeline", JOB, alone=False), "stable"
    assert load.parent is not None and load.parent[0] == dagster_run
    assert load.parent[1].name == "dagster.full_pipeline"
    assert uuid.UUID(step_run(None, None, JOB, alone=True).run_id)
    assert uuid.UUID(step_run("not-a-uuid", "j", JOB, alone=True).run_id)


def test_start_complete_and_fail_events_follow_the_spec() -> None:
    dagster_run = str(uuid.uuid4())
    run = step_run(dagster_run, "full_pipeline", JOB, alone=False)
    when = datetime(2026, 11, 29, 18, 0, 1, 250000, tzinfo=UTC)
    start = run_event("START", run, JOB, event_time=when)
    assert start["eventTime"] == "2026-11-29T18:00:01.250Z"
    assert start["schemaURL"] == RUN_EVENT_SCHEMA
    assert start["run"]["facets"]["parent"]["run"]["runId"] == dagster_run
    assert start["job"]["facets"]["jobType"]["integration"] == "DLT"
    fail = run_event("FAIL", run, JOB, error="x" * 5000)
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert len(message) == 2000
    for event in (start, fail, run_event("COMPLETE", RUN, JOB)):
        assert_valid(event)
        json.dumps(event)


def test_the_schema_rejects_what_the_spec_forbids() -> None:
    inputs, outputs = event_datasets(load_snapshot(), WAREHOUSE)
    good = run_event("COMPLETE", RUN, JOB, inputs=inputs, outputs=outputs)
    assert errors(good) == []

    def broken(change: Any) -> list[str]:
        event = json.loads(json.dumps(good))
        change(event)
        return errors(event)

    assert broken(lambda e: e["run"].update(runId="run-1"))
    assert broken(lambda e: e.update(eventTime="2026-11-29 18:00:00"))
    assert broken(lambda e: e.update(eventType="DONE"))
    assert broken(lambda e: e.pop("schemaURL"))
    assert broken(lambda e: e["outputs"][0]["facets"]["schema"].pop("_producer"))
    assert broken(lambda e: e["outputs"][0]["facets"]["columnLineage"].pop("_schemaURL"))
    assert broken(lambda e: e["inputs"][0].pop("namespace"))
    assert broken(
        lambda e: e["outputs"][0]["facets"]["columnLineage"]["fields"]["id"]["inputFields"][0][
            "transformations"
        ][0].update(type="COPIED")
    )
    assert broken(lambda e: e["job"]["facets"]["jobType"].pop("integration"))


# --- the catalog, read ----------------------------------------------------------------


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    with session_scope(url) as session:
        rows: dict[str, Dataset] = {}
        for name, kind, unique_id, columns in [
            ("source.shop.orders", "source", None, ["id", "total"]),
            ("source.other.orders", "source", None, ["id"]),
            ("raw_shop.orders", "raw", None, ["id", "total"]),
            ("raw_shop.orders__items", "raw", None, ["sku"]),
            ("raw_other.orders", "raw", None, ["id"]),
            ("staging.stg_orders", "staging", "model.p.stg_orders", ["order_id", "total"]),
        ]:
            schema, table = name.rsplit(".", 1)
            rows[name] = Dataset(
                name=name,
                kind=kind,
                schema_name=schema.split(".")[-1],
                table_name=table,
                fqn=None if kind == "source" else f"warehouse.{name}",
                dbt_unique_id=unique_id,
                origin="table orders of postgresql://db/shop" if kind == "source" else None,
                source_kind="database" if kind == "source" else None,
                tags=[],
                columns=[
                    DatasetColumn(name=c, data_type="BIGINT", position=i)
                    for i, c in enumerate(columns, 1)
                ],
            )
            session.add(rows[name])
        session.flush()
        for up, down, origin in [
            ("source.shop.orders", "raw_shop.orders", "dlt"),
            ("source.shop.orders", "raw_shop.orders__items", "dlt"),
            ("source.other.orders", "raw_other.orders", "dlt"),
            ("raw_shop.orders", "staging.stg_orders", "dbt"),
        ]:
            session.add(
                LineageEdge(upstream_id=rows[up].id, downstream_id=rows[down].id, origin=origin)
            )
        for down, down_column, up, up_column, kind in [
            ("raw_shop.orders", "id", "source.shop.orders", "id", "copy"),
            ("staging.stg_orders", "order_id", "raw_shop.orders", "id", "rename"),
            ("staging.stg_orders", None, "raw_shop.orders", "total", "filter"),
        ]:
            session.add(
                ColumnLineage(
                    downstream_id=rows[down].id,
                    downstream_column=down_column,
                    upstream_id=rows[up].id,
                    upstream_column=up_column,
                    kind=kind,
                )
            )
        session.flush()
        yield session


def test_a_loads_outputs_are_the_raw_tables_of_its_source_tables(session: Session) -> None:
    assert load_outputs(session, "shop", ["orders"]) == [
        "raw_shop.orders",
        "raw_shop.orders__items",
    ]
    assert load_outputs(session, "shop", None) == ["raw_shop.orders", "raw_shop.orders__items"]
    assert load_outputs(session, "shop", ["never_loaded"]) == []
    assert build_outputs(session, ["model.p.stg_orders", "model.p.gone"]) == ["staging.stg_orders"]


def test_the_snapshot_holds_the_outputs_and_what_they_read(session: Session) -> None:
    snapshot = read_snapshot(session, ["staging.stg_orders", "not.there"])
    assert snapshot.outputs == ["staging.stg_orders"]
    assert set(snapshot.datasets) == {"staging.stg_orders", "raw_shop.orders"}
    assert snapshot.upstream == {"staging.stg_orders": ["raw_shop.orders"]}
    assert [(e.downstream_column, e.upstream_column, e.kind) for e in snapshot.columns] == [
        (None, "total", "filter"),
        ("order_id", "id", "rename"),
    ]
    assert snapshot.datasets["raw_shop.orders"].columns[1] == CatalogColumn("total", "BIGINT")
    loaded = read_snapshot(session, load_outputs(session, "shop", ["orders"]))
    inputs, outputs = event_datasets(loaded, WAREHOUSE)
    assert [i["name"] for i in inputs] == ["shop.public.orders"]
    assert [o["name"] for o in outputs] == [
        "warehouse.raw_shop.orders",
        "warehouse.raw_shop.orders__items",
    ]
    assert_valid(run_event("COMPLETE", RUN, JOB, inputs=inputs, outputs=outputs))


# --- the emitter ------------------------------------------------------------------------


EVENT = run_event("START", RUN, JOB)


@pytest.fixture(autouse=True)
def _endpoints_up() -> Iterator[None]:
    """No endpoint is remembered as down from one test to the next."""
    catalog.emit._down_since.clear()
    yield
    catalog.emit._down_since.clear()


def test_nothing_is_emitted_unless_a_destination_is_set(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, openlineage_url="  ", openlineage_file="")
    assert settings.openlineage_url is None and settings.openlineage_file is None
    assert not enabled(settings) and Emitter.from_settings(settings) is None
    relative = Emitter.from_settings(make_settings(tmp_path, openlineage_file="ol/events.jsonl"))
    assert relative is not None and relative.file == tmp_path.resolve() / "ol" / "events.jsonl"


def test_events_are_appended_one_json_line_each(tmp_path: Path) -> None:
    target = tmp_path / "lineage" / "events.jsonl"
    with Emitter(file=target) as emitter:
        assert emitter.emit(EVENT)
        assert emitter.emit(run_event("COMPLETE", RUN, JOB))
    lines = target.read_text().splitlines()
    assert [json.loads(line)["eventType"] for line in lines] == ["START", "COMPLETE"]


def test_an_unwritable_file_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with caplog.at_level(logging.WARNING), Emitter(file=tmp_path / "taken" / "x.jsonl") as e:
        assert e.emit(EVENT) is False
    assert "could not be appended" in caplog.text and "the run goes on" in caplog.text


def test_the_endpoint_gets_the_event_with_the_bearer_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201)

    emitter = Emitter(
        url="http://marquez:5000", api_key="k3y-s3cret", transport=httpx.MockTransport(answer)
    )
    assert emitter.emit(EVENT)
    (request,) = seen
    assert str(request.url) == "http://marquez:5000/api/v1/lineage"
    assert request.headers["Authorization"] == "Bearer k3y-s3cret"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == EVENT
    assert endpoint("https://dh.example/openapi/openlineage/api/v1/lineage").endswith(
        "/openapi/openlineage/api/v1/lineage"
    ), "a URL with a path is used as it is"


def test_a_transient_failure_is_tried_again_a_client_error_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [503, 429, 200]

    def flaky(request: httpx.Request) -> httpx.Response:
        return httpx.Response(answers.pop(0))

    emitter = Emitter(url="http://m/", first_wait=0, transport=httpx.MockTransport(flaky))
    assert emitter.emit(EVENT) and answers == []

    calls: list[int] = []

    def refuses(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json={"error": "bad event"})

    emitter = Emitter(url="http://m/", first_wait=0, transport=httpx.MockTransport(refuses))
    with caplog.at_level(logging.WARNING):
        assert emitter.emit(EVENT) is False
    assert calls == [1] and "answered 400" in caplog.text
    assert emitter.emit(EVENT) is False and calls == [1, 1], "a refusal is not an outage"


def test_a_dead_endpoint_is_logged_without_the_key_and_then_tried_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def dead(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Authorization"])
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    emitter = Emitter(
        url="http://user:pw@127.0.0.1:9/api/v1/lineage?token=abc",
        api_key="k3y-s3cret",
        first_wait=0,
        transport=httpx.MockTransport(dead),
    )
    with caplog.at_level(logging.WARNING):
        assert emitter.emit(EVENT) is False
        assert len(calls) == 3
        assert emitter.emit(EVENT) is False
        assert len(calls) == 4, "once an endpoint failed, one attempt per event"
        again = Emitter(url=emitter.url, first_wait=0, transport=httpx.MockTransport(dead))
        assert again.emit(EVENT) is False
        assert len(calls) == 5, "for every emitter of this process, for a while"
    assert "Connection refused" in caplog.text and "127.0.0.1:9/api/v1/lineage" in caplog.text
    for secret in ("k3y-s3cret", "pw@", "token=abc"):
        assert secret not in caplog.text
    assert shown("http://u:p@h:1/x?k=v") == "http://h:1/x"
