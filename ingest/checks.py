"""Checks a source must pass before a load: the columns its tables name exist.

A wrong cursor or primary-key column would otherwise pass the connection check
and fail the load later, with a message about dlt's internals. Pure functions:
the source kinds read the column names, these compare them.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.spec import TableSpec


def _suggestion(name: str, columns: Sequence[str]) -> str:
    by_case = [column for column in columns if column.lower() == name.lower()]
    close = by_case or difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def column_problems(table: str, spec: TableSpec, columns: Sequence[str]) -> list[str]:
    """What the cursor and the primary key of ``table`` name that ``columns`` lacks.

    Each problem says which setting names the column and the closest existing one.
    """
    present = set(columns)
    wanted = [("cursor", spec.cursor)] if spec.cursor else []
    wanted += [("primary_key", key) for key in spec.primary_key]
    wanted += [("columns", column) for column in spec.columns or ()]
    problems = []
    for setting, column in wanted:
        if column not in present:
            problems.append(
                f"table {table!r}: no column {column!r} for its {setting}"
                f"{_suggestion(column, columns)}"
            )
    return problems
