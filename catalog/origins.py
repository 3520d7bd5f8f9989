"""Where the raw tables came from, as the catalog is told it.

The catalog does not import ``ingest`` (see ARCHITECTURE.md): the callers that
may (the command line, the Dagster catalog op) describe each declared source
with a :class:`SourceOrigin` and pass them to ``catalog.refresh.refresh``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceOrigin:
    """One declared source: its kind and, per table, where that table is read from.

    Attributes:
        kind: The source kind (``database``, ``file``, ``mongodb``, ``rest_api``).
        tables: Declared table (dlt resource) → where it is read from, e.g.
            ``table customers``, ``query: select …``, ``GET https://api/orders``,
            ``file /data/orders.csv``. Never a credential.
        description: The source's description, if declared.
        default: How a table not listed in ``tables`` is read (a source that loads
            every table it finds); ``{table}`` stands for its name.
    """

    kind: str
    tables: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    default: str | None = None

    def origin_of(self, table: str) -> str | None:
        """Where ``table`` (a dlt resource of this source) is read from."""
        if table in self.tables:
            return self.tables[table]
        return self.default.replace("{table}", table) if self.default else None


@dataclass(frozen=True)
class Flow:
    """Tables a source loads into a destination outside the warehouse (a job's or a
    declared source's ``target``): the catalog shows them as ``destination`` datasets,
    downstream of the source's tables.

    Attributes:
        source: The declared source.
        tables: Its tables (dlt resources) that go there.
        target: The destination's name.
        schema: The schema they land in at the destination.
        by: Who moves them, for people: ``job 7 (Paid orders)`` or ``sources.yml``.
    """

    source: str
    tables: tuple[str, ...]
    target: str
    schema: str
    by: str
