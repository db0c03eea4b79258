"""Behaviour of the sample-data generator: determinism, exact bad-input counts, contract,
planted archetypes, CRM consistency, identity links, Parquet parity and the CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import pyarrow.parquet as pq
import pytest

from sample_data import DEFAULT_AS_OF, GenerationSummary, generate
from sample_data.cli import main

N_EVENTS = 20_000
AS_OF = DEFAULT_AS_OF
REQUIRED = ("event_id", "event_type", "occurred_at")
BOT_MARKERS = ("Googlebot", "bingbot", "HeadlessChrome")
ARCHETYPES = (
    "frequent_browser",
    "cart_abandoner",
    "price_sensitive",
    "high_value_loyal",
    "content_explorer",
    "new_visitor",
    "churned",
    "casual",
)


def parse_ts(text: Any) -> datetime | None:
    """Strict ISO-8601 with an offset, as an aware datetime; None if not parseable."""
    if not isinstance(text, str):
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


@dataclass
class Line:
    file_index: int
    raw: str | None  # JSONL text, None for Parquet rows
    record: dict[str, Any] | None  # None if malformed


@dataclass
class Landed:
    """Every landed line, classified the way an ingestion job would."""

    lines: list[Line]
    counts: Counter[str] = field(default_factory=Counter)
    valid: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # first copies


def read_lines(landing: Path) -> list[Line]:
    out: list[Line] = []
    for index, path in enumerate(sorted(landing.iterdir())):
        if path.suffix == ".jsonl":
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(raw)
                except json.JSONDecodeError:
                    record = None
                out.append(Line(index, raw, record))
        else:
            for row in pq.read_table(path).to_pylist():
                record = {k: v for k, v in row.items() if v is not None}
                if "properties" in record:
                    record["properties"] = json.loads(record["properties"])
                out.append(Line(index, None, record))
    return out


def classify(lines: list[Line]) -> Landed:
    landed = Landed(lines)
    first_copy: dict[str, dict[str, Any]] = {}
    for line in lines:
        rec = line.record
        if rec is None:
            landed.counts["malformed_json"] += 1
        elif "event_id" not in rec:
            landed.counts["missing_event_id"] += 1
        elif "event_type" not in rec:
            landed.counts["missing_event_type"] += 1
        elif "occurred_at" not in rec:
            landed.counts["missing_occurred_at"] += 1
        elif "anonymous_id" not in rec and "user_id" not in rec:
            landed.counts["missing_identity"] += 1
        elif parse_ts(rec["occurred_at"]) is None:
            landed.counts["bad_timestamp"] += 1
        elif rec["event_id"] in first_copy:
            assert rec == first_copy[rec["event_id"]], "a duplicate must be an exact re-delivery"
            landed.counts["duplicate_event_ids"] += 1
        else:
            first_copy[rec["event_id"]] = rec
            landed.valid.append((line.file_index, rec))
    return landed


@dataclass
class World:
    summary: GenerationSummary
    doc: dict[str, Any]
    landed: Landed
    persons: list[dict[str, str]]
    by_key: dict[str, list[dict[str, Any]]]  # person_key -> valid events, time ordered
    crm: sqlite3.Connection


def person_of_events(
    persons: list[dict[str, str]], valid: list[tuple[int, dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    by_anon = {a: p["person_key"] for p in persons for a in p["anonymous_ids"].split("|") if a}
    by_user = {p["customer_id"]: p["person_key"] for p in persons if p["customer_id"]}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, rec in valid:
        keys = {by_anon.get(rec.get("anonymous_id")), by_user.get(rec.get("user_id"))} - {None}
        assert len(keys) == 1, f"event {rec['event_id']} maps to persons {keys}"
        out[keys.pop()].append(rec)
    for events in out.values():
        events.sort(key=lambda r: parse_ts(r["occurred_at"]))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    summary = generate(tmp_path_factory.mktemp("sample") / "out", n_events=N_EVENTS, seed=42)
    doc = json.loads((summary.truth_dir / "summary.json").read_text())
    landed = classify(read_lines(summary.landing_dir))
    with (summary.truth_dir / "persons.csv").open(newline="") as handle:
        persons = list(csv.DictReader(handle))
    crm = sqlite3.connect(summary.crm_path)
    crm.row_factory = sqlite3.Row
    return World(summary, doc, landed, persons, person_of_events(persons, landed.valid), crm)


def of_archetype(world: World, archetype: str) -> list[dict[str, str]]:
    return [p for p in world.persons if p["archetype"] == archetype]


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- determinism and layout ------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", n_events=5_000, seed=7, files=4)
    second = generate(tmp_path / "b", n_events=5_000, seed=7, files=4)
    other = generate(tmp_path / "c", n_events=5_000, seed=8, files=4)
    a, b, c = digest(first.out_dir), digest(second.out_dir), digest(other.out_dir)
    assert a == b
    assert len(a) == 4 + 1 + 2 + 3  # landing files, crm.sqlite, truth files, taste truth files
    landing = {k: v for k, v in a.items() if k.startswith("landing/")}
    assert not set(landing.values()) & set(c.values())


def test_files_split_by_received_time_and_last_is_parquet(world: World) -> None:
    files = [p.name for p in world.summary.files]
    assert len(files) >= 3
    assert files == sorted(files) == sorted(p.name for p in world.summary.landing_dir.iterdir())
    assert all(f.endswith(".jsonl") for f in files[:-1]) and files[-1].endswith(".parquet")
    assert [f["name"] for f in world.doc["files"]] == files
    per_file = Counter(line.file_index for line in world.landed.lines)
    assert [per_file[i] for i in range(len(files))] == [f["lines"] for f in world.doc["files"]]
    # Apart from duplicates (which replay the original received_at), lines arrive in order.
    seen: set[str] = set()
    previous = datetime.min.replace(tzinfo=UTC)
    for line in world.landed.lines:
        rec = line.record
        if rec is None or rec.get("event_id") in seen:
            continue
        seen.add(rec.get("event_id", ""))
        received = parse_ts(rec["received_at"])
        assert received is not None and received >= previous
        previous = received


def test_total_lines_equal_requested_events(world: World) -> None:
    assert world.summary.total_lines == N_EVENTS == len(world.landed.lines)
    assert world.doc["total_lines"] == N_EVENTS


# --- bad input -------------------------------------------------------------------------------


def test_bad_input_counts_match_the_files_exactly(world: World) -> None:
    counts, doc = world.landed.counts, world.doc
    bad = doc["bad_input"]
    assert counts["malformed_json"] == bad["malformed_json"] > 0
    for name, expected in bad["missing_required"].items():
        assert counts[f"missing_{name}"] == expected > 0
    assert counts["bad_timestamp"] == bad["bad_timestamp"] > 0
    assert counts["duplicate_event_ids"] == bad["duplicate_event_ids"] > 0
    assert len(world.landed.valid) == doc["valid_distinct_events"] == world.summary.valid_events
    assert len(world.landed.valid) + sum(counts.values()) == doc["total_lines"]
    assert world.summary.bad_input == {k: counts[k] for k in world.summary.bad_input}


def test_duplicates_span_files_and_malformed_lines_are_truncated_json(world: World) -> None:
    first_file: dict[str, int] = {}
    cross_file = 0
    for line in world.landed.lines:
        rec = line.record
        if rec is None:
            assert line.raw is not None and line.raw.startswith('{"') and not line.raw.endswith("}")
            continue
        if "event_id" in rec and parse_ts(rec.get("occurred_at")) is not None:
            if rec["event_id"] in first_file:
                cross_file += first_file[rec["event_id"]] != line.file_index
            else:
                first_file[rec["event_id"]] = line.file_index
    assert cross_file > 0


def test_late_events_are_counted_and_land_in_a_later_file(world: World) -> None:
    late = []
    first_received: dict[int, datetime] = {}
    for index, rec in world.landed.valid:
        received = parse_ts(rec["received_at"])
        first_received[index] = min(first_received.get(index, received), received)
        if received - parse_ts(rec["occurred_at"]) >= timedelta(days=1):
            late.append((index, rec))
    assert len(late) == world.doc["late_events"] == world.summary.late_events > 0
    for index, rec in late:
        assert parse_ts(rec["occurred_at"]) < first_received[index]


# --- contract --------------------------------------------------------------------------------


def test_valid_events_obey_the_raw_event_contract(world: World) -> None:
    types = Counter()
    offsets = Counter()
    for _, rec in world.landed.valid:
        assert all(isinstance(rec[f], str) and rec[f] for f in REQUIRED)
        assert rec.get("anonymous_id") or rec.get("user_id")
        occurred, received = parse_ts(rec["occurred_at"]), parse_ts(rec["received_at"])
        assert occurred <= received <= AS_OF
        offsets["Z" if rec["occurred_at"].endswith("Z") else rec["occurred_at"][-6:]] += 1
        types[rec["event_type"]] += 1
        if rec["event_type"] == "purchase":
            assert {"order_id", "revenue", "currency", "quantity", "product_id"} <= rec.keys()
        if "properties" in rec:
            assert isinstance(rec["properties"], dict)
    expected = {
        "page_view", "product_view", "add_to_cart", "remove_from_cart", "checkout_start",
        "purchase", "search", "filter_applied", "video_play", "form_submit", "email_open",
        "email_click",
    }  # fmt: skip
    assert set(types) == expected
    assert offsets["Z"] > 0.5 * sum(offsets.values()) and "+02:00" in offsets
    assert any("experiment_id" in rec for _, rec in world.landed.valid)


def test_history_spans_a_year_with_a_daily_rhythm(world: World) -> None:
    times = [parse_ts(rec["occurred_at"]).astimezone(UTC) for _, rec in world.landed.valid]
    assert AS_OF - min(times) > timedelta(days=300)
    humans = [
        parse_ts(rec["occurred_at"]).astimezone(UTC).hour
        for _, rec in world.landed.valid
        if not any(m in rec.get("user_agent", "") for m in BOT_MARKERS)
    ]
    evening = sum(18 <= h < 22 for h in humans)
    night = sum(2 <= h < 6 for h in humans)
    assert evening > 4 * night


def test_parquet_file_has_the_same_columns_as_jsonl(world: World) -> None:
    schema = pq.read_schema(world.summary.files[-1])
    keys = {k for line in world.landed.lines if line.raw and line.record for k in line.record}
    assert set(schema.names) == keys
    assert str(schema.field("price").type) == "double"
    assert str(schema.field("revenue").type) == "double"
    assert str(schema.field("quantity").type) == "int64"
    assert str(schema.field("occurred_at").type) == "string"


# --- truth and planted behaviour -------------------------------------------------------------


def test_truth_accounts_for_every_valid_event(world: World) -> None:
    assert {p["archetype"] for p in world.persons} >= {*ARCHETYPES, "bot"}
    assert sum(int(p["n_events"]) for p in world.persons) == len(world.landed.valid)
    for person in world.persons:
        events = world.by_key.get(person["person_key"], [])
        assert int(person["n_events"]) == len(events)
    assert len(world.persons) >= 100


def test_churned_persons_went_quiet_for_120_days(world: World) -> None:
    quiet_since = AS_OF - timedelta(days=120)
    churned = of_archetype(world, "churned")
    assert churned
    for person in churned:
        events = world.by_key[person["person_key"]]
        assert len(events) >= 3
        assert parse_ts(events[-1]["occurred_at"]) < quiet_since
        assert person["is_churned"] == "true"
    assert all(p["is_churned"] == "false" for p in of_archetype(world, "new_visitor"))


def test_new_visitors_were_first_seen_in_the_last_14_days(world: World) -> None:
    for person in of_archetype(world, "new_visitor"):
        first = parse_ts(world.by_key[person["person_key"]][0]["occurred_at"])
        assert first >= AS_OF - timedelta(days=14)


def test_high_value_loyal_spend_more_than_500(world: World) -> None:
    spend = {
        row["customer_id"]: row["spend"]
        for row in world.crm.execute(
            "SELECT customer_id, SUM(total_amount) AS spend FROM orders "
            "WHERE status = 'completed' GROUP BY customer_id"
        )
    }
    loyal = of_archetype(world, "high_value_loyal")
    assert loyal
    for person in loyal:
        assert person["customer_id"]
        assert float(person["lifetime_spend"]) > 500
        assert spend[person["customer_id"]] == pytest.approx(float(person["lifetime_spend"]))
        purchases = [e for e in world.by_key[person["person_key"]] if e["event_type"] == "purchase"]
        assert purchases, "loyal customers buy on the web too"


def test_cart_abandoners_repeatedly_leave_carts(world: World) -> None:
    for person in of_archetype(world, "cart_abandoner"):
        events = world.by_key[person["person_key"]]
        purchases = [parse_ts(e["occurred_at"]) for e in events if e["event_type"] == "purchase"]
        abandoned = 0
        for event in events:
            if event["event_type"] == "add_to_cart":
                added = parse_ts(event["occurred_at"])
                abandoned += not any(added <= t <= added + timedelta(hours=24) for t in purchases)
        assert abandoned >= 2, person


def test_frequent_browsers_visit_many_times_a_week_mostly_viewing(world: World) -> None:
    def per_week(person: dict[str, str]) -> float:
        events = world.by_key[person["person_key"]]
        span = parse_ts(events[-1]["occurred_at"]) - parse_ts(events[0]["occurred_at"])
        return int(person["n_sessions"]) / max(span / timedelta(weeks=1), 1.0)

    browsers = of_archetype(world, "frequent_browser")
    assert median(per_week(p) for p in browsers) >= 3
    sessions = {a: median(int(p["n_sessions"]) for p in of_archetype(world, a)) for a in ARCHETYPES}
    assert sessions["frequent_browser"] == max(sessions.values())
    assert sessions["frequent_browser"] > 5 * sessions["casual"]
    for person in browsers:
        types = Counter(e["event_type"] for e in world.by_key[person["person_key"]])
        assert (types["page_view"] + types["product_view"]) / sum(types.values()) > 0.7


def test_content_explorers_read_content_and_rarely_buy(world: World) -> None:
    shares, buyers = [], 0
    for person in of_archetype(world, "content_explorer"):
        events = world.by_key[person["person_key"]]
        views = [e for e in events if e["event_type"] == "page_view"]
        shares.append(sum(e.get("page_type") == "content" for e in views) / len(views))
        buyers += any(e["event_type"] == "purchase" for e in events)
    assert median(shares) > 0.6
    assert buyers <= 0.2 * len(shares)


def test_price_sensitive_filter_by_price_search_sales_and_use_codes(world: World) -> None:
    def profile(archetype: str) -> tuple[float, float, float, float]:
        filters = searches = cheap = codes = purchases = 0
        prices: list[float] = []
        for person in of_archetype(world, archetype):
            for e in world.by_key[person["person_key"]]:
                props = e.get("properties", {})
                if e["event_type"] == "filter_applied":
                    filters += 1
                    cheap += props["filter"] == "price"
                if e["event_type"] == "search":
                    searches += 1
                    cheap += any(w in props["query"] for w in ("sale", "cheap"))
                if e["event_type"] == "purchase":
                    purchases += 1
                    codes += "discount_code" in props
                if e["event_type"] == "product_view":
                    prices.append(e["price"])
        return cheap / (filters + searches), codes / max(purchases, 1), median(prices), purchases

    thrifty, casual, loyal = (
        profile("price_sensitive"),
        profile("casual"),
        profile("high_value_loyal"),
    )
    assert thrifty[0] > 0.5 > casual[0]
    assert thrifty[1] > 0.5 > casual[1] and thrifty[3] > 0
    assert thrifty[2] < casual[2] < loyal[2]


def test_bots_crawl_without_identity(world: World) -> None:
    bots = [p for p in world.persons if p["is_bot"] == "true"]
    assert bots and all(not p["customer_id"] for p in bots)
    for person in bots:
        events = world.by_key[person["person_key"]]
        assert len(events) > 50
        assert all("user_id" not in e for e in events)
        agents = {e["user_agent"] for e in events}
        assert all(any(m in ua for m in BOT_MARKERS) for ua in agents)
    human_agents = {
        e.get("user_agent")
        for p in of_archetype(world, "casual")
        for e in world.by_key[p["person_key"]]
    }
    assert not any(m in (ua or "") for ua in human_agents for m in BOT_MARKERS)


# --- identity --------------------------------------------------------------------------------


def test_customers_link_several_devices_after_browsing_anonymously(world: World) -> None:
    multi_device = anonymous_first = web_customers = 0
    for person in world.persons:
        anon_ids = [a for a in person["anonymous_ids"].split("|") if a]
        events = world.by_key.get(person["person_key"], [])
        if not person["customer_id"]:
            assert all("user_id" not in e for e in events)
            continue
        linked = {
            e["anonymous_id"]
            for e in events
            if e.get("user_id") == person["customer_id"] and "anonymous_id" in e
        }
        assert set(anon_ids) <= linked, person["person_key"]
        web_customers += bool(events)
        multi_device += len(anon_ids) >= 2
        anonymous_first += bool(events) and "user_id" not in events[0]
    assert multi_device >= max(3, 0.1 * web_customers)
    assert anonymous_first >= max(3, 0.2 * web_customers)


def test_personal_values_are_unique_and_realistic(world: World) -> None:
    rows = world.crm.execute("SELECT email, phone FROM customers").fetchall()
    emails = [r["email"] for r in rows]
    phones = [r["phone"] for r in rows if r["phone"]]
    assert len(set(emails)) == len(emails) and len(set(phones)) == len(phones)
    assert all(e.count("@") == 1 and e.split("@")[1].startswith("example.") for e in emails)
    ips = Counter()
    for person in world.persons:
        ips.update({e["ip"] for e in world.by_key.get(person["person_key"], []) if "ip" in e})
    assert max(ips.values()) == 1, "an ip belongs to one person"


# --- CRM -------------------------------------------------------------------------------------


def test_every_web_purchase_has_a_matching_crm_order(world: World) -> None:
    orders = {r["order_id"]: r for r in world.crm.execute("SELECT * FROM orders")}
    web_ids = set()
    for _, rec in world.landed.valid:
        if rec["event_type"] != "purchase":
            continue
        order = orders[rec["order_id"]]
        web_ids.add(rec["order_id"])
        assert order["customer_id"] == rec["user_id"]
        assert order["total_amount"] == pytest.approx(rec["revenue"])
        assert parse_ts(order["ordered_at"]) == parse_ts(rec["occurred_at"])
        assert order["ordered_at"].endswith("Z") and order["currency"] == rec["currency"]
    offline = set(orders) - web_ids
    assert web_ids and offline
    statuses = Counter(r["status"] for r in orders.values())
    assert statuses["completed"] > 0.8 * len(orders) and statuses["cancelled"] > 0
    assert world.doc["web_orders"] == len(web_ids)


def test_crm_customers_orders_and_consents_match_the_truth(world: World) -> None:
    customers = {r["customer_id"]: r for r in world.crm.execute("SELECT * FROM customers")}
    truth_customers = {p["customer_id"]: p for p in world.persons if p["customer_id"]}
    assert set(customers) == set(truth_customers)
    n_orders = Counter(
        r["customer_id"] for r in world.crm.execute("SELECT customer_id FROM orders")
    )
    for customer_id, person in truth_customers.items():
        assert n_orders[customer_id] == int(person["n_orders"])
    offline = of_archetype(world, "offline_buyer")
    assert offline and all(int(p["n_events"]) == 0 < int(p["n_orders"]) for p in offline)
    consents = world.crm.execute(
        "SELECT purpose, COUNT(*) AS n, AVG(granted) AS share FROM consents GROUP BY purpose"
    ).fetchall()
    by_purpose = {r["purpose"]: r for r in consents}
    assert set(by_purpose) == {"analytics", "personalization", "marketing"}
    assert all(r["n"] == len(customers) for r in consents)
    assert by_purpose["marketing"]["share"] < by_purpose["analytics"]["share"]
    for row in customers.values():
        assert parse_ts(row["signup_at"]) <= parse_ts(row["updated_at"]) <= AS_OF


# --- API and CLI -----------------------------------------------------------------------------


def test_generate_refuses_to_overwrite_and_validates_arguments(
    world: World, tmp_path: Path
) -> None:
    with pytest.raises(FileExistsError):
        generate(world.summary.out_dir, n_events=5_000)
    with pytest.raises(ValueError, match="timezone"):
        generate(tmp_path / "x", n_events=5_000, as_of=datetime(2026, 1, 1))
    assert world.summary.crm_url == f"sqlite:///{world.summary.crm_path}"
    assert world.summary.crm_path.is_absolute()


def test_cli_refuses_non_empty_dir_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sample"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    args = ["--events", "5000", "--out", str(out), "--seed", "3", "--files", "3", "-q"]
    assert main(args) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    assert main([*args, "--force"]) == 0
    assert "5,000 lines in 3 files" in capsys.readouterr().out
    stale = out / "landing" / "events-1999-01-01-9999.jsonl"
    stale.write_text("{}\n")
    assert main([*args, "--force", "--timing"]) == 0
    assert not stale.exists() and (out / "notes.txt").read_text() == "keep me"
    assert len(list((out / "landing").iterdir())) == 3


def test_planted_experiments_mark_each_person_with_one_experiment_and_variant(world: World):
    """sample_data/experiments.py: every exposed person is in one experiment of layer web, in one
    variant, from their first exposure on (never before the start); the truth records the
    planted effects and the drawn shares."""
    from sample_data.experiments import LIFT, NULL, SRM, START, VARIANTS

    planted = world.doc["experiments"]["experiments"]
    assert set(planted) == {LIFT, NULL, SRM}
    seen: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for key, events in world.by_key.items():
        for rec in events:
            if "experiment_id" in rec:
                assert rec["experiment_variant"] in VARIANTS
                assert parse_ts(rec["occurred_at"]) >= START
                seen[key].add((rec["experiment_id"], rec["experiment_variant"]))
            else:
                assert "experiment_variant" not in rec
    assert seen and all(len(pairs) == 1 for pairs in seen.values())
    counts = Counter(next(iter(pairs)) for pairs in seen.values())
    treatment = {k: counts[(k, "treatment")] / (counts[(k, "treatment")] + counts[(k, "control")])
                 for k in planted}  # fmt: skip
    assert treatment[SRM] > 0.6 and abs(treatment[NULL] - 0.5) < 0.15
    rates = planted[LIFT]["web_conversion_after_exposure_by_variant"]
    assert rates["treatment"] > 1.5 * rates["control"]
    assert planted[LIFT]["true_relative_lift_conversion"] > 0
    assert planted[NULL]["true_relative_lift_conversion"] == 0


def test_picking_products_by_taste_needs_no_row_per_session_and_product():
    """The 10M-event sample drew 2.2M sessions over 5,000 products: a (sessions x products)
    float array (82 GiB) stopped it. Memory follows the sessions, the draws stay the same."""
    import tracemalloc

    import numpy as np

    from sample_data.taste import Taste, _cumulative_by_factor, pick_products

    rng = np.random.default_rng(7)
    n_products, n_persons, n_sessions = 5_000, 1_000, 20_000
    taste = Taste(
        product_factor=rng.integers(0, 4, n_products).astype(np.int8),
        popularity=np.full(n_products, 1 / n_products),
        person_taste=rng.dirichlet(np.ones(4), n_persons),
        pairs=np.zeros((0, 2), dtype=np.int32),
        window=50,
    )
    person = rng.integers(0, n_persons, n_sessions)
    position = rng.integers(0, n_products, n_sessions)
    tracemalloc.start()
    picked = pick_products(taste, person, position, np.random.default_rng(1))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20  # a row per session and product: 800 MB here
    # the same draws as the per-row formula, on a few rows
    draw = np.random.default_rng(1)
    u = draw.random(n_sessions)
    factor = np.minimum((u[:, None] > np.cumsum(taste.person_taste[person], axis=1)).sum(1), 3)
    cum = _cumulative_by_factor(taste)
    lo = np.clip(position - taste.window, 0, n_products - 1)
    hi = np.clip(position + taste.window + 1, 1, n_products)
    target = cum[factor, lo] + draw.random(n_sessions) * (cum[factor, hi] - cum[factor, lo])
    for i in range(0, n_sessions, 997):
        expected = np.searchsorted(cum[factor[i]], target[i], side="right") - 1
        assert picked[i] == np.clip(expected, lo[i], hi[i] - 1)
    assert ((picked >= lo) & (picked < hi)).all()
