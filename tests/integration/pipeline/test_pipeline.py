"""The whole sample pipeline, for real: dlt loads, dbt build, catalog refresh.

Runs once into an embedded DuckDB file and once into the local PostgreSQL
(own schema prefix per run, dropped afterwards).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from catalog.models import Dataset, LineageEdge
from catalog.refresh import refresh
from headwater.db import as_utc, session_scope, utcnow
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.runner import run_all
from ingest.sample_data import generate
from orchestration.origins import source_origins
from orchestration.transform import run_dbt
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

SCALE = 0.2


def query(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    if settings.warehouse == "duckdb":
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
            return connection.execute(sql).fetchall()
    engine = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(sa.text(sql))]
    finally:
        engine.dispose()


@pytest.fixture(params=["duckdb", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "duckdb":
        return make_settings(tmp_path, sample_scale=SCALE)
    prefix = request.getfixturevalue("pg_prefix")
    return make_settings(
        tmp_path,
        sample_scale=SCALE,
        warehouse="postgres",
        warehouse_dbname="test",
        schema_prefix=prefix,
    )


def test_sample_pipeline_end_to_end(settings: Settings) -> None:
    generate(settings.sample_dir, scale=SCALE)
    summaries = {s.source: s for s in run_all(settings)}
    assert set(summaries) == {"shop", "web", "marketing", "suppliers"}
    assert summaries["shop"].rows["customers"] == 200
    raw = settings.raw_schema("shop")
    (orders,) = query(settings, f"select count(*) from {raw}.orders")[0]
    assert orders == 1_000

    # A second load reads nothing new for the cursors and duplicates nothing.
    again = {s.source: s for s in run_all(settings)}
    assert again["shop"].total_rows == 0
    assert query(settings, f"select count(*) from {raw}.orders")[0][0] == orders
    web = settings.raw_schema("web")
    events = query(settings, f"select count(*), count(distinct event_id) from {web}.events")[0]
    assert events[0] == events[1] == 4_000

    summary = run_dbt(settings, "build")
    assert summary.statuses.get("success", 0) + summary.statuses.get("pass", 0) > 20
    assert not summary.failures
    marts = settings.warehouse_schema("marts")
    customers = query(settings, f"select count(*), count(distinct email) from {marts}.customers")[0]
    assert customers[0] == customers[1], "duplicate sign-ups are merged into one customer"
    assert 0 < customers[0] < 200
    revenue = query(settings, f"select sum(revenue) from {marts}.daily_revenue")[0][0]
    assert revenue is not None and revenue > 0

    upgrade(settings.metadata_url)
    refreshed = refresh(settings, origins=source_origins(settings))
    assert refreshed.edges > 10
    with session_scope(settings.metadata_url) as session:
        names = set(session.scalars(sa.select(Dataset.name)))
        assert f"{marts}.customers" in names
        assert f"{raw}.orders" in names
        assert "source.shop.orders" in names
        staging_orders = session.scalar(
            sa.select(Dataset).where(
                Dataset.name == f"{settings.warehouse_schema('staging')}.stg_shop__orders"
            )
        )
        assert staging_orders is not None and staging_orders.description
        upstream = session.scalars(
            sa.select(Dataset.name)
            .join(LineageEdge, LineageEdge.upstream_id == Dataset.id)
            .where(LineageEdge.downstream_id == staging_orders.id)
        ).all()
        assert upstream == [f"{raw}.orders"]

        check_dataset_metadata(settings, session)


def check_dataset_metadata(settings: Settings, session: sa.orm.Session) -> None:
    """What the catalog says of each dataset matches the warehouse, dbt and the sources."""
    datasets = {
        d.name: d
        for d in session.scalars(sa.select(Dataset).options(selectinload(Dataset.columns)))
    }
    raw, marts = settings.raw_schema("shop"), settings.warehouse_schema("marts")
    staging = settings.warehouse_schema("staging")
    assert {d.kind for d in datasets.values()} == {
        "source",
        "raw",
        "staging",
        "intermediate",
        "mart",
    }
    database = "warehouse" if settings.warehouse == "duckdb" else settings.warehouse_dbname

    customers = datasets[f"{marts}.customers"]
    (count,) = query(settings, f"select count(*) from {marts}.customers")[0]
    assert customers.row_count == count  # exact, analysed or not
    assert customers.fqn == f"{database}.{marts}.customers"
    assert customers.kind == "mart"
    assert customers.materialization == "table"
    assert customers.raw_sql and "ref('int_customers_deduplicated')" in customers.raw_sql
    assert customers.compiled_sql and "int_customers_deduplicated" in customers.compiled_sql
    assert "{{" not in customers.compiled_sql
    assert customers.last_build_status == "success"
    built = as_utc(customers.last_built_at)
    assert built is not None and utcnow() - built < timedelta(hours=1)
    assert customers.test_results is not None
    assert customers.test_results["fail"] == customers.test_results["error"] == 0
    assert customers.test_results["pass"] >= 6  # column tests and a unit test
    columns = {c.name: c for c in customers.columns}
    assert columns["customer_id"].is_primary_key is True
    assert columns["first_name"].is_primary_key is False
    assert columns["lifetime_value"].tests == ["not_null", "sums_match"]
    assert columns["lifetime_value"].description
    if settings.warehouse == "postgres":
        assert customers.size_bytes and customers.size_bytes > 0
    else:
        assert customers.size_bytes is None

    staging_customers = datasets[f"{staging}.stg_shop__customers"]
    assert (staging_customers.kind, staging_customers.materialization) == ("staging", "view")
    assert staging_customers.row_count is None  # a view: not counted
    assert staging_customers.test_results is not None
    assert staging_customers.test_results["warning"] == ["unique_stg_shop__customers_email"]
    staging_columns = {c.name: c for c in staging_customers.columns}
    assert staging_columns["customer_id"].is_primary_key is True
    assert staging_columns["email"].is_primary_key is False  # its uniqueness only warns

    orders = datasets[f"{raw}.orders"]
    assert (orders.kind, orders.dbt_source, orders.row_count) == ("raw", "shop.orders", 1_000)
    assert orders.fqn == f"{database}.{raw}.orders"
    assert orders.source_kind == "database"
    assert orders.origin == f"table orders of sqlite:///{settings.sample_dir}/shop.db"
    assert [c.name for c in orders.columns if c.is_primary_key] == ["id"]  # dlt's key
    loaded = as_utc(orders.last_loaded_at)
    assert loaded is not None and utcnow() - loaded < timedelta(hours=1)
    assert orders.freshness() == "unknown"  # the sample declares no expectation

    spend = datasets[f"{settings.raw_schema('marketing')}.spend"]
    assert (spend.source_kind, spend.dbt_source) == ("file", "marketing.spend")
    assert spend.origin == f"file {settings.sample_dir}/marketing_spend.csv"
    source_orders = datasets["source.shop.orders"]
    assert (source_orders.kind, source_orders.origin) == ("source", orders.origin)
