"""Column lineage of a whole project, incrementally: which models to (re)analyse and the
column edges of the loads.

Pure functions over what the refresh collected; the analysis itself is
``catalog.lineage``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from catalog.lineage import COPY, ColumnEdge, QueryLineage, Tables, fingerprint, query_lineage
from catalog.lineage import make_schema as _make_schema

DLT_COLUMNS_PREFIX = "_dlt_"
"""dlt's own bookkeeping columns: no column in the source feeds them."""


@dataclass(frozen=True)
class ModelQuery:
    """A model the warehouse holds, with the SQL that builds it."""

    dataset: str
    """The relation, ``schema.table``."""
    sql: str | None
    """Compiled SQL; None when no build or compile has compiled it yet."""
    upstream: tuple[str, ...] = ()
    """The relations it reads (dbt's ``depends_on``, through ephemeral models)."""


@dataclass
class ModelAnalysis:
    fingerprint: str
    lineage: QueryLineage = field(default_factory=QueryLineage)


NOT_COMPILED = "no compiled SQL yet: run `dbt build` or `dbt compile`"


def analyse(
    models: Iterable[ModelQuery],
    tables: Tables,
    dialect: str,
    previous: Mapping[str, str],
) -> dict[str, ModelAnalysis]:
    """Analyse the models whose SQL or upstream schema changed since ``previous``
    (dataset → fingerprint); the others are left out of the result: keep what they had.
    """
    changed: dict[str, ModelAnalysis] = {}
    schema = None
    for model in models:
        if model.sql is None:
            key = "not compiled"
            if previous.get(model.dataset) != key:
                changed[model.dataset] = ModelAnalysis(
                    key, QueryLineage(unresolved={"*": NOT_COMPILED})
                )
            continue
        key = fingerprint(model.sql, [(name, tables.get(name, {})) for name in model.upstream])
        if previous.get(model.dataset) == key:
            continue
        if schema is None:
            schema = _make_schema(tables, dialect)  # only when something must be analysed
        changed[model.dataset] = ModelAnalysis(key, query_lineage(model.sql, schema, dialect))
    return changed


def load_edges(
    loads: Iterable[tuple[str, str]],
    tables: Tables,
    original_names: Mapping[tuple[str, str], str] | None = None,
) -> list[tuple[str, ColumnEdge]]:
    """``(raw table, edge)`` from each column of the source table to the raw column dlt
    loaded it into: a copy, or a rename when the warehouse normalised the name.

    ``loads`` yields ``(source dataset, raw table)``; ``original_names`` maps
    ``(raw table, column)`` to the source's spelling when it differs.
    """
    names = original_names or {}
    out = []
    for source, raw in loads:
        for column in tables.get(raw, {}):
            if column.startswith(DLT_COLUMNS_PREFIX):
                continue
            original = names.get((raw, column), column)
            kind = COPY if original == column else "rename"
            out.append((raw, ColumnEdge(column, source, original, kind)))
    return out
