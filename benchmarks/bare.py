"""Baselines: the bare tools doing the same work as Headwater, with no Headwater code.

A plain dlt pipeline over the sample's database and files, written the way the
dlt documentation shows, and a plain `dbt build` on the command line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.sources.sql_database import sql_table
from openpyxl import load_workbook
from pyarrow import csv
from pyarrow import json as pa_json

SHOP_TABLES = ("customers", "products", "orders", "order_items", "payments")


def _flat(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table.rename_columns([n.replace(".", "__") for n in table.column_names])


def bare_dlt_load(sample_dir: Path, warehouse: Path, pipelines_dir: Path) -> int:
    """Load the four sample sources with plain dlt. Returns rows loaded."""
    destination = dlt.destinations.duckdb(credentials=str(warehouse))
    url = f"sqlite:///{sample_dir / 'shop.db'}"
    rows = 0

    def run(name: str, resources: list[Any]) -> None:
        nonlocal rows
        pipeline = dlt.pipeline(
            pipeline_name=f"bare_{name}",
            pipelines_dir=str(pipelines_dir),
            destination=destination,
            dataset_name=f"raw_{name}",
        )
        pipeline.run(resources)
        info = pipeline.last_trace.last_normalize_info
        rows += sum(n for t, n in info.row_counts.items() if not t.startswith("_dlt"))

    run(
        "shop",
        [
            sql_table(
                credentials=url,
                table=t,
                incremental=dlt.sources.incremental("updated_at"),
                backend="pyarrow",
                chunk_size=50_000,
                reflection_level="full_with_precision",
            ).apply_hints(write_disposition="merge", primary_key="id")
            for t in SHOP_TABLES
        ],
    )

    @dlt.resource(name="events", write_disposition="merge", primary_key="event_id")
    def events(
        cursor: Any = dlt.sources.incremental("occurred_at", lag=172800),  # noqa: B008 (dlt idiom)
    ) -> Any:
        yield _flat(pa_json.read_json(sample_dir / "events.jsonl"))

    run("web", [events()])

    @dlt.resource(name="spend", write_disposition="merge", primary_key=["spend_date", "channel"])
    def spend() -> Any:
        for batch in csv.open_csv(sample_dir / "marketing_spend.csv"):
            yield pa.Table.from_batches([batch])

    run("marketing", [spend()])

    @dlt.resource(name="suppliers", write_disposition="replace")
    def suppliers() -> Any:
        book = load_workbook(sample_dir / "suppliers.xlsx", read_only=True)
        sheet = book["suppliers"].iter_rows(values_only=True)
        header = next(sheet)
        yield [dict(zip(header, r, strict=False)) for r in sheet]
        book.close()

    run("suppliers", [suppliers()])
    return rows


def bare_dbt_build(project_dir: Path, env: dict[str, str]) -> None:
    """`dbt build --profiles-dir profiles`, as an analyst runs it."""
    dbt = Path(sys.executable).with_name("dbt")
    subprocess.run(
        [str(dbt), "build", "--profiles-dir", "profiles", "--quiet"],
        cwd=project_dir,
        env={**os.environ, **env},
        check=True,
    )
