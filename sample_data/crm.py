"""CRM side: customers, orders (web and offline) and consents, written to SQLite.

Every web purchase event becomes an order with the same order_id, customer, amount and instant.
Offline orders exist only here. Customer ids are numbered by signup time and order ids by order
time, as an operational system would.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sample_data import config as cfg
from sample_data.behaviour import Events, Sessions
from sample_data.catalog import Catalog
from sample_data.formats import iso_utc
from sample_data.population import Population

FIRST_ORDER_NUMBER = 10_000_001


@dataclass(frozen=True)
class Orders:
    """All orders, indexed 0..O-1 in order-id order (which is time order)."""

    order_id: list[str]
    person: np.ndarray  # int32
    time_ms: np.ndarray  # int64
    amount: np.ndarray  # float64
    currency: np.ndarray  # int8 index into cfg.CURRENCIES
    status: np.ndarray  # int8 index into cfg.ORDER_STATUSES
    items: np.ndarray  # int16
    event_order: np.ndarray  # int32 per event: order index of purchase events, else -1


@dataclass(frozen=True)
class Crm:
    """The CRM extract plus the per-person aggregates the truth file needs."""

    customer_id: list[str]  # per person, "" if not a customer
    signup_ms: np.ndarray  # int64 per person (0 if not a customer)
    orders: Orders
    n_orders: np.ndarray  # int64 per person
    lifetime_spend: np.ndarray  # float64 per person: completed orders only


def _currency_of(pop: Population, person: np.ndarray) -> np.ndarray:
    codes = {c: i for i, c in enumerate(cfg.CURRENCIES)}
    table = np.array([codes[c[1]] for c in cfg.COUNTRIES], dtype=np.int8)
    return table[pop.country[person]]


def _web_orders(
    events: Events, sess: Sessions, catalog: Catalog, pop: Population
) -> dict[str, np.ndarray]:
    idx = np.flatnonzero(events.etype == cfg.PURCHASE_EVENT)
    session = events.session[idx]
    quantity = sess.quantity[session].astype(np.int64)
    pct = np.zeros(len(idx))
    prop = events.prop[idx]
    has_code = prop >= 0
    codes = np.array([p for _, p in cfg.DISCOUNT_CODES], dtype=np.float64)
    pct[has_code] = codes[prop[has_code] - catalog.prop_offsets["discount"]]
    price = catalog.product_price[events.product[idx]]
    person = sess.person[session]
    return {
        "event": idx,
        "person": person,
        "time_ms": events.time_ms[idx],
        "amount": np.round(price * quantity * (1.0 - pct / 100.0), 2),
        "items": quantity,
    }


def _signups(
    events: Events, sess: Sessions, pop: Population, as_of_ms: int, rng: np.random.Generator
) -> np.ndarray:
    """Signup just before the first logged-in event; offline buyers up to three years back."""
    first_user = np.full(pop.n_persons, np.iinfo(np.int64).max, dtype=np.int64)
    with_user = events.has_user
    np.minimum.at(first_user, sess.person[events.session[with_user]], events.time_ms[with_user])
    lead = rng.uniform(1, 30, pop.n_persons) * cfg.MINUTE_MS
    signup = np.where(
        first_user < np.iinfo(np.int64).max,
        first_user - lead.astype(np.int64),
        pop.window_start_ms,
    )
    offline = pop.archetype == cfg.OFFLINE_BUYER
    span = as_of_ms - 30 * cfg.DAY_MS - pop.window_start_ms[offline]
    signup[offline] = pop.window_start_ms[offline] + (rng.random(offline.sum()) * span).astype(
        np.int64
    )
    return np.where(pop.known, signup, 0)


def _offline_orders(
    pop: Population, signup: np.ndarray, as_of_ms: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    mean = np.array(
        [
            cfg.PROFILES[a].offline_orders_mean if a in cfg.PROFILES else 2.0
            for a in range(len(cfg.ARCHETYPES))
        ]
    )[pop.archetype]
    count = rng.poisson(mean)
    count[pop.archetype == cfg.OFFLINE_BUYER] += 1
    count[~pop.known] = 0
    person = np.repeat(np.arange(pop.n_persons, dtype=np.int32), count)
    return _orders_in_window(pop, person, signup, as_of_ms, rng)


def _orders_in_window(
    pop: Population,
    person: np.ndarray,
    signup: np.ndarray,
    as_of_ms: int,
    rng: np.random.Generator,
    amount: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Offline orders between signup and the end of the person's activity window."""
    n = len(person)
    lo = signup[person]
    hi = np.maximum(np.minimum(pop.window_end_ms[person], as_of_ms - cfg.HOUR_MS), lo)
    time_ms = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    if amount is None:
        base = np.round(rng.lognormal(np.log(60.0), 0.7, n), 0) - 0.01
        factor = np.where(pop.archetype[person] == cfg.HIGH_VALUE_LOYAL, 2.0, 1.0)
        amount = np.round(np.maximum(base, 4.99) * factor, 2)
    return {
        "event": np.full(n, -1, dtype=np.int64),
        "person": person,
        "time_ms": time_ms,
        "amount": amount,
        "items": rng.integers(1, 5, n),
    }


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _completed_spend(raw: dict[str, np.ndarray], n_persons: int) -> np.ndarray:
    completed = raw["status"] == 0
    return np.bincount(raw["person"][completed], raw["amount"][completed], minlength=n_persons)


def _top_up_high_value(
    raw: dict[str, np.ndarray],
    pop: Population,
    signup: np.ndarray,
    as_of_ms: int,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Add a completed offline order to high-value persons below the planted minimum spend."""
    spend = _completed_spend(raw, pop.n_persons)
    short = np.flatnonzero(
        (pop.archetype == cfg.HIGH_VALUE_LOYAL) & (spend < cfg.HIGH_VALUE_MIN_SPEND)
    )
    if not len(short):
        return raw
    amount = np.round(cfg.HIGH_VALUE_MIN_SPEND - spend[short] + rng.uniform(20, 200, len(short)), 2)
    extra = _orders_in_window(pop, short.astype(np.int32), signup, as_of_ms, rng, amount)
    extra["status"] = np.zeros(len(short), dtype=np.int8)
    return _concat([raw, extra])


def build_orders(
    events: Events,
    sess: Sessions,
    pop: Population,
    catalog: Catalog,
    signup: np.ndarray,
    as_of_ms: int,
    rng: np.random.Generator,
) -> Orders:
    """Web orders (one per purchase event), offline orders and high-value top-ups, id'd by time."""
    raw = _concat(
        [_web_orders(events, sess, catalog, pop), _offline_orders(pop, signup, as_of_ms, rng)]
    )
    raw["status"] = rng.choice(
        len(cfg.ORDER_STATUSES), size=len(raw["person"]), p=cfg.ORDER_STATUS_PROBS
    ).astype(np.int8)
    raw = _top_up_high_value(raw, pop, signup, as_of_ms, rng)
    order = np.lexsort((np.arange(len(raw["time_ms"])), raw["time_ms"]))
    raw = {key: value[order] for key, value in raw.items()}
    event_order = np.full(events.n, -1, dtype=np.int32)
    web = raw["event"] >= 0
    event_order[raw["event"][web]] = np.flatnonzero(web)
    return Orders(
        order_id=[f"O{FIRST_ORDER_NUMBER + i}" for i in range(len(order))],
        person=raw["person"].astype(np.int32),
        time_ms=raw["time_ms"],
        amount=raw["amount"],
        currency=_currency_of(pop, raw["person"]),
        status=raw["status"],
        items=raw["items"].astype(np.int16),
        event_order=event_order,
    )


def build_crm(
    events: Events,
    sess: Sessions,
    pop: Population,
    catalog: Catalog,
    as_of_ms: int,
    rng: np.random.Generator,
) -> Crm:
    """Derive signups, orders and per-person aggregates from the final events."""
    signup = _signups(events, sess, pop, as_of_ms, rng)
    orders = build_orders(events, sess, pop, catalog, signup, as_of_ms, rng)
    customers = np.flatnonzero(pop.known)
    by_signup = customers[np.lexsort((customers, signup[customers]))]
    customer_id = [""] * pop.n_persons
    for rank, person in enumerate(by_signup.tolist(), start=1):
        customer_id[person] = f"C{rank:07d}"
    completed = orders.status == 0
    return Crm(
        customer_id=customer_id,
        signup_ms=signup,
        orders=orders,
        n_orders=np.bincount(orders.person, minlength=pop.n_persons),
        lifetime_spend=np.round(
            np.bincount(orders.person[completed], orders.amount[completed], pop.n_persons), 2
        ),
    )


# --- SQLite ----------------------------------------------------------------------------------

SCHEMA = (
    """CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY, email TEXT, first_name TEXT, last_name TEXT, phone TEXT,
        country TEXT, city TEXT, birth_year INTEGER, income_bracket TEXT, education TEXT,
        signup_at TEXT, loyalty_tier TEXT, updated_at TEXT)""",
    """CREATE TABLE orders (
        order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, ordered_at TEXT NOT NULL,
        total_amount REAL NOT NULL, currency TEXT NOT NULL, status TEXT NOT NULL,
        items_count INTEGER NOT NULL)""",
    """CREATE TABLE consents (
        customer_id TEXT NOT NULL, purpose TEXT NOT NULL, granted BOOLEAN NOT NULL,
        updated_at TEXT NOT NULL, PRIMARY KEY (customer_id, purpose))""",
    "CREATE INDEX orders_customer_id ON orders (customer_id)",
)


def _maybe_null(values: list[object], rng: np.random.Generator) -> list[object]:
    drop = rng.random(len(values)) < cfg.OPTIONAL_FIELD_NULL_SHARE
    return [None if d else v for v, d in zip(values, drop.tolist(), strict=True)]


def _iso(ms: np.ndarray) -> list[str]:
    return iso_utc(ms).astype("U24").tolist()


def customer_rows(
    crm: Crm, pop: Population, as_of_ms: int, rng: np.random.Generator
) -> list[tuple[object, ...]]:
    """One row per customer, personal values unique enough to be searched for later."""
    people = np.flatnonzero(pop.known)
    people = people[np.argsort([crm.customer_id[p] for p in people.tolist()], kind="stable")]
    n = len(people)
    first = rng.integers(0, len(cfg.FIRST_NAMES), n)
    last = rng.integers(0, len(cfg.LAST_NAMES), n)
    email_no = rng.choice(max(9_000, 20 * n), size=n, replace=False) + 1_000
    phone_no = rng.choice(90_000_000, size=n, replace=False) + 10_000_000
    domains = ("example.com", "example.org", "example.net")
    country = pop.country[people]
    city = (rng.random(n) * np.array([len(c[4]) for c in cfg.COUNTRIES])[country]).astype(int)
    arch = pop.archetype[people]
    income_shift = np.where(arch == cfg.HIGH_VALUE_LOYAL, 1.2, 0.0) - np.where(
        arch == cfg.PRICE_SENSITIVE, 1.0, 0.0
    )
    income = np.clip(np.round(rng.normal(1.3 + income_shift, 0.9)), 0, 3).astype(int)
    education = rng.choice(len(cfg.EDUCATION_LEVELS), size=n, p=(0.25, 0.25, 0.3, 0.17, 0.03))
    birth_year = rng.integers(1950, 2007, n)
    spend = crm.lifetime_spend[people]
    tiers = np.searchsorted([t for t, _ in cfg.LOYALTY_TIERS], spend, side="right") - 1
    signup = crm.signup_ms[people]
    updated = signup + (rng.random(n) * (as_of_ms - signup)).astype(np.int64)
    signup_iso, updated_iso = _iso(signup), _iso(updated)
    columns: list[list[object]] = [
        [crm.customer_id[p] for p in people.tolist()],
        [
            f"{cfg.FIRST_NAMES[f].lower()}.{cfg.LAST_NAMES[g].lower().replace(' ', '')}.{e}"
            f"@{domains[e % 3]}"
            for f, g, e in zip(first.tolist(), last.tolist(), email_no.tolist(), strict=True)
        ],
        [cfg.FIRST_NAMES[f] for f in first.tolist()],
        [cfg.LAST_NAMES[g] for g in last.tolist()],
        _maybe_null(
            [
                f"{cfg.COUNTRIES[c][2]} {p // 10_000:04d} {p % 10_000:04d}"
                for c, p in zip(country.tolist(), phone_no.tolist(), strict=True)
            ],
            rng,
        ),
        [cfg.COUNTRIES[c][0] for c in country.tolist()],
        _maybe_null(
            [cfg.COUNTRIES[c][4][i] for c, i in zip(country.tolist(), city.tolist(), strict=True)],
            rng,
        ),
        _maybe_null(birth_year.tolist(), rng),
        _maybe_null([cfg.INCOME_BRACKETS[i] for i in income.tolist()], rng),
        _maybe_null([cfg.EDUCATION_LEVELS[i] for i in education.tolist()], rng),
        signup_iso,
        [cfg.LOYALTY_TIERS[t][1] for t in tiers.tolist()],
        updated_iso,
    ]
    return list(zip(*columns, strict=True))


def order_rows(crm: Crm) -> list[tuple[object, ...]]:
    """One row per order, in order-id order."""
    o = crm.orders
    return list(
        zip(
            o.order_id,
            [crm.customer_id[p] for p in o.person.tolist()],
            _iso(o.time_ms),
            o.amount.tolist(),
            [cfg.CURRENCIES[c] for c in o.currency.tolist()],
            [cfg.ORDER_STATUSES[s] for s in o.status.tolist()],
            o.items.tolist(),
            strict=True,
        )
    )


def consent_rows(
    crm: Crm, pop: Population, as_of_ms: int, rng: np.random.Generator
) -> list[tuple[object, ...]]:
    """Three rows per customer (analytics, personalization, marketing)."""
    people = np.flatnonzero(pop.known)
    people = people[np.argsort([crm.customer_id[p] for p in people.tolist()], kind="stable")]
    n_purposes = len(cfg.CONSENT_PURPOSES)
    person = np.repeat(people, n_purposes)
    purpose = np.tile(np.arange(n_purposes), len(people))
    signup = crm.signup_ms[person]
    lag = (rng.random(len(person)) * 30 * cfg.DAY_MS).astype(np.int64)
    updated = np.minimum(signup + lag, as_of_ms - cfg.MINUTE_MS)
    return list(
        zip(
            [crm.customer_id[p] for p in person.tolist()],
            [cfg.CONSENT_PURPOSES[i] for i in purpose.tolist()],
            pop.consent[person, purpose].astype(int).tolist(),
            _iso(updated),
            strict=True,
        )
    )


def write_sqlite(
    path: Path, crm: Crm, pop: Population, as_of_ms: int, rng: np.random.Generator
) -> None:
    """Write the three CRM tables into a fresh SQLite file."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        with connection:
            for statement in SCHEMA:
                connection.execute(statement)
            connection.executemany(
                f"INSERT INTO customers VALUES ({', '.join('?' * 13)})",
                customer_rows(crm, pop, as_of_ms, rng),
            )
            connection.executemany(
                "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)", order_rows(crm)
            )
            connection.executemany(
                "INSERT INTO consents VALUES (?, ?, ?, ?)", consent_rows(crm, pop, as_of_ms, rng)
            )
    finally:
        connection.close()
