"""Column lineage of the sample project, end to end: real loads, a real ``dbt build``, a
real refresh, then the graph read back through the catalog functions, the API and
the command line; schema changes recorded with their downstream impact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from litestar import Litestar
from litestar.testing import TestClient

from catalog.graph import Graph, column_graph, resolve
from catalog.models import LineageAnalysis, SchemaEvent
from catalog.refresh import refresh
from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.runner import run_all
from ingest.sample_data import generate
from orchestration.origins import source_origins
from orchestration.transform import run_dbt
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

SCALE = 0.05
LTV = "marts.customers.lifetime_value"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = make_settings(tmp_path_factory.mktemp("lineage"), sample_scale=SCALE)
    generate(settings.sample_dir, scale=SCALE)
    upgrade(settings.metadata_url)
    run_all(settings)
    run_dbt(settings, "build")
    first = refresh(settings, origins=source_origins(settings))
    assert first.analysed == 15 and first.unresolved == 0, first
    assert first.schema_changes == 0, "the first refresh is a baseline, not 30 changes"
    return settings


def walk(settings: Settings, target: str, direction: str, **options: Any) -> Graph:
    with session_scope(settings.metadata_url) as session:
        dataset, column = resolve(session, target)
        return column_graph(session, dataset, column, direction, 10, **options)  # type: ignore[arg-type]


def reached(graph: Graph, direction: str) -> set[tuple[str, str | None, str]]:
    names = {n.id: n.name for n in graph.nodes}
    if direction == "up":
        return {(names[e.upstream_id], e.upstream_column, e.kind) for e in graph.columns}
    return {(names[e.downstream_id], e.downstream_column, e.kind) for e in graph.columns}


def test_a_mart_column_traces_back_to_the_source_columns_it_is_computed_from(
    settings: Settings,
) -> None:
    up = reached(walk(settings, LTV, "up", filters=False), "up")
    assert ("marts.orders", "revenue_amount", "aggregate") in up
    assert ("staging.stg_shop__order_items", "line_amount", "aggregate") in up
    assert ("raw_shop.order_items", "unit_price", "transform") in up
    # dlt loaded the source column as it was: a copy, the last step up.
    assert ("source.shop.order_items", "unit_price", "copy") in up
    assert ("source.shop.order_items", "quantity", "copy") in up
    # Values only: the join keys that pick the rows are not sources of the value.
    assert {kind for _, _, kind in up} <= {"copy", "rename", "transform", "aggregate"}
    assert not any(name == "source.shop.customers" for name, _, _ in up)

    with_filters = reached(walk(settings, LTV, "up"), "up")
    assert ("marts.orders", "customer_id", "filter") in with_filters


def test_impact_of_a_source_column_reaches_every_mart_column_built_from_it(
    settings: Settings,
) -> None:
    down = reached(walk(settings, "source.shop.order_items.unit_price", "down"), "down")
    assert ("raw_shop.order_items", "unit_price", "copy") in down
    assert ("staging.stg_shop__order_items", "unit_price", "transform") in down
    assert ("marts.customers", "lifetime_value", "aggregate") in down
    assert ("marts.products_performance", "revenue", "aggregate") in down
    # A copied id that is only a join key reaches the whole of the datasets it filters.
    keys = reached(walk(settings, "raw_shop.orders.id", "down"), "down")
    assert ("staging.stg_shop__orders", "order_id", "transform") in keys
    assert any(column is None and kind == "filter" for _, column, kind in keys)


def test_the_api_walks_the_same_graph_by_ids(settings: Settings) -> None:
    from api.app import create_app
    from api.users.services import create_user_with_password

    with session_scope(settings.metadata_url) as session:
        create_user_with_password(
            session, "lineage@example.com", "a long enough password", "viewer"
        )
    with TestClient[Litestar](app=create_app(settings)) as client:
        token = client.post(
            "/api/auth/login",
            json={"email": "lineage@example.com", "password": "a long enough password"},
        ).json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        found = client.get(
            "/api/catalog/datasets", params={"search": "customers", "kind": "mart"}, headers=headers
        ).json()["items"]
        customers = next(d for d in found if d["name"] == "marts.customers")
        up = client.get(
            f"/api/catalog/datasets/{customers['id']}/lineage",
            params={"column": "lifetime_value", "depth": 10},
            headers=headers,
        )
        assert up.status_code == 200, up.text
        graph = up.json()
        ids = {n["name"]: n["id"] for n in graph["nodes"]}
        # marts.orders ← int_orders_totals ← stg_shop__order_items ← raw: the 4th step.
        assert {
            "upstreamId": ids["raw_shop.order_items"],
            "upstreamColumn": "unit_price",
            "downstreamId": ids["staging.stg_shop__order_items"],
            "downstreamColumn": "line_amount",
            "kind": "transform",
            "depth": 4,
        } in graph["columns"]

        tables = client.get(
            f"/api/catalog/datasets/{customers['id']}/lineage",
            params={"direction": "up", "depth": 1},
            headers=headers,
        ).json()
        assert {e["upstreamId"] for e in tables["tables"]} == {
            ids["marts.orders"],
            ids["intermediate.int_customers_deduplicated"],
        }
        assert tables["truncated"] is True

        raw = ids["raw_shop.order_items"]
        impact = client.get(
            f"/api/catalog/datasets/{raw}/impact", params={"column": "unit_price"}, headers=headers
        ).json()
        assert {"marts.customers", "marts.products_performance"} <= {
            i["dataset"] for i in impact["items"]
        }
        ltv = next(i for i in impact["items"] if i["dataset"] == "marts.customers")
        assert (ltv["column"], ltv["via"]) == ("lifetime_value", ["aggregate"])

        missing = client.get(
            f"/api/catalog/datasets/{raw}/impact", params={"column": "nope"}, headers=headers
        )
        assert missing.status_code == 404
        assert "no column 'nope'" in missing.json()["error"]["message"]


def test_the_command_line_prints_the_tree(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.cli import main
    from headwater.settings import get_settings

    monkeypatch.setenv("HEADWATER_HOME", str(settings.home_dir))
    get_settings.cache_clear()
    result = CliRunner().invoke(main, ["lineage", LTV, "--up", "--depth", "8"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == LTV
    assert any("aggregate marts.orders.revenue_amount" in line for line in lines)
    assert any("copy source.shop.order_items.unit_price" in line for line in lines)
    unknown = CliRunner().invoke(main, ["lineage", "marts.customers.nope"])
    assert unknown.exit_code == 1
    assert "marts.customers has no column 'nope'" in unknown.output
    assert "its columns: country_code, customer_id" in unknown.output


@pytest.fixture
def changed_source(settings: Settings) -> Iterator[None]:
    raw = settings.raw_schema("shop")
    with duckdb.connect(str(settings.duckdb_path)) as connection:
        connection.execute(f"alter table {raw}.order_items alter unit_price type double")
        connection.execute(f"alter table {raw}.order_items add column coupon varchar")
    yield


def test_a_source_schema_change_is_recorded_with_its_downstream_impact(
    settings: Settings, changed_source: None
) -> None:
    with session_scope(settings.metadata_url) as session:
        before = session.scalar(sa.select(sa.func.count()).select_from(LineageAnalysis))
    again = refresh(settings, origins=source_origins(settings))
    # Only the model reading the changed table is analysed again.
    assert again.analysed == 1, again
    assert again.schema_changes >= 2
    with session_scope(settings.metadata_url) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(LineageAnalysis)) == before
        events = {
            (e.dataset, e.change, e.column): e
            for e in session.scalars(sa.select(SchemaEvent).order_by(SchemaEvent.id))
        }
    retyped = events[("raw_shop.order_items", "type_changed", "unit_price")]
    assert retyped.new_type == "double" and retyped.old_type.startswith("decimal")
    impacted = {(i["dataset"], i["column"]) for i in retyped.impact}
    assert ("marts.customers", "lifetime_value") in impacted
    assert ("staging.stg_shop__order_items", "line_amount") in impacted
    added = events[("raw_shop.order_items", "added", "coupon")]
    assert added.impact == []

    # Nothing changed since: nothing analysed, nothing recorded.
    quiet = refresh(settings, origins=source_origins(settings))
    assert (quiet.analysed, quiet.schema_changes) == (0, 0)

    # The history, through the API: newest first, with the impact.
    from api.app import create_app
    from api.users.services import create_user_with_password

    with session_scope(settings.metadata_url) as session:
        create_user_with_password(session, "history@example.com", "a long enough password", "user")
    with TestClient[Litestar](app=create_app(settings)) as client:
        token = client.post(
            "/api/auth/login",
            json={"email": "history@example.com", "password": "a long enough password"},
        ).json()["accessToken"]
        headers = {"Authorization": f"Bearer {token}"}
        page = client.get(
            "/api/catalog/schema-changes",
            params={"datasetId": retyped.dataset_id, "change": "type_changed"},
            headers=headers,
        )
        assert page.status_code == 200, page.text
        (item,) = page.json()["items"]
        assert (item["dataset"], item["column"], item["newType"]) == (
            "raw_shop.order_items",
            "unit_price",
            "double",
        )
        assert any(
            (i["dataset"], i["column"]) == ("marts.customers", "lifetime_value")
            for i in item["impact"]
        )
        unknown = client.get(
            "/api/catalog/schema-changes", params={"datasetId": 99999}, headers=headers
        )
        assert unknown.status_code == 404
