"""Deterministic sample data for an online shop, with a scale knob.

The operational database (customers, products, orders, order items, payments)
goes to any SQLAlchemy URL: a SQLite file for the embedded shape, PostgreSQL or
MySQL for tests and benchmarks. Files go beside it: a CSV of marketing spend, a
JSONL web event log and an Excel workbook of suppliers.

The data is a little messy on purpose: missing values, customers who signed up
twice with differently cased e-mail addresses, rows updated after creation
(``updated_at`` later than ``created_at``) and events that arrive late (out of
order in the log).

Scale 1 is a laptop demo (1,000 customers, 5,000 orders); row counts grow
linearly with the scale. The same ``seed`` and ``scale`` always give the same
data.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    func,
    inspect,
    select,
)

from headwater.db import normalize_url
from ingest.errors import IngestError

SHOP_TABLES = ("customers", "products", "orders", "order_items", "payments")
EPOCH = datetime(2025, 1, 1)
DAYS = 365
BATCH = 5_000

FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dmitri",
    "Elif",
    "Farah",
    "Goran",
    "Hana",
    "Ivan",
    "Jana",
    "Kofi",
    "Lena",
    "Mateo",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Vera",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zoe",
]
LAST_NAMES = [
    "Almeida",
    "Becker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Horvat",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Rossi",
    "Santos",
    "Tanaka",
    "Unger",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
]
COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "PL", "SE", "US", "GB", None)
CATEGORIES = ("apparel", "footwear", "accessories", "home", "outdoor")
ORDER_STATUSES = (
    "placed",
    "shipped",
    "completed",
    "completed",
    "completed",
    "returned",
    "cancelled",
)
PAYMENT_METHODS = ("card", "card", "paypal", "bank_transfer", "gift_card")
CHANNELS = ("search", "social", "email", "affiliate", "display")
EVENT_TYPES = ("page_view", "page_view", "page_view", "add_to_cart", "checkout", "purchase")


@dataclass(frozen=True)
class SampleCounts:
    customers: int
    products: int
    suppliers: int
    orders: int
    events: int

    @classmethod
    def for_scale(cls, scale: float) -> SampleCounts:
        def n(base: int, minimum: int) -> int:
            return max(minimum, round(base * scale))

        return cls(
            customers=n(1_000, 10),
            products=n(200, 5),
            suppliers=n(20, 2),
            orders=n(5_000, 20),
            events=n(20_000, 50),
        )


def shop_metadata() -> MetaData:
    """The operational database's tables, portable across SQLite, PostgreSQL and MySQL."""
    metadata = MetaData()
    Table(
        "customers",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("first_name", String(100)),
        Column("last_name", String(100)),
        Column("email", String(255), nullable=False),
        Column("country", String(2)),
        Column("created_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "products",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("sku", String(32), nullable=False),
        Column("name", String(200), nullable=False),
        Column("category", String(50)),
        Column("price", Numeric(10, 2), nullable=False),
        Column("supplier_id", Integer),
        Column("is_active", Boolean, nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "orders",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("customer_id", Integer, nullable=False),
        Column("status", String(20), nullable=False),
        Column("ordered_at", DateTime, nullable=False),
        Column("shipping_country", String(2)),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "order_items",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("order_id", Integer, nullable=False),
        Column("product_id", Integer, nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("unit_price", Numeric(10, 2), nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "payments",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("order_id", Integer, nullable=False),
        Column("method", String(20), nullable=False),
        Column("status", String(20), nullable=False),
        Column("amount", Numeric(10, 2)),
        Column("paid_at", DateTime),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "_sample_info",
        metadata,
        Column("key", String(50), primary_key=True),
        Column("value", String(200), nullable=False),
        Column("generated_on", Date, nullable=False),
    )
    return metadata


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


def _later(rng: random.Random, moment: datetime, max_days: int) -> datetime:
    return moment + timedelta(seconds=rng.randint(0, max_days * 86_400))


class ShopGenerator:
    """Generates every table's rows from one seeded random stream per table."""

    def __init__(self, scale: float = 1.0, seed: int = 42) -> None:
        self.scale = scale
        self.seed = seed
        self.counts = SampleCounts.for_scale(scale)
        self._prices: list[Decimal] = []
        self._order_times: list[datetime] = []
        self._order_totals: list[Decimal] = []

    def _rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{name}")  # noqa: S311 (sample data, not secrets)

    def customers(self) -> Iterator[dict[str, Any]]:
        rng = self._rng("customers")
        emails: list[str] = []
        for i in range(1, self.counts.customers + 1):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            email = f"{first}.{last}{i}@example.com".lower()
            # About 3% sign up twice: the same address again, in different case.
            if i > 10 and rng.random() < 0.03:
                twin = rng.randrange(len(emails))
                email = emails[twin].upper() if rng.random() < 0.5 else emails[twin].title()
            emails.append(email.lower())
            created = EPOCH + timedelta(seconds=rng.randint(0, DAYS * 86_400))
            updated = _later(rng, created, 60) if rng.random() < 0.2 else created
            yield {
                "id": i,
                "first_name": first if rng.random() > 0.01 else None,
                "last_name": last,
                "email": email,
                "country": rng.choice(COUNTRIES),
                "created_at": created,
                "updated_at": updated,
            }

    def products(self) -> Iterator[dict[str, Any]]:
        rng = self._rng("products")
        self._prices = []
        for i in range(1, self.counts.products + 1):
            category = rng.choice(CATEGORIES)
            price = _money(rng.uniform(4, 250))
            self._prices.append(price)
            yield {
                "id": i,
                "sku": f"SKU-{i:06d}",
                "name": f"{category.title()} item {i}",
                "category": category if rng.random() > 0.02 else None,
                "price": price,
                "supplier_id": rng.randint(1, self.counts.suppliers)
                if rng.random() > 0.05
                else None,
                "is_active": rng.random() > 0.1,
                "updated_at": EPOCH + timedelta(seconds=rng.randint(0, DAYS * 86_400)),
            }

    def orders(self) -> Iterator[dict[str, Any]]:
        rng = self._rng("orders")
        self._order_times = []
        for i in range(1, self.counts.orders + 1):
            ordered = EPOCH + timedelta(seconds=rng.randint(0, DAYS * 86_400))
            self._order_times.append(ordered)
            status = rng.choice(ORDER_STATUSES)
            updated = _later(rng, ordered, 14) if status != "placed" else ordered
            yield {
                "id": i,
                "customer_id": rng.randint(1, self.counts.customers),
                "status": status,
                "ordered_at": ordered,
                "shipping_country": rng.choice(COUNTRIES),
                "updated_at": updated,
            }

    def order_items(self) -> Iterator[dict[str, Any]]:
        if not self._prices or not self._order_times:
            # Prices and order times come from the other tables' streams.
            for _ in self.products():
                pass
            for _ in self.orders():
                pass
        rng = self._rng("order_items")
        self._order_totals = []
        item_id = 0
        for order_id, ordered in enumerate(self._order_times, start=1):
            total = Decimal("0")
            for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
                item_id += 1
                product_id = rng.randint(1, len(self._prices))
                quantity = rng.choice((1, 1, 1, 2, 3))
                unit_price = self._prices[product_id - 1]
                total += unit_price * quantity
                yield {
                    "id": item_id,
                    "order_id": order_id,
                    "product_id": product_id,
                    "quantity": quantity,
                    "unit_price": unit_price,
                    "updated_at": ordered,
                }
            self._order_totals.append(total)

    def payments(self) -> Iterator[dict[str, Any]]:
        if not self._order_totals:
            for _ in self.order_items():
                pass
        rng = self._rng("payments")
        payment_id = 0
        for order_id, (total, ordered) in enumerate(
            zip(self._order_totals, self._order_times, strict=True), start=1
        ):
            # Some orders see a failed attempt before the payment that succeeds.
            if rng.random() < 0.05:
                payment_id += 1
                yield {
                    "id": payment_id,
                    "order_id": order_id,
                    "method": "card",
                    "status": "failed",
                    "amount": total,
                    "paid_at": None,
                    "updated_at": ordered,
                }
            payment_id += 1
            paid = ordered + timedelta(minutes=rng.randint(1, 120))
            yield {
                "id": payment_id,
                "order_id": order_id,
                "method": rng.choice(PAYMENT_METHODS),
                "status": "success",
                "amount": total if rng.random() > 0.005 else None,
                "paid_at": paid,
                "updated_at": paid,
            }

    def spend_rows(self) -> Iterator[dict[str, Any]]:
        rng = self._rng("spend")
        for day in range(DAYS):
            spend_date = (EPOCH + timedelta(days=day)).date()
            for channel in CHANNELS:
                spend = round(rng.uniform(20, 800) * max(self.scale, 0.1) ** 0.5, 2)
                yield {
                    "spend_date": spend_date.isoformat(),
                    "channel": channel,
                    "campaign": f"{channel}-{spend_date:%Y-%m}",
                    "spend": "" if rng.random() < 0.01 else f"{spend:.2f}",
                    "clicks": rng.randint(0, 5_000),
                }

    def events(self) -> Iterator[dict[str, Any]]:
        rng = self._rng("events")
        moment = EPOCH
        step = DAYS * 86_400 / self.counts.events
        for i in range(1, self.counts.events + 1):
            moment += timedelta(seconds=rng.uniform(0, 2 * step))
            occurred = moment
            # Roughly 2% arrive late: logged now, but happened hours ago.
            if rng.random() < 0.02:
                occurred = moment - timedelta(hours=rng.randint(1, 48))
            customer = rng.randint(1, self.counts.customers) if rng.random() < 0.6 else None
            event_type = rng.choice(EVENT_TYPES)
            product = rng.randint(1, self.counts.products) if event_type != "page_view" else None
            yield {
                "event_id": f"evt-{self.seed}-{i:09d}",
                "session_id": f"s-{rng.randint(1, max(1, self.counts.events // 8)):08d}",
                "customer_id": customer,
                "event_type": event_type,
                "occurred_at": occurred.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z"),
                "properties": {
                    "page": rng.choice(("/", "/catalog", "/product", "/cart", "/checkout")),
                    "product_id": product,
                    "referrer": rng.choice(("google", "newsletter", "instagram", None)),
                },
            }

    def suppliers(self) -> Iterator[dict[str, Any]]:
        rng = self._rng("suppliers")
        for i in range(1, self.counts.suppliers + 1):
            yield {
                "supplier_id": i,
                "supplier_name": f"{rng.choice(LAST_NAMES)} Trading {i}",
                "country": rng.choice(COUNTRIES),
                "lead_time_days": rng.randint(2, 45) if rng.random() > 0.05 else None,
                "contact_email": f"orders@supplier{i}.example" if rng.random() > 0.1 else None,
            }


def _batches(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def write_database(url: str, scale: float = 1.0, seed: int = 42) -> bool:
    """Fill the operational database at ``url``. Returns False if it already holds this data.

    Safe to call again: a database already generated with the same scale and
    seed is left alone; one generated differently is rebuilt from scratch. A
    database whose shop tables were not made by this generator is never touched.
    """
    generator = ShopGenerator(scale, seed)
    metadata = shop_metadata()
    fingerprint = f"scale={scale};seed={seed}"
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as connection:
            info = metadata.tables["_sample_info"]
            existing = [t for t in SHOP_TABLES if inspect(connection).has_table(t)]
            if existing and not inspect(connection).has_table("_sample_info"):
                raise IngestError(
                    f"the database already has table(s) {', '.join(existing)} that the sample "
                    "generator did not make; refusing to overwrite them",
                    hint="point it at an empty database",
                )
            if inspect(connection).has_table("_sample_info"):
                current = connection.execute(
                    select(info.c.value).where(info.c.key == "fingerprint")
                ).scalar()
                complete = all(inspect(connection).has_table(t) for t in SHOP_TABLES)
                if current == fingerprint and complete:
                    customers = metadata.tables["customers"]
                    if connection.execute(select(func.count()).select_from(customers)).scalar():
                        return False
            metadata.drop_all(connection)
            metadata.create_all(connection)
            for name in SHOP_TABLES:
                table = metadata.tables[name]
                for batch in _batches(getattr(generator, name)()):
                    connection.execute(table.insert(), batch)
            connection.execute(
                info.insert(),
                [{"key": "fingerprint", "value": fingerprint, "generated_on": date.today()}],
            )
    finally:
        engine.dispose()
    return True


def write_files(directory: Path, scale: float = 1.0, seed: int = 42) -> list[Path]:
    """Write the CSV, JSONL and Excel files into ``directory``; returns the files written."""
    from openpyxl import Workbook

    directory.mkdir(parents=True, exist_ok=True)
    generator = ShopGenerator(scale, seed)
    stamp = directory / ".sample-files"
    fingerprint = f"scale={scale};seed={seed}"
    targets = {
        "csv": directory / "marketing_spend.csv",
        "jsonl": directory / "events.jsonl",
        "xlsx": directory / "suppliers.xlsx",
    }
    if (
        stamp.exists()
        and stamp.read_text() == fingerprint
        and all(path.exists() for path in targets.values())
    ):
        return []

    def replace(path: Path) -> Path:
        return path.with_suffix(path.suffix + ".tmp")

    with replace(targets["csv"]).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["spend_date", "channel", "campaign", "spend", "clicks"]
        )
        writer.writeheader()
        writer.writerows(generator.spend_rows())

    with replace(targets["jsonl"]).open("w", encoding="utf-8") as handle:
        for event in generator.events():
            handle.write(json.dumps(event, separators=(",", ":")))
            handle.write("\n")

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("suppliers")
    columns = ["supplier_id", "supplier_name", "country", "lead_time_days", "contact_email"]
    sheet.append(columns)
    for supplier in generator.suppliers():
        sheet.append([supplier[c] for c in columns])
    workbook.save(replace(targets["xlsx"]))

    for path in targets.values():
        replace(path).replace(path)
    stamp.write_text(fingerprint)
    return list(targets.values())


def generate(
    directory: Path, database_url: str | None = None, scale: float = 1.0, seed: int = 42
) -> bool:
    """Generate the whole sample (database and files). Returns True if anything was written."""
    url = database_url or f"sqlite:///{directory / 'shop.db'}"
    directory.mkdir(parents=True, exist_ok=True)
    wrote_db = write_database(url, scale, seed)
    wrote_files = bool(write_files(directory, scale, seed))
    return wrote_db or wrote_files
