"""Schema history: the difference between a dataset's last known columns and its columns
now, as events (pure functions; the refresh stores them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ADDED, REMOVED, RENAMED, TYPE_CHANGED = "added", "removed", "renamed", "type_changed"
DATASET_ADDED, DATASET_REMOVED = "dataset_added", "dataset_removed"
CHANGES = (ADDED, REMOVED, RENAMED, TYPE_CHANGED, DATASET_ADDED, DATASET_REMOVED)


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str
    position: int


@dataclass(frozen=True)
class Change:
    change: str
    column: str | None = None
    """The column now (for ``removed``: the column that was)."""
    old_name: str | None = None
    """For ``renamed``."""
    old_type: str | None = None
    new_type: str | None = None


def diff_columns(old: Sequence[Column], new: Sequence[Column]) -> list[Change]:
    """What changed from ``old`` to ``new``.

    A rename is a best guess: one column gone and one new in its place (same position,
    same type) when nothing else explains them.
    """
    before = {c.name: c for c in old}
    after = {c.name: c for c in new}
    changes: list[Change] = []
    for name, column in after.items():
        previous = before.get(name)
        if previous is not None and previous.data_type != column.data_type:
            changes.append(Change(TYPE_CHANGED, name, None, previous.data_type, column.data_type))
    gone = [c for name, c in before.items() if name not in after]
    new_ones = [c for name, c in after.items() if name not in before]
    renamed: set[str] = set()
    for column in gone:
        twins = [
            c
            for c in new_ones
            if c.name not in renamed
            and c.position == column.position
            and c.data_type == column.data_type
        ]
        if len(twins) == 1:
            renamed.add(twins[0].name)
            changes.append(Change(RENAMED, twins[0].name, column.name, None, column.data_type))
        else:
            changes.append(Change(REMOVED, column.name, None, column.data_type, None))
    changes += [
        Change(ADDED, c.name, None, None, c.data_type) for c in new_ones if c.name not in renamed
    ]
    order = {c: i for i, c in enumerate(CHANGES)}
    return sorted(changes, key=lambda c: (order[c.change], c.column or ""))
