"""OpenLineage events of real runs: a load of the sample shop and a ``dbt build`` of the
customers mart, both through the command line's Dagster runs, with the events written
to a JSON-lines file and POSTed to a real HTTP receiver on a free port. Every event is
checked against the OpenLineage rules (``tests/openlineage_schema.py``: a hand-written
schema, since the official one is not available offline; that module says more).

No existing fixture fits: the sample-warehouse fixtures beside this file load and
build with dlt and dbt directly, outside Dagster, where no event is sent. This one
loads the sample (scale 0.05) and builds it through Dagster, as ``headwater pipeline``
does.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from headwater.migrate import upgrade
from headwater.settings import Settings
from ingest.errors import IngestError
from ingest.runner import load_declared
from ingest.sample_data import generate
from ingest.spec import SourceSpec
from orchestration.runs import ingest_recorded, instance, transform_recorded
from tests.conftest import make_settings
from tests.openlineage_schema import assert_valid

pytestmark = pytest.mark.integration

SCALE = 0.05
SOURCES = ("shop", "web", "marketing", "suppliers")
"""The sample's sources, in the order ``ingest/sources.yml`` declares them."""
API_KEY = "ol-test-key-0123456789"


class Receiver:
    """An OpenLineage endpoint: keeps each POST's path, Authorization header and body."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str | None, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                received.append((self.path, self.headers.get("Authorization"), body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def of_job(events: list[dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    return {e["eventType"]: e for e in events if e["job"]["name"] == name}


def dataset(datasets: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = [d for d in datasets if d["name"] == name]
    return found


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Settings:
    home = tmp_path_factory.mktemp("openlineage")
    settings = make_settings(
        home,
        sample_scale=SCALE,
        openlineage_file=str(home / "lineage.jsonl"),
        openlineage_url=receiver.url,
        openlineage_api_key=API_KEY,
    )
    generate(settings.sample_dir, scale=SCALE)
    upgrade(settings.metadata_url)
    for name, spec in load_declared(settings).items():
        ingest_recorded(settings, name, spec)
    transform_recorded(settings)
    return settings


def test_the_file_and_the_endpoint_got_every_event_and_each_follows_the_spec(
    settings: Settings, receiver: Receiver
) -> None:
    assert settings.openlineage_file is not None
    ours = {f"ingest.{name}" for name in SOURCES} | {"dbt.build"}
    events = [e for e in read_events(settings.openlineage_file) if e["job"]["name"] in ours]
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        (job, event_type)
        for job in [*(f"ingest.{name}" for name in SOURCES), "dbt.build"]
        for event_type in ("START", "COMPLETE")
    ]
    for event in events:
        assert_valid(event)
    assert [body for _, _, body in receiver.received if body["job"]["name"] in ours] == events
    assert {(path, auth) for path, auth, _ in receiver.received} == {
        ("/api/v1/lineage", f"Bearer {API_KEY}")
    }
    assert API_KEY not in settings.openlineage_file.read_text()


def test_each_run_is_the_dagster_run_that_did_the_work(settings: Settings) -> None:
    assert settings.openlineage_file is not None
    events = read_events(settings.openlineage_file)
    for job in ("ingest.shop", "dbt.build"):
        start, complete = of_job(events, job)["START"], of_job(events, job)["COMPLETE"]
        run_id = start["run"]["runId"]
        assert complete["run"]["runId"] == run_id
        assert instance(settings).get_run_by_id(run_id) is not None, job


def test_the_load_reads_the_source_tables_and_writes_the_raw_tables(settings: Settings) -> None:
    assert settings.openlineage_file is not None
    complete = of_job(read_events(settings.openlineage_file), "ingest.shop")["COMPLETE"]
    shop = f"sqlite://{settings.sample_dir / 'shop.db'}"
    assert {(i["namespace"], i["name"]) for i in complete["inputs"]} == {
        (shop, table) for table in ("customers", "products", "orders", "order_items", "payments")
    }
    warehouse = f"duckdb://{settings.duckdb_path}"
    assert {o["namespace"] for o in complete["outputs"]} == {warehouse}
    items = dataset(complete["outputs"], "warehouse.raw_shop.order_items")["facets"]
    columns = {f["name"] for f in items["schema"]["fields"]}
    assert {"unit_price", "quantity"} <= columns
    (source,) = items["columnLineage"]["fields"]["unit_price"]["inputFields"]
    assert (source["namespace"], source["name"], source["field"]) == (
        shop,
        "order_items",
        "unit_price",
    )
    assert source["transformations"][0]["subtype"] == "IDENTITY"
    assert set(items["columnLineage"]["fields"]) == {
        c for c in columns if not c.startswith("_dlt_")
    }, "every column the source has, none of dlt's own"


def test_the_build_writes_the_models_with_their_column_lineage(settings: Settings) -> None:
    assert settings.openlineage_file is not None
    events = of_job(read_events(settings.openlineage_file), "dbt.build")
    complete = events["COMPLETE"]
    written = {o["name"] for o in complete["outputs"]}
    assert {
        "warehouse.staging.stg_shop__order_items",
        "warehouse.marts.orders",
        "warehouse.marts.customers",
    } <= written
    read = {i["name"] for i in complete["inputs"]}
    assert "warehouse.raw_shop.order_items" in read
    assert not read & written, "a model built in this run is an output, not an input"

    customers = dataset(complete["outputs"], "warehouse.marts.customers")["facets"]
    ltv = customers["columnLineage"]["fields"]["lifetime_value"]["inputFields"]
    assert {
        (f["name"], f["field"], t["type"], t["subtype"]) for f in ltv for t in f["transformations"]
    } >= {("warehouse.marts.orders", "revenue_amount", "DIRECT", "AGGREGATION")}
    filters = customers["columnLineage"].get("dataset", [])
    assert ("warehouse.marts.orders", "customer_id") in {(f["name"], f["field"]) for f in filters}
    assert "lifetime_value" in {f["name"] for f in customers["schema"]["fields"]}
    assert events["START"]["outputs"] == [], "before the first build the catalog has no models"


def test_a_dead_endpoint_does_not_fail_the_load(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    dead = settings.model_copy(
        update={
            "openlineage_url": f"http://127.0.0.1:{free_port()}",
            "openlineage_file": settings.home_dir / "dead-endpoint.jsonl",
        }
    )
    with caplog.at_level(logging.WARNING, logger="catalog.emit"):
        summary = ingest_recorded(dead, "marketing", load_declared(dead)["marketing"])
    assert summary.total_rows > 0
    assert dead.openlineage_file is not None
    events = read_events(dead.openlineage_file)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"], "the file still got them"
    assert [o["name"] for o in events[0]["outputs"]] == ["warehouse.raw_marketing.spend"], (
        "a START names the outputs the catalog knows from earlier loads"
    )
    assert "could not be sent" in caplog.text and "the run goes on" in caplog.text
    assert API_KEY not in caplog.text


def test_a_failed_load_sends_fail_and_still_fails(settings: Settings, receiver: Receiver) -> None:
    before = len(receiver.received)
    spec = SourceSpec.model_validate(
        {"kind": "file", "tables": {"gone": {"path": str(settings.home_dir / "missing.csv")}}}
    )
    with pytest.raises(IngestError):
        ingest_recorded(settings, "vanished", spec)
    sent = [body for _, _, body in receiver.received[before:]]
    assert [(e["job"]["name"], e["eventType"]) for e in sent] == [
        ("ingest.vanished", "START"),
        ("ingest.vanished", "FAIL"),
    ]
    fail = sent[1]
    assert_valid(fail)
    assert fail["run"]["facets"]["errorMessage"]["message"]
    assert [(i["namespace"], i["name"]) for i in fail["inputs"]] == [
        ("file", str(settings.home_dir / "missing.csv"))
    ]


def test_a_load_into_a_postgres_warehouse_is_named_by_its_server(
    tmp_path: Path, pg_prefix: str
) -> None:
    password = "pg-s3cret-pw"  # the local server trusts 127.0.0.1: any password passes
    settings = make_settings(
        tmp_path,
        sample_scale=SCALE,
        warehouse="postgres",
        warehouse_dbname="test",
        warehouse_password=password,
        schema_prefix=pg_prefix,
        openlineage_file="lineage.jsonl",
    )
    generate(settings.sample_dir, scale=SCALE)
    upgrade(settings.metadata_url)
    ingest_recorded(settings, "marketing", load_declared(settings)["marketing"])
    written = (settings.home_dir / "lineage.jsonl").read_text()
    assert password not in written
    complete = of_job([json.loads(line) for line in written.splitlines()], "ingest.marketing")[
        "COMPLETE"
    ]
    assert_valid(complete)
    (output,) = complete["outputs"]
    assert (output["namespace"], output["name"]) == (
        "postgres://127.0.0.1:5432",
        f"test.{pg_prefix}raw_marketing.spend",
    )
    assert [(i["namespace"], i["name"]) for i in complete["inputs"]] == [
        ("file", str(settings.sample_dir / "marketing_spend.csv"))
    ]
    lineage = output["facets"]["columnLineage"]["fields"]
    assert lineage["channel"]["inputFields"][0]["field"] == "channel"
