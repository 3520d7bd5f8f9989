"""Loads cut short and samples replaced: nothing stale stays in the raw tables."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from headwater.cli import main
from ingest.destinations import warehouse
from ingest.runner import pipeline, run_source
from ingest.sample_data import write_database
from ingest.sources import build_resources
from ingest.spec import parse_sources
from tests.conftest import make_settings

pytestmark = pytest.mark.integration


def test_a_load_cut_short_is_finished_before_new_data_is_read(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    write_database(url, scale=0.05)
    text = f"sources:\n  shop:\n    kind: database\n    connection: {url}\n    tables:\n"
    text += "      orders: {write_disposition: merge, primary_key: id, cursor: updated_at}\n"
    source = parse_sources(text, env={}).sources["shop"]
    # Extracted and normalized, never loaded: as when a load gave up waiting for the file.
    pipe = pipeline(settings, "shop", source, warehouse(settings))
    pipe.extract(build_resources(source))
    pipe.normalize()
    assert pipe.has_pending_data

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("update orders set status = 'returned', updated_at = '2031-01-01' where id = 7")
        )
    engine.dispose()
    summary = run_source(settings, "shop", source)
    assert summary.rows == {"orders": 1}, "the new change was read, not skipped"
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        rows = connection.execute("select count(*) from raw_shop.orders").fetchone()
        status = connection.execute("select status from raw_shop.orders where id = 7").fetchone()
    assert rows == (250,)
    assert status == ("returned",)


def test_a_replaced_sample_is_reloaded_in_full_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headwater.settings import get_settings

    def cli(*args: str) -> str:
        get_settings.cache_clear()  # each command is a new process in real life
        result = CliRunner().invoke(main, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path))
    monkeypatch.setenv("HEADWATER_SAMPLE_SCALE", "0.02")
    cli("init")
    assert "full refresh" not in cli("ingest")

    monkeypatch.setenv("HEADWATER_SAMPLE_SCALE", "0.01")
    cli("init")
    partial = cli("ingest", "web")  # only one of the sample sources: still pending for others
    assert "ingest web → raw_web (full refresh)" in partial
    everything = cli("ingest")
    assert "ingest shop → raw_shop (full refresh)" in everything
    assert "full refresh" not in cli("ingest"), "the reload happens once"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as connection:
        customers = connection.execute("select count(*) from raw_shop.customers").fetchone()
    assert customers == (10,), "only the new sample's customers remain"


def test_a_regenerated_sample_is_reloaded_in_full_by_whichever_run_comes_first(
    tmp_path: Path,
) -> None:
    from ingest.reloads import reload_marker, sample_replaced
    from ingest.runner import load_declared, run_all
    from ingest.sample_data import generate

    settings = make_settings(tmp_path)
    generate(settings.sample_dir, scale=0.05)
    run_all(settings)
    generate(settings.sample_dir, scale=0.02)  # fewer customers: the old ones must go
    sample_replaced(settings)

    declared = load_declared(settings)
    # A scheduled run of one source (not the command line): a full refresh, once.
    first = run_source(settings, "shop", declared["shop"])
    assert first.rows["customers"] == 20
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        count = connection.execute("select count(*) from raw_shop.customers").fetchone()
    assert count == (20,)
    assert reload_marker(settings).read_text().split() == ["shop"]
    assert run_source(settings, "shop", declared["shop"]).rows["customers"] == 0

    for name in ("web", "marketing", "suppliers"):
        run_source(settings, name, declared[name])
    assert not reload_marker(settings).exists()
