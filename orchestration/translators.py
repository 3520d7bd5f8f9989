"""Asset keys in one place: dlt assets get the very keys dbt's ``source()`` produce.

dagster-dbt names a dbt source table ``[source_name, table_name]``; the dbt
sources are named after the declared Headwater sources, so the raw table that
dlt loads for source ``shop``, table ``orders`` is ``["shop", "orders"]`` on both
sides and the graph is connected from raw table to mart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster import AssetKey
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings


def raw_asset_key(source: str, table: str) -> AssetKey:
    """The asset key of the warehouse table dlt loads from ``source``.``table``."""
    return AssetKey([source, table])


class HeadwaterDbtTranslator(DagsterDbtTranslator):
    """dbt models grouped by layer (staging, intermediate, marts); tests become asset checks."""

    def __init__(self) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props.get("resource_type") == "source":
            return "raw"
        fqn = dbt_resource_props.get("fqn") or []
        # fqn is [project, folder, ...]: the first folder is the layer.
        return str(fqn[1]) if len(fqn) > 2 else "default"
