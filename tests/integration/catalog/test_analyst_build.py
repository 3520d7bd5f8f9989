"""The catalog stays right whoever built the project.

Headwater builds part of the project into its own target folder; then an analyst
adds a model to a copy of the project and runs a plain ``dbt build --profiles-dir
profiles``, whose artifacts land in the project's ``./target``. The refresh that
follows shows the analyst's model, in a schema no layer names, with its
description, owner, tests, exact row count and table lineage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
from headwater.settings import PROJECT_ROOT, Settings
from ingest.runner import run_all
from ingest.sample_data import generate
from orchestration.origins import source_origins
from orchestration.transform import run_dbt
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

SCALE = 0.05
NEW_MODEL = """\
{{ config(schema='reports', materialized='table') }}

with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

final as (

    select
        split_part(email, '@', 2) as email_domain,
        count(*) as signups
    from customers
    group by 1

)

select * from final
"""
NEW_MODEL_YML = """\
models:
  - name: customer_domains
    description: Sign-ups per e-mail domain.
    config:
      tags: ["analyst"]
      meta:
        owner: analyst@example.com
    columns:
      - name: email_domain
        description: The part of the address after the @.
        data_tests: [unique, not_null]
      - name: signups
        description: Sign-ups with an address at this domain.
"""
FRESHNESS = """\
    config:
      freshness:
        warn_after: {count: 1, period: day}
        error_after: {count: 2, period: day}
"""


def copy_project(target: Path) -> Path:
    """The dbt project (models, macros, profiles) in a folder of its own."""
    target.mkdir()
    shutil.copy(PROJECT_ROOT / "dbt_project.yml", target)
    for folder in ("models", "macros", "profiles"):
        shutil.copytree(PROJECT_ROOT / folder, target / folder)
    return target


def analyst_dbt_build(settings: Settings, selector: str) -> None:
    """``dbt build --profiles-dir profiles`` in the project folder, as an analyst runs it:
    no Headwater code, dbt's own default target folder (``./target``)."""
    env = {**os.environ, **settings.tool_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for variable in ("DBT_TARGET_PATH", "DBT_PROFILES_DIR", "DBT_PROJECT_DIR"):
        env.pop(variable, None)
    dbt = Path(sys.executable).parent / "dbt"
    finished = subprocess.run(
        # cautious: only tests whose every parent is selected (the rest was never built)
        [
            *(str(dbt), "build", "--profiles-dir", "profiles", "--select", selector),
            *("--indirect-selection", "cautious"),
        ],
        cwd=settings.project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    root = tmp_path_factory.mktemp("analyst")
    project = copy_project(root / "project")
    settings = make_settings(root / "home", sample_scale=SCALE, project_dir=project)
    generate(settings.sample_dir, scale=SCALE)
    run_all(settings, ["shop"])
    # Headwater's own run, into HEADWATER_HOME: one staging model.
    run_dbt(settings, "run", "stg_shop__customers")

    # The analyst's change: a new model, and an expectation of the shop's freshness
    # (orders judged by their own updated_at, the rest by the last load).
    reports = project / "models" / "reports"
    reports.mkdir()
    (reports / "customer_domains.sql").write_text(NEW_MODEL)
    (reports / "_reports__models.yml").write_text(NEW_MODEL_YML)
    sources = project / "models" / "staging" / "shop" / "_shop__sources.yml"
    text = sources.read_text()
    text = text.replace("  - name: shop\n", "  - name: shop\n" + FRESHNESS, 1)
    text = text.replace(
        "      - name: orders\n",
        "      - name: orders\n        config:\n          loaded_at_field: updated_at\n",
        1,
    )
    sources.write_text(text)
    analyst_dbt_build(settings, "+customer_domains")
    assert (project / "target" / "manifest.json").exists()

    upgrade(settings.metadata_url)
    refresh(settings, origins=source_origins(settings))
    yield settings


def catalogued(settings: Settings) -> dict[str, Dataset]:
    with session_scope(settings.metadata_url) as session:
        datasets = session.scalars(sa.select(Dataset).options(selectinload(Dataset.columns)))
        found = {d.name: d for d in datasets}
        session.expunge_all()
    return found


def upstream_of(settings: Settings, name: str) -> list[str]:
    with session_scope(settings.metadata_url) as session:
        target = session.scalar(sa.select(Dataset.id).where(Dataset.name == name))
        return sorted(
            session.scalars(
                sa.select(Dataset.name)
                .join(LineageEdge, LineageEdge.upstream_id == Dataset.id)
                .where(LineageEdge.downstream_id == target)
            )
        )


def test_the_analysts_new_model_is_catalogued_with_its_lineage(analysed: Settings) -> None:
    datasets = catalogued(analysed)
    model = datasets["reports.customer_domains"]  # a schema no layer names
    assert model.kind == "model"
    assert model.description == "Sign-ups per e-mail domain."
    assert (model.owner, model.tags, model.materialization) == (
        "analyst@example.com",
        ["analyst"],
        "table",
    )
    assert model.fqn == "warehouse.reports.customer_domains"
    with duckdb.connect(str(analysed.duckdb_path), read_only=True) as connection:
        [(count,)] = connection.execute("select count(*) from reports.customer_domains").fetchall()
    assert model.row_count == count > 0
    assert model.compiled_sql and '"staging"."stg_shop__customers"' in model.compiled_sql
    assert model.raw_sql == NEW_MODEL.strip()
    assert model.last_build_status == "success"
    assert model.test_results is not None
    assert (model.test_results["pass"], model.test_results["fail"]) == (2, 0)
    columns = {c.name: c for c in model.columns}
    assert columns["email_domain"].description == "The part of the address after the @."
    assert columns["email_domain"].tests == ["not_null", "unique"]
    assert columns["email_domain"].is_primary_key is True
    assert columns["signups"].is_primary_key is False
    assert upstream_of(analysed, "reports.customer_domains") == ["staging.stg_shop__customers"]
    assert upstream_of(analysed, "staging.stg_shop__customers") == ["raw_shop.customers"]


def test_each_node_shows_its_newest_build(analysed: Settings) -> None:
    """Built by Headwater first, then again by the analyst: the analyst's build counts."""
    datasets = catalogued(analysed)
    staging = datasets["staging.stg_shop__customers"]
    built = as_utc(staging.last_built_at)
    assert built is not None
    headwater_results = analysed.dbt_target_dir / "run_results.json"
    analyst_results = analysed.project_dir / "target" / "run_results.json"
    assert headwater_results.stat().st_mtime < analyst_results.stat().st_mtime
    assert built.timestamp() > headwater_results.stat().st_mtime


def test_freshness_is_judged_against_the_sources_expectation(analysed: Settings) -> None:
    datasets = catalogued(analysed)
    customers = datasets["raw_shop.customers"]
    assert customers.dbt_source == "shop.customers"
    assert (customers.freshness_warn_after, customers.freshness_error_after) == (86_400, 172_800)
    loaded = as_utc(customers.last_loaded_at)
    assert loaded is not None and utcnow() - loaded < timedelta(hours=1)
    assert customers.freshness() == "fresh"  # loaded minutes ago, by the last load
    orders = datasets["raw_shop.orders"]
    # By its loaded_at_field: the sample's updates stopped long before today's load.
    as_of = as_utc(orders.fresh_as_of)
    assert as_of is not None and utcnow() - as_of > timedelta(days=2)
    assert as_of != as_utc(orders.last_loaded_at)
    assert orders.freshness() == "stale"
    assert datasets["raw_shop.orders"].origin == (
        f"table orders of sqlite:///{analysed.sample_dir}/shop.db"
    )
    assert datasets["staging.stg_shop__customers"].freshness() == "unknown"
