"""The whole sample pipeline, for real: dlt loads, dbt build, catalog refresh.

Runs once into an embedded DuckDB file and once into the local PostgreSQL
(own schema prefix per run, dropped afterwards).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from catalog.models import Dataset, LineageEdge
from catalog.refresh import refresh
from headwater.db import session_scope
from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.runner import run_all
from ingest.sample_data import generate
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
    refreshed = refresh(settings)
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
