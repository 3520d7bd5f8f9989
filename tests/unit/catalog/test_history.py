"""Schema diffs between two snapshots of a dataset's columns."""

from __future__ import annotations

from catalog.history import Change, Column, diff_columns

OLD = [
    Column("id", "bigint", 1),
    Column("amount", "decimal(18,2)", 2),
    Column("status", "varchar", 3),
    Column("note", "varchar", 4),
]


def test_nothing_changed_is_no_event() -> None:
    assert diff_columns(OLD, list(OLD)) == []


def test_added_removed_and_type_changed_columns() -> None:
    new = [
        Column("id", "bigint", 1),
        Column("amount", "double", 2),
        Column("status", "varchar", 3),
        Column("paid_at", "timestamp", 5),
    ]
    assert diff_columns(OLD, new) == [
        Change("added", "paid_at", new_type="timestamp"),
        Change("removed", "note", old_type="varchar"),
        Change("type_changed", "amount", old_type="decimal(18,2)", new_type="double"),
    ]


def test_a_column_replaced_in_place_by_one_of_the_same_type_is_a_rename() -> None:
    new = [*OLD[:3], Column("comment", "varchar", 4)]
    assert diff_columns(OLD, new) == [
        Change("renamed", "comment", old_name="note", new_type="varchar")
    ]


def test_no_rename_is_guessed_when_the_type_or_the_place_differs() -> None:
    moved = [*OLD[:3], Column("comment", "varchar", 9)]
    assert {c.change for c in diff_columns(OLD, moved)} == {"added", "removed"}
    retyped = [*OLD[:3], Column("comment", "bigint", 4)]
    assert {c.change for c in diff_columns(OLD, retyped)} == {"added", "removed"}
