"""The result cache key of an ad hoc query (catalog.queries.service.cache_key)."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.queries.service import cache_key
from catalog.queries.validate import validate
from tests.unit.catalog.test_query_validation import KNOWN

pytestmark = pytest.mark.unit

SQL = "select order_id from marts.orders where amount > $n"


def key(sql: str = SQL, role: str = "viewer", version: str = "v1", **params: Any) -> str:
    query = validate(sql, KNOWN, engine="duckdb", params=params or {"n": 1})
    return cache_key(role, query, params or {"n": 1}, version)


def test_whitespace_case_and_comments_share_a_key() -> None:
    same = "SELECT order_id\n  FROM marts.orders -- paid ones\n WHERE amount>$n"
    assert key(same) == key()


def test_role_data_version_and_limit_each_change_the_key() -> None:
    assert key(role="admin") != key()
    assert key(version="v2") != key()
    limited = validate(SQL, KNOWN, engine="duckdb", params={"n": 1}, limit=5)
    assert cache_key("viewer", limited, {"n": 1}, "v1") != key()


@pytest.mark.parametrize(
    ("one", "other"),
    [(1, True), (1, 1.0), (1, "1"), (0.0, -0.0), (None, "None"), (0, False)],
)
def test_equal_but_different_values_never_share_a_key(one: object, other: object) -> None:
    """1 == True == 1.0 in Python, yet each binds differently: a shared key would hand
    one query's cached answer to the other."""
    assert key(n=one) != key(n=other)
    assert key(n=one) == key(n=one)  # and each is stable
