"""Small fixtures of data this project did not generate, in the shapes users bring: a
clickstream in a foreign event vocabulary, Segment-spec messages as Segment's own Python
library builds them, and a CRM with order history in several currencies.

Every number a test expects is written here next to the data that produces it.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

# --- a clickstream in a foreign vocabulary ------------------------------------------------

# The seed rows that map the vocabulary (appended to dbt_project/seeds/event_taxonomy.csv).
FOREIGN_TAXONOMY_ROWS = [
    # event_type, page_type, role, counts_as_page_view, vocabulary
    ("home", "", "page_view", "true", "shop"),
    ("catalog", "", "page_view", "true", "shop"),
    ("promo_page", "", "page_view", "true", "shop"),
    ("item_page", "", "product_view", "true", "shop"),
    ("basket_add", "", "add_to_cart", "false", "shop"),
    ("shipping_details", "", "checkout_start", "false", "shop"),
    ("payment_details", "", "checkout_step", "false", "shop"),
    ("order_placed", "", "purchase", "false", "shop"),
]
UNMAPPED_EVENT_TYPE = "newsletter_open"  # left out of the taxonomy on purpose

# One session per visitor, a minute between events: (anonymous id, [event type, ...]).
FOREIGN_SESSIONS = {
    "f-anon-1": [
        "home",
        "catalog",
        "item_page",
        "basket_add",
        "shipping_details",
        "payment_details",
        "order_placed",
    ],
    "f-anon-2": ["home", "item_page", "basket_add"],
    "f-anon-3": ["promo_page", "item_page", "item_page"],
    "f-anon-4": ["home", UNMAPPED_EVENT_TYPE],
}
FOREIGN_ORDER_EUR = 46.80  # the GBP order of f-anon-1 in the reporting currency
# (page views, product views, add to carts, checkout starts, purchases) of each session
FOREIGN_EXPECTED = {
    "f-anon-1": (3, 1, 1, 1, 1),
    "f-anon-2": (2, 1, 1, 0, 0),
    "f-anon-3": (3, 2, 0, 0, 0),
    "f-anon-4": (1, 0, 0, 0, 0),
}


def write_foreign_clickstream(path: Path, day: datetime) -> None:
    """The foreign-vocabulary sessions as flat-contract JSON lines, on ``day`` (UTC)."""
    lines = []
    for number, (anonymous_id, types) in enumerate(FOREIGN_SESSIONS.items()):
        start = day + timedelta(hours=10 + number)
        for position, event_type in enumerate(types):
            event = {
                "event_id": f"{anonymous_id}-{position}",
                "event_type": event_type,
                "occurred_at": (start + timedelta(minutes=position)).isoformat(),
                "anonymous_id": anonymous_id,
                "page_url": f"https://shop.example/{event_type}",
                "device_type": "desktop",
            }
            if event_type in ("item_page", "basket_add"):
                event |= {"product_id": "p1", "category": "shoes", "price": 40.0, "quantity": 1}
            if event_type == "order_placed":
                # in GBP: converted at the shipped rate (1.17 EUR per GBP) = 46.80 EUR
                event |= {"order_id": f"{anonymous_id}-order", "revenue": 40.0, "currency": "GBP"}
            lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n")


# --- Segment-spec messages ----------------------------------------------------------------

# S1 browses anonymously, identifies (traits carry an email: personal data, raw only), consents
# to analytics and buys with only the user id; S2 is linked by an alias call. Both are one
# person, one session each.
SEGMENT_USER_IDS = {"s-anon-1": "u-500", "s-anon-2": "u-501"}
SEGMENT_EMAIL = "ada@example.com"
# (page views, product views, add to carts, checkout starts, purchases, event count) per session
SEGMENT_EXPECTED = {"s-anon-1": (2, 1, 1, 1, 1, 8), "s-anon-2": (1, 1, 0, 0, 0, 3)}


def segment_messages(day: datetime) -> list[dict]:
    """Messages exactly as Segment's Python library (segment-analytics-python) builds them
    before it sends them (ids, timestamps, context.library, ...), JSON-ready."""
    from segment.analytics.client import Client
    from segment.analytics.request import DatetimeSerializer

    client = Client("fixture-write-key", send=False, sync_mode=True)
    at = day + timedelta(hours=14)

    def minute(n: int) -> datetime:
        return at + timedelta(minutes=n)

    campaign = {"source": "newsletter", "medium": "email", "name": "winter"}
    page_context = {
        "campaign": campaign,
        "ip": "203.0.113.9",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    }
    calls = [
        client.page(
            anonymous_id="s-anon-1",
            name="Home",
            timestamp=minute(0),
            properties={"url": "https://shop.example/", "page_type": "home"},
            context={**page_context, "page": {"url": "https://shop.example/"}},
        ),
        client.page(
            anonymous_id="s-anon-1",
            name="Bag",
            category="product",
            timestamp=minute(1),
            properties={"url": "https://shop.example/p/p2"},
            context={"page": {"url": "https://shop.example/p/p2"}},
        ),
        client.track(
            anonymous_id="s-anon-1",
            event="Product Viewed",
            timestamp=minute(1),
            properties={"product_id": "p2", "category": "bags", "price": 80.0},
        ),
        client.track(
            anonymous_id="s-anon-1",
            event="Product Added",
            timestamp=minute(2),
            properties={"product_id": "p2", "category": "bags", "price": 80.0, "quantity": 1},
        ),
        client.identify(
            user_id="u-500",
            anonymous_id="s-anon-1",
            timestamp=minute(3),
            traits={"email": SEGMENT_EMAIL, "plan": "free"},
        ),
        # a customer is profiled only with analytics consent (consent_defaults_customers: no)
        client.track(
            user_id="u-500",
            anonymous_id="s-anon-1",
            event="consent_updated",
            timestamp=minute(3),
            properties={"purpose": "analytics", "granted": True},
        ),
        client.track(
            user_id="u-500",
            anonymous_id="s-anon-1",
            event="Checkout Started",
            timestamp=minute(4),
            properties={"revenue": 80.0, "currency": "EUR"},
        ),
        client.track(
            user_id="u-500",
            event="Order Completed",
            timestamp=minute(5),
            properties={
                "order_id": "S-O1",
                "revenue": 80.0,
                "currency": "EUR",
                "coupon": "WINTER10",
            },
        ),
        client.page(
            anonymous_id="s-anon-2",
            name="Home",
            timestamp=minute(60),
            properties={"url": "https://shop.example/"},
        ),
        client.alias(previous_id="s-anon-2", user_id="u-501", timestamp=minute(61)),
        client.track(
            user_id="u-501",
            event="Product Viewed",
            timestamp=minute(62),
            properties={"product_id": "p3", "category": "bags", "price": 20.0},
        ),
    ]
    messages = []
    for queued, message in calls:
        assert queued, message
        messages.append(json.loads(json.dumps(message, cls=DatetimeSerializer)))
    return messages


def write_segment_file(path: Path, day: datetime) -> list[dict]:
    messages = segment_messages(day)
    path.write_text("".join(json.dumps(message) + "\n" for message in messages))
    return messages


# --- a CRM with order history in three currencies -----------------------------------------

CRM_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
# Exchange rates of the copied project's seed: units of the reporting currency (EUR) per unit.
FIXTURE_RATES = [
    ("GBP", "2025-01-01", 1.20),
    ("GBP", "2026-06-01", 1.10),
    ("USD", "2025-01-01", 0.90),
]


@dataclass(frozen=True)
class HandComputed:
    customer_id: str
    orders: list[tuple[str, str, float, str]]  # order id, ordered_at, amount, currency
    lifetime_spend_eur: float


# Customers whose spend is checked by hand: GBP converts at the rate valid on the order date.
HAND_COMPUTED = [
    HandComputed(
        "C-EUR", [("H-1", "2026-03-01", 100.0, "EUR"), ("H-2", "2026-09-01", 50.0, "EUR")], 150.0
    ),
    HandComputed(
        "C-GBP", [("H-3", "2026-03-01", 100.0, "GBP"), ("H-4", "2026-09-01", 100.0, "GBP")], 230.0
    ),
    HandComputed("C-USD", [("H-5", "2026-05-01", 200.0, "USD")], 180.0),
]
UNRATED_CURRENCY = "CHF"  # one order in a currency the rates do not cover


def write_crm(path: Path, *, customers: int = 900, with_consents: bool, seed: int = 3) -> None:
    """A CRM (SQLite) of ``customers`` buyers over the 20 months before CRM_AS_OF: each buys at
    a rate of their own until a "death" date of their own (some before as_of: churn that
    recency and frequency reveal), in EUR, GBP or USD by country; plus the hand-computed
    customers, one order in a currency without a rate, and optionally a consents table that
    grants analytics and personalization to everyone."""
    rng = np.random.default_rng(seed)
    start = CRM_AS_OF - timedelta(days=600)
    countries = [("DE", "EUR"), ("GB", "GBP"), ("US", "USD")]
    customer_rows, order_rows = [], []
    for i in range(customers):
        country, currency = countries[i % 3]
        signup = start + timedelta(days=float(rng.uniform(0, 300)))
        death = signup + timedelta(days=float(rng.exponential(400)))
        rate_per_day = float(rng.gamma(2.0, 1 / 60))
        customer_id = f"C{i:05d}"
        customer_rows.append(
            (customer_id, f"{customer_id.lower()}@example.com", country, signup.isoformat())
        )
        t = signup
        n = 0
        while True:
            t += timedelta(days=float(rng.exponential(1 / rate_per_day)))
            if t > min(death, CRM_AS_OF + timedelta(days=200)):
                break
            n += 1
            amount = round(float(rng.lognormal(3.5, 0.6)), 2)
            order_rows.append(
                (f"O{i:05d}-{n}", customer_id, t.isoformat(), amount, currency, "completed", 1)
            )
    for hand in HAND_COMPUTED:
        customer_rows.append(
            (
                hand.customer_id,
                f"{hand.customer_id.lower()}@example.com",
                "DE",
                "2025-06-01T00:00:00+00:00",
            )
        )
        for order_id, ordered_at, amount, currency in hand.orders:
            order_rows.append(
                (
                    order_id,
                    hand.customer_id,
                    f"{ordered_at}T12:00:00+00:00",
                    amount,
                    currency,
                    "completed",
                    1,
                )
            )
    order_rows.append(
        ("H-CHF", "C-EUR", "2026-10-01T12:00:00+00:00", 70.0, UNRATED_CURRENCY, "completed", 1)
    )
    with sqlite3.connect(path) as con:
        con.execute(
            "CREATE TABLE customers (customer_id TEXT, email TEXT, country TEXT, signup_at TEXT)"
        )
        con.executemany("INSERT INTO customers VALUES (?, ?, ?, ?)", customer_rows)
        con.execute(
            "CREATE TABLE orders (order_id TEXT, customer_id TEXT, ordered_at TEXT, "
            "total_amount REAL, currency TEXT, status TEXT, items_count INTEGER)"
        )
        con.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", order_rows)
        if with_consents:
            con.execute(
                "CREATE TABLE consents (customer_id TEXT, purpose TEXT, granted INTEGER, "
                "updated_at TEXT)"
            )
            con.executemany(
                "INSERT INTO consents VALUES (?, ?, 1, '2025-01-01T00:00:00+00:00')",
                [
                    (row[0], purpose)
                    for row in customer_rows
                    for purpose in ("analytics", "personalization")
                ],
            )


def append_seed_rows(seed: Path, rows: list[tuple]) -> None:
    with seed.open("a", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
