from __future__ import annotations

from collections import Counter

import pytest

from ingest.sample_data import SampleCounts, ShopGenerator

pytestmark = pytest.mark.unit


def test_same_seed_same_data_and_scale_grows_rows() -> None:
    a, b = ShopGenerator(0.2, seed=7), ShopGenerator(0.2, seed=7)
    assert list(a.customers()) == list(b.customers())
    assert list(a.payments()) == list(b.payments())
    assert SampleCounts.for_scale(2).orders == 2 * SampleCounts.for_scale(1).orders


def test_data_is_realistically_messy() -> None:
    generator = ShopGenerator(1)
    customers = list(generator.customers())
    by_email = Counter(c["email"].lower() for c in customers)
    duplicates = [e for e, n in by_email.items() if n > 1]
    assert duplicates, "some customers sign up twice"
    cased = {c["email"] for c in customers if c["email"].lower() in duplicates}
    assert any(e != e.lower() for e in cased), "duplicates differ in case"
    assert any(c["country"] is None for c in customers)
    assert any(c["updated_at"] > c["created_at"] for c in customers)
    events = list(generator.events())
    times = [e["occurred_at"] for e in events]
    assert times != sorted(times), "some events arrive late"
    payments = list(generator.payments())
    assert any(p["status"] == "failed" for p in payments)


def test_order_items_reference_existing_orders_and_products() -> None:
    generator = ShopGenerator(0.1)
    counts = generator.counts
    items = list(generator.order_items())
    assert {i["order_id"] for i in items} == set(range(1, counts.orders + 1))
    assert all(1 <= i["product_id"] <= counts.products for i in items)
