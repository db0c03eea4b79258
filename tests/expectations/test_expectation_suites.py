"""Tests for the expectation suites of expectations/suites and their wiring as Dagster checks.

A module-wide "good" warehouse (real DuckDB file: raw CRM tables, the load audit, staged events,
dbt seeds and marts) passes every suite with every per-run parameter. Each bad case copies it,
spoils one thing with SQL, and asserts that exactly the expected expectation fails, with the
expected severity. Together they cover every kind of expectation the suites use: not-null,
unique, in-set, row count vs the previous run, freshness against as_of, rejected share of a
load, segment minimum share and TRY_CAST parseability. The Dagster part checks that the previous
run's row count and the run's as_of reach the suites, and that every suite is wired to an asset.

The structural rules of dbt models are dbt tests (tests/dbt/test_dbt_rules.py shows each catching
its bad row); the suites keep what dbt does not check (raw tables, load audits, freshness, row
counts against the previous run, shares), and the raw-table suites take their columns from the
ingestion contracts (tests/expectations/test_expectations.py).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
from run_helpers import settings_without_data

from expectations import ExpectationOutcome, SuiteOutcome, validate_table
from expectations.suites import SUITE_BUILDERS, SUITE_TABLES, load_suite, suite_parameters
from expectations.suites import crm_customers as crm_customers_suite
from expectations.suites.common import row_count_vs_previous, suite
from expectations.suites.stg_events import unmapped_events_at_most
from expectations.thresholds import (
    REJECTED_SHARE_BLOCKING,
    REJECTED_SHARE_WARNING,
    SEGMENT_SHARE_MIN_POPULATION,
    row_count_bounds,
)
from ingestion.events import DDL as EVENTS_DDL
from orchestration.checks import expectation_check, previous_row_count
from orchestration.resources import AsOfResource, LandingZoneResource, WarehouseResource

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
AS_OF_SQL = "TIMESTAMP '2026-11-01 00:00:00'"
PERSONS = 1_200  # above SEGMENT_SHARE_MIN_POPULATION, so segment shares are checked
CUSTOMERS = 100
ORDERS = 200
EVENTS = 500
SESSIONS = 2 * PERSONS
MEMBERSHIPS = PERSONS + PERSONS // 3 + PERSONS // 5 + 2 * (PERSONS // 4)
HISTORY_ROWS = MEMBERSHIPS + PERSONS  # every membership open, plus one closed per person

GOOD_WAREHOUSE = f"""
CREATE SCHEMA raw; CREATE SCHEMA staging; CREATE SCHEMA seeds; CREATE SCHEMA marts;

CREATE TABLE raw.crm_customers AS SELECT
    'C' || i AS customer_id, 'c' || i || '@example.com' AS email, 'Ada' AS first_name,
    'Lovelace' AS last_name, NULL::VARCHAR AS phone, 'DE' AS country, 'Berlin' AS city,
    '1990' AS birth_year, 'middle' AS income_bracket, NULL::VARCHAR AS education,
    '2025-01-01T00:00:00Z' AS signup_at, 'gold' AS loyalty_tier,
    '2026-10-01 12:00:00' AS updated_at, now() AS _loaded_at, 'load-2' AS _load_id
FROM range({CUSTOMERS}) AS t(i);

CREATE TABLE raw.crm_orders AS SELECT
    'O' || i AS order_id, 'C' || (i % {CUSTOMERS}) AS customer_id,
    '2026-10-01T10:00:00+02:00' AS ordered_at, (10 + i % 50) || '.50' AS total_amount,
    'EUR' AS currency, (['completed', 'cancelled', 'returned'])[1 + i % 3] AS status,
    (1 + i % 4)::VARCHAR AS items_count, now() AS _loaded_at, 'load-2' AS _load_id
FROM range({ORDERS}) AS t(i);

CREATE TABLE raw.crm_consents AS SELECT
    'C' || (i // 3) AS customer_id,
    (['analytics', 'personalization', 'marketing'])[1 + i % 3] AS purpose,
    (['1', '0', 'true'])[1 + i % 3] AS granted, '2026-09-01T00:00:00Z' AS updated_at,
    now() AS _loaded_at, 'load-2' AS _load_id
FROM range({3 * CUSTOMERS}) AS t(i);

-- two loads of two files each; 0.5% rejected
CREATE TABLE raw.event_load_audit AS SELECT
    'load-' || (1 + i // 2) AS load_id, '/landing/f' || i || '.jsonl' AS file_path,
    'f' || i || '.jsonl' AS file_name, 'jsonl' AS file_format, 1000::BIGINT AS file_size,
    0::BIGINT AS file_mtime_ns, 'sha' || i AS file_sha256, 1000::BIGINT AS landed,
    CASE WHEN i = 0 THEN 985 ELSE 990 END::BIGINT AS loaded, 5::BIGINT AS rejected,
    5::BIGINT AS duplicate, TIMESTAMPTZ '2026-10-31 00:00:00+00' + i * INTERVAL 1 HOUR AS loaded_at,
    -- rows of erased persons, dropped at ingestion and counted
    CASE WHEN i = 0 THEN 5 ELSE 0 END::BIGINT AS suppressed
FROM range(4) AS t(i);

-- every 10 minutes before as_of, plus three events after it (ignored by freshness)
CREATE TABLE staging.stg_clickstream__events AS SELECT
    'e' || i AS event_id, CASE WHEN abs(i) % 2 = 0 THEN 'a' || i END AS anonymous_id,
    CASE WHEN abs(i) % 2 = 1 THEN 'C' || (abs(i) % {CUSTOMERS}) END AS user_id,
    'page_view' AS event_type,
    (['home', 'category', 'product', 'content', 'cart', 'checkout', 'search', 'account'])
        [1 + (i + 3) % 8] AS page_type,
    {AS_OF_SQL} - (i * INTERVAL 10 MINUTE) AS occurred_at, 'load-1' AS load_id
FROM range(-3, {EVENTS}) AS t(i) WHERE i <> 0;

CREATE TABLE seeds.event_taxonomy AS SELECT * FROM (VALUES
    ('page_view', NULL, 'page_view', true), ('Product Viewed', NULL, 'product_view', false)
) AS t(event_type, page_type, role, counts_as_page_view);
CREATE TABLE seeds.segments AS SELECT * FROM (VALUES
    ('frequent_visitor', 'Frequent visitors', 'micro_segment', NULL),
    ('cart_abandoner', 'Cart abandoners', 'micro_segment', NULL),
    ('stage_loyalty', 'Loyalty', 'purchase_stage', 1),
    ('stage_awareness', 'Awareness', 'purchase_stage', 2)
) AS t(segment_key, segment_name, segment_group, priority);
CREATE TABLE seeds.rfm_segments AS SELECT * FROM (VALUES
    ('rfm_champions', 'Champions', 4, 5), ('rfm_champions', 'Champions', 5, 5),
    ('rfm_lost', 'Lost', 1, 1)
) AS t(segment_key, segment_name, r_score_min, r_score_max);
CREATE TABLE seeds.content_decision_rules AS SELECT * FROM (VALUES
    ('cart_reminder', 10, 'cart_abandoner', 'cart_reminder'),
    ('default', 1000, NULL, 'default')
) AS t(rule_id, priority, segment_key, content_variant);

CREATE TABLE marts.person_features AS SELECT
    'p' || i AS person_id, (i % 7)::BIGINT AS event_count,
    {AS_OF_SQL} - INTERVAL 1 HOUR - i * INTERVAL 1 MINUTE AS last_seen_at, {AS_OF_SQL} AS as_of
FROM range({PERSONS}) AS t(i);

CREATE TABLE marts.sessions AS SELECT
    's' || i AS session_id, 'p' || (i % {PERSONS}) AS person_id,
    {AS_OF_SQL} - INTERVAL 2 HOUR - i * INTERVAL 1 MINUTE AS started_at,
    {AS_OF_SQL} - INTERVAL 2 HOUR - i * INTERVAL 1 MINUTE + INTERVAL 5 MINUTE AS ended_at,
    300.0::DOUBLE AS duration_seconds, 3::BIGINT AS event_count, 2::BIGINT AS page_views,
    false AS is_converted
FROM range({SESSIONS}) AS t(i);

CREATE TABLE marts.person_segments AS
WITH persons AS (SELECT i FROM range({PERSONS}) AS t(i)),
held AS (
    SELECT i, 'purchase_stage' AS segment_group,
        CASE WHEN i % 2 = 0 THEN 'stage_loyalty' ELSE 'stage_awareness' END AS segment_key
    FROM persons
    UNION ALL SELECT i, 'micro_segment', 'frequent_visitor' FROM persons WHERE i % 3 = 0
    UNION ALL SELECT i, 'micro_segment', 'cart_abandoner' FROM persons WHERE i % 5 = 0
    UNION ALL SELECT i, 'rfm', 'rfm_champions' FROM persons WHERE i % 4 = 0
    UNION ALL SELECT i, 'rfm', 'rfm_lost' FROM persons WHERE i % 4 = 1
)
SELECT 'p' || i AS person_id, segment_group, segment_key, segment_key AS segment_name,
    {AS_OF_SQL} AS as_of
FROM held;

CREATE TABLE marts.content_decisions AS SELECT
    'p' || i AS person_id,
    CASE WHEN i % 5 = 0 THEN 'cart_reminder' ELSE 'default' END AS content_variant,
    CASE WHEN i % 5 = 0 THEN 'cart_reminder' ELSE 'default' END AS decision_rule_id,
    CASE WHEN i % 5 = 0 THEN 10 ELSE 1000 END AS decision_priority,
    CASE WHEN i % 5 = 0 THEN 'cart_abandoner' END AS decision_segment_key,
    {AS_OF_SQL} AS as_of
FROM range({PERSONS}) AS t(i);

CREATE TABLE marts.person_rfm_scores AS SELECT
    'p' || i AS person_id, (i % 90)::INTEGER AS recency_days,
    (1 + i % 4)::BIGINT AS completed_orders, (20 + i)::DECIMAL(18, 2) AS lifetime_spend,
    (1 + i % 5)::INTEGER AS r_score,
    (1 + i % 5)::INTEGER AS f_score, (1 + (i + 1) % 5)::INTEGER AS m_score,
    CASE WHEN i % 4 = 0 THEN 'rfm_champions' ELSE 'rfm_lost' END AS rfm_segment_key
FROM range({PERSONS}) AS t(i) WHERE i % 4 IN (0, 1);

-- open memberships for what persons hold now, plus one closed earlier membership each
CREATE TABLE marts.segment_membership_history AS
SELECT 'open-' || person_id || '-' || segment_key AS membership_id, person_id, segment_group,
    segment_key, {AS_OF_SQL} - INTERVAL 10 DAY AS entered_at, NULL::TIMESTAMP AS left_at,
    true AS is_current
FROM marts.person_segments
UNION ALL
SELECT 'closed-p' || i, 'p' || i, 'micro_segment', 'cart_abandoner',
    {AS_OF_SQL} - INTERVAL 30 DAY, {AS_OF_SQL} - INTERVAL 20 DAY, false
FROM range({PERSONS}) AS t(i);
"""

ROW_COUNTS = {
    "raw.crm_customers": CUSTOMERS,
    "raw.crm_orders": ORDERS,
    "raw.crm_consents": 3 * CUSTOMERS,
    "raw.event_load_audit": 4,
    "staging.stg_clickstream__events": EVENTS + 2,
    "marts.person_features": PERSONS,
    "marts.sessions": SESSIONS,
    "marts.content_decisions": PERSONS,
}

# raw_events has its own tests (tests/expectations/test_expectations.py) and table.
WAREHOUSE_SUITES = sorted(name for name in SUITE_BUILDERS if name != "raw_events")


@pytest.fixture(scope="module")
def good_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("good") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(GOOD_WAREHOUSE)
    return path


def spoiled(good: Path, tmp_path: Path, *changes: str) -> Path:
    """A copy of the good warehouse with SQL ``changes`` applied."""
    path = tmp_path / "warehouse.duckdb"
    shutil.copy(good, path)
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'UTC'")
        for change in changes:
            con.execute(change)
    return path


def row_count(path: Path, table: str) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def full_params(name: str, path: Path) -> dict[str, Any]:
    """Every per-run parameter the suite takes, as a run on the good warehouse would pass."""
    accepted = suite_parameters(name)
    params: dict[str, Any] = {}
    if "previous_row_count" in accepted:
        params["previous_row_count"] = row_count(path, SUITE_TABLES[name])
    if "as_of" in accepted:
        params["as_of"] = AS_OF
    if "load_id" in accepted:
        params["load_id"] = "load-2"
    return params


def validate(path: Path, name: str, **params: Any) -> SuiteOutcome:
    return validate_table(path, SUITE_TABLES[name], load_suite(name, **params))


def failures(outcome: SuiteOutcome) -> list[ExpectationOutcome]:
    return [o for o in outcome.outcomes if not o.success]


# --- the good warehouse passes every suite, with every parameter ----------------------------


@pytest.mark.parametrize("name", WAREHOUSE_SUITES)
def test_good_tables_pass_every_suite(good_warehouse: Path, name: str) -> None:
    params = full_params(name, good_warehouse)
    outcome = validate(good_warehouse, name, **params)

    assert failures(outcome) == []
    assert outcome.success
    assert all(
        o.observed_value is None or "error" not in str(o.observed_value) for o in outcome.outcomes
    )
    # the per-run parameters added their expectations
    if "previous_row_count" in params:
        counts = [
            o for o in outcome.outcomes if o.expectation_type.endswith("row_count_to_be_between")
        ]
        assert {o.blocking for o in counts} == {True, False}
        assert {o.observed_value for o in counts} == {params["previous_row_count"]}


# --- each bad table fails exactly the expectation it breaks ---------------------------------


@dataclass(frozen=True)
class Bad:
    """A spoiled table: the suite, the SQL that spoils it, and what must fail."""

    suite: str
    changes: list[str]
    description: str  # of the one expectation that must fail (a prefix is enough)
    blocking: bool
    unexpected: int | None = None  # unexpected_count, where the expectation reports one
    example: dict[str, Any] | None = None  # one of the unexpected examples
    params: dict[str, Any] = field(default_factory=dict)


BAD_CASES = {
    # not-null
    "customer-id-null": Bad(
        "crm_customers",
        ["UPDATE raw.crm_customers SET customer_id = NULL WHERE customer_id = 'C7'"],
        "customer_id values are never null",
        blocking=True,
        unexpected=1,
    ),
    "order-without-customer": Bad(
        "crm_orders",
        ["UPDATE raw.crm_orders SET customer_id = NULL WHERE order_id = 'O3'"],
        "customer_id values are never null",
        blocking=True,
        unexpected=1,
        example={"order_id": "O3", "customer_id": None},
    ),
    # unique: the planted bad batch, a CRM export holding a customer twice
    "customer-twice": Bad(
        "crm_customers",
        ["INSERT INTO raw.crm_customers SELECT * FROM raw.crm_customers WHERE customer_id = 'C4'"],
        "customer_id values are unique",
        blocking=True,
        unexpected=2,
        example={"customer_id": "C4"},
    ),
    "order-twice": Bad(
        "crm_orders",
        ["UPDATE raw.crm_orders SET order_id = 'O1' WHERE order_id = 'O2'"],
        "order_id values are unique",
        blocking=True,
        unexpected=2,
    ),
    "one-consent-twice": Bad(
        "crm_consents",
        [
            "INSERT INTO raw.crm_consents SELECT * FROM raw.crm_consents "
            "WHERE customer_id = 'C1' AND purpose = 'marketing'"
        ],
        "one consent per customer and purpose",
        blocking=False,
        unexpected=2,
    ),
    # in-set
    "unknown-consent-purpose": Bad(
        "crm_consents",
        [
            "UPDATE raw.crm_consents SET purpose = 'sales' "
            "WHERE customer_id = 'C2' AND purpose = 'marketing'"
        ],
        "purpose is one of",
        blocking=True,
        unexpected=1,
        example={"customer_id": "C2", "purpose": "sales"},
    ),
    "unknown-order-status": Bad(
        "crm_orders",
        ["UPDATE raw.crm_orders SET status = 'lost in the mail' WHERE order_id = 'O9'"],
        "status is one of",
        blocking=False,
        unexpected=1,
    ),
    # row count relative to the previous run (raw CRM snapshot: default bounds)
    "crm-snapshot-shrank": Bad(
        "crm_customers",
        [
            "DELETE FROM raw.crm_customers "
            "WHERE customer_id IN (SELECT customer_id FROM raw.crm_customers LIMIT 11)"
        ],
        "the row count shrank by at most 10% since the previous run (100 rows): at least 90",
        blocking=True,
        params={"previous_row_count": CUSTOMERS},
    ),
    "crm-snapshot-jumped": Bad(
        "crm_customers",
        [
            "INSERT INTO raw.crm_customers SELECT * REPLACE ('X' || customer_id AS "
            "customer_id) FROM raw.crm_customers LIMIT 51"
        ],
        "the row count grew by at most 50% since the previous run (100 rows): at most 150",
        blocking=False,
        params={"previous_row_count": CUSTOMERS},
    ),
    "history-lost-a-row": Bad(  # a history must never shrink (bounds of its own)
        "segment_membership_history",
        ["DELETE FROM marts.segment_membership_history WHERE membership_id = 'closed-p0'"],
        "the row count did not shrink since the previous run",
        blocking=True,
        params={"previous_row_count": HISTORY_ROWS},
    ),
    # freshness of the newest event at or before as_of
    "events-a-day-and-more-old": Bad(
        "stg_events",
        [],
        "the newest event at or before as_of (2026-11-02T02:00:00) is at most 24 hours old",
        blocking=False,
        params={"as_of": AS_OF + timedelta(hours=26)},
    ),
    # nobody profiled: the failure names consent and counts what the CRM delivered
    "nobody-profiled": Bad(
        "person_features",
        ["DELETE FROM marts.person_features"],
        "at least one person is profiled; if none is, nobody has analytics consent",
        blocking=True,
        unexpected=1,
        example={"persons_profiled": 0, "customers": CUSTOMERS},
    ),
    # the event taxonomy: an event type without a row warns, with its count (seed names are
    # compared in lower case, as staging lowercases event types)
    "an-event-type-the-taxonomy-lacks": Bad(
        "stg_events",
        [
            "UPDATE staging.stg_clickstream__events SET event_type = 'home' "
            "WHERE event_id IN ('e1', 'e2')",
            "UPDATE staging.stg_clickstream__events SET event_type = 'product viewed' "
            "WHERE event_id = 'e3'",
        ],
        "every event type is in the event taxonomy",
        blocking=False,
        unexpected=1,
        example={"event_type": "home", "events": 2},
    ),
    # TRY_CAST parseability of raw text
    "amount-not-a-number": Bad(
        "crm_orders",
        ["UPDATE raw.crm_orders SET total_amount = '12,50 EUR' WHERE order_id = 'O5'"],
        "total_amount values are parseable as DECIMAL(18, 2)",
        blocking=True,
        unexpected=1,
        example={"order_id": "O5", "total_amount": "12,50 EUR"},
    ),
    "negative-amount": Bad(
        "crm_orders",
        ["UPDATE raw.crm_orders SET total_amount = '-3.00' WHERE order_id = 'O6'"],
        "total_amount is never negative",
        blocking=True,
        unexpected=1,
        example={"order_id": "O6", "total_amount": "-3.00"},
    ),
    "order-date-unreadable": Bad(
        "crm_orders",
        ["UPDATE raw.crm_orders SET ordered_at = '31/10/2026' WHERE order_id = 'O7'"],
        "ordered_at values are parseable as TIMESTAMPTZ",
        blocking=True,
        unexpected=1,
    ),
    "consent-granted-unreadable": Bad(
        "crm_consents",
        [
            "UPDATE raw.crm_consents SET granted = 'maybe' "
            "WHERE customer_id = 'C3' AND purpose = 'analytics'"
        ],
        "granted values are parseable as BOOLEAN",
        blocking=True,
        unexpected=1,
        example={"customer_id": "C3", "granted": "maybe"},
    ),
    "signup-unreadable": Bad(
        "crm_customers",
        ["UPDATE raw.crm_customers SET signup_at = 'last spring' WHERE customer_id = 'C8'"],
        "signup_at values are parseable as TIMESTAMPTZ",
        blocking=False,
        unexpected=1,
        example={"customer_id": "C8", "signup_at": "last spring"},
    ),
    "email-malformed": Bad(
        "crm_customers",
        ["UPDATE raw.crm_customers SET email = 'n/a' WHERE customer_id = 'C9'"],
        "email values look like e-mail addresses",
        blocking=False,
        unexpected=1,
        example={"customer_id": "C9", "email": "n/a"},
    ),
    # rejected share of this run's load, and the per-file accounting
    "load-rejects-above-warning": Bad(
        "event_load",
        ["UPDATE raw.event_load_audit SET loaded = 965, rejected = 30 WHERE load_id = 'load-2'"],
        f"at most {REJECTED_SHARE_WARNING:.0%} of the lines landed in this run's load",
        blocking=False,
        unexpected=1,
        example={
            "load_id": "load-2",
            "files": 2,
            "landed": 2000,
            "rejected": 60,
            "rejected_share": 0.03,
        },
        params={"load_id": "load-2"},
    ),
    "file-accounting-broken": Bad(
        "event_load",
        ["UPDATE raw.event_load_audit SET loaded = 900 WHERE file_name = 'f0.jsonl'"],
        "every file's landed lines = loaded + rejected + duplicate + suppressed",
        blocking=True,
        unexpected=1,
        example={
            "load_id": "load-1",
            "file_name": "f0.jsonl",
            "landed": 1000,
            "loaded": 900,
            "rejected": 5,
            "duplicate": 5,
        },
        params={"load_id": "load-2"},
    ),
    # segments: minimum share
    "segment-below-min-share": Bad(
        "person_segments",
        ["DELETE FROM marts.person_segments WHERE segment_key = 'rfm_lost' AND person_id <> 'p1'"],
        "every segment holds at least 0.1% of all persons",
        blocking=False,
        unexpected=1,
        example={
            "segment_key": "rfm_lost",
            "persons": 1,
            "share_of_persons": 0.00083,
            "population": PERSONS,
        },
    ),
}


@pytest.mark.parametrize("case", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_bad_table_fails_that_expectation(good_warehouse: Path, tmp_path: Path, case: Bad) -> None:
    path = spoiled(good_warehouse, tmp_path, *case.changes)
    outcome = validate(path, case.suite, **case.params)

    (failed,) = failures(outcome)
    assert failed.description.startswith(case.description), failed
    assert failed.blocking is case.blocking
    assert outcome.success is not case.blocking
    if case.unexpected is not None:
        assert failed.unexpected_count == case.unexpected
    if case.example is not None:
        assert any(
            case.example.items() <= example.items() for example in failed.unexpected_examples
        ), failed.unexpected_examples


def test_events_a_week_old_block_and_events_after_as_of_do_not_count(
    good_warehouse: Path,
) -> None:
    stale = validate(good_warehouse, "stg_events", as_of=AS_OF + timedelta(days=8))
    assert {(o.blocking, o.observed_value) for o in failures(stale)} == {
        (True, "2026-11-01T00:30:00"),
        (False, "2026-11-01T00:30:00"),
    }
    assert not stale.success

    # at an as_of in the past (a backtest), later events are ignored: fresh again
    assert failures(validate(good_warehouse, "stg_events", as_of=AS_OF - timedelta(hours=30))) == []


def test_without_a_clickstream_no_event_is_expected(good_warehouse: Path, tmp_path: Path) -> None:
    """SEGWH_SOURCES=crm: empty event tables pass; with events expected they block, and the
    failure names the setting."""
    path = spoiled(
        good_warehouse, tmp_path, EVENTS_DDL, "DELETE FROM staging.stg_clickstream__events"
    )
    (empty,) = failures(validate(path, "raw_events"))
    assert empty.blocking and "SEGWH_SOURCES=crm" in empty.description
    assert failures(validate(path, "raw_events", events_expected=False)) == []
    assert not validate(path, "stg_events", as_of=AS_OF).success  # no newest event
    assert validate(path, "stg_events", as_of=AS_OF, events_expected=False).success


def test_unmapped_event_types_block_above_their_share(good_warehouse: Path, tmp_path: Path) -> None:
    # a third of the events (167 of 502) get a name the taxonomy does not know
    path = spoiled(
        good_warehouse,
        tmp_path,
        "UPDATE staging.stg_clickstream__events SET event_type = 'catalog' "
        "WHERE CAST(substr(event_id, 2) AS INTEGER) % 3 = 0",
    )
    outcome = validate(path, "stg_events")
    assert not outcome.success
    (blocking,) = outcome.failed_blocking
    assert blocking.description.startswith("at most 25% of the events have an event type")
    assert "seeds/event_taxonomy.csv" in blocking.description
    assert blocking.unexpected_examples == [{"unmapped_events": 167, "events": 502}]
    (warning,) = outcome.failed_warnings
    assert warning.unexpected_examples == [
        {"event_type": "catalog", "events": 167, "share_of_events": 0.3327}
    ]
    # the share is a setting (expectations/thresholds.py): at 40% the same events pass
    lenient = suite("lenient", SUITE_TABLES["stg_events"], [unmapped_events_at_most(0.4)])
    assert validate_table(path, SUITE_TABLES["stg_events"], lenient).success


def test_rejected_share_blocks_above_the_higher_threshold(
    good_warehouse: Path, tmp_path: Path
) -> None:
    rejected = round(1000 * (REJECTED_SHARE_BLOCKING + 0.01))
    path = spoiled(
        good_warehouse,
        tmp_path,
        f"UPDATE raw.event_load_audit SET loaded = 995 - {rejected} - suppressed, "
        f"rejected = {rejected} "
        "WHERE load_id = 'load-1'",
    )
    # load-1 is the older load: this run's load (load-2) is fine
    assert failures(validate(path, "event_load", load_id="load-2")) == []

    outcome = validate(path, "event_load", load_id="load-1")
    assert sorted(o.blocking for o in failures(outcome)) == [False, True]
    assert not outcome.success
    # without a load id the suite looks at the latest load
    latest = validate(path, "event_load")
    assert failures(latest) == []
    assert "the latest load" in latest.outcomes[-1].description


def test_segment_shares_are_not_judged_on_a_small_population(
    good_warehouse: Path, tmp_path: Path
) -> None:
    path = spoiled(
        good_warehouse,
        tmp_path,
        "DELETE FROM marts.person_segments WHERE segment_key = 'rfm_lost'",
        f"DELETE FROM marts.person_features WHERE person_id NOT IN "
        f"(SELECT 'p' || i FROM range({SEGMENT_SHARE_MIN_POPULATION - 1}) AS t(i))",
    )
    assert failures(validate(path, "person_segments")) == []


def test_row_count_bounds_come_from_the_thresholds() -> None:
    assert row_count_vs_previous("crm_customers", None) == []
    assert row_count_vs_previous("crm_customers", 0) == []
    low, high = row_count_vs_previous("crm_customers", 1000)
    bounds = row_count_bounds("crm_customers")
    assert (low.min_value, low.severity.value) == (1000 * (1 - bounds.max_shrink), "critical")
    assert (high.max_value, high.severity.value) == (1000 * (1 + bounds.max_growth), "warning")
    raw_low, _ = row_count_vs_previous("raw_events", 1000)
    assert raw_low.min_value == 1000  # raw.events never shrinks


def test_suites_of_dbt_models_leave_structural_rules_to_dbt() -> None:
    """dbt tests own the structural rules of the tables dbt builds; their suites block only on
    the row count against the previous run, on freshness and on the share of events without a
    role (warnings may judge shares)."""
    dbt_built = [name for name, table in SUITE_TABLES.items() if not table.startswith("raw.")]
    assert {"stg_events", "person_features", "content_decisions"} <= set(dbt_built)
    for name in dbt_built:
        params = {"previous_row_count": 100, "as_of": AS_OF}
        suite = load_suite(name, **{k: v for k, v in params.items() if k in suite_parameters(name)})
        blocking = {
            e.expectation_type for e in suite.expectations if e.severity.value == "critical"
        }
        assert blocking <= {
            "expect_table_row_count_to_be_between",
            "expect_column_max_to_be_between",  # the newest staged event's age
            "unexpected_rows_expectation",  # the share of events the taxonomy does not know
        }, (name, blocking)


@pytest.mark.parametrize("entity", ["customers", "orders", "consents"])
def test_crm_suites_check_the_contract_ingestion_copies_with(
    good_warehouse: Path, tmp_path: Path, entity: str
) -> None:
    """The columns come from ingestion/contracts/crm.toml, as ingestion's CRM_ENTITIES do."""
    from ingestion.crm import CRM_ENTITIES, LOAD_ID_COLUMN, LOADED_AT_COLUMN

    suite = load_suite(f"crm_{entity}")
    [columns] = [
        e for e in suite.expectations if e.expectation_type == "expect_table_columns_to_match_set"
    ]
    expected = [*CRM_ENTITIES[entity].columns, LOADED_AT_COLUMN, LOAD_ID_COLUMN]
    assert list(columns.column_set) == expected

    # a raw table without one of the contract's columns fails the column expectation, naming it
    optional = CRM_ENTITIES[entity].optional_columns or CRM_ENTITIES[entity].required_columns
    dropped = optional[-1]
    path = spoiled(good_warehouse, tmp_path, f"ALTER TABLE raw.crm_{entity} DROP COLUMN {dropped}")
    failed = failures(validate(path, f"crm_{entity}"))
    assert failed[0].expectation_type == "expect_table_columns_to_match_set"
    assert failed[0].unexpected_examples == [f"missing: {dropped}"]


def test_suites_declare_their_per_run_parameters() -> None:
    assert suite_parameters("stg_events") == {"previous_row_count", "as_of", "events_expected"}
    assert suite_parameters("event_load") == {"load_id"}
    assert suite_parameters("crm_customers") == {"previous_row_count"}
    with pytest.raises(TypeError, match="as_of"):
        load_suite("crm_customers", as_of=AS_OF)
    # without parameters a suite leaves out what needs them
    plain = load_suite("stg_events")
    full = load_suite("stg_events", previous_row_count=10, as_of=AS_OF)
    assert len(full.expectations) == len(plain.expectations) + 4


# --- Dagster: per-run parameters reach the suites; every suite is wired -----------------------

CUSTOMERS_KEY = dg.AssetKey(["raw", "crm_customers"])
EVENTS_KEY = dg.AssetKey(["staging", "stg_clickstream__events"])


def _table_asset(key: dg.AssetKey, table: str, rows: int) -> dg.AssetsDefinition:
    """A stand-in for an ingestion or dbt asset: keeps the first ``rows`` of the table."""

    @dg.asset(key=key)
    def _asset(warehouse: WarehouseResource) -> dg.MaterializeResult:
        with warehouse.connect() as con:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS FROM {table} LIMIT {rows}")
        return dg.MaterializeResult(metadata={"dagster/row_count": dg.MetadataValue.int(rows)})

    return _asset


def _evaluations(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def _materialize(
    warehouse: Path, asset: dg.AssetsDefinition, check: dg.AssetChecksDefinition, instance, **kw
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset, check],
        instance=instance,
        resources={
            "warehouse": WarehouseResource(path=str(warehouse)),
            "as_of": AsOfResource(**kw),
            "landing": LandingZoneResource(path=str(warehouse.parent / "landing")),
        },
        raise_on_error=False,
    )


def test_the_check_compares_with_the_previous_runs_row_count(
    good_warehouse: Path, tmp_path: Path
) -> None:
    path = spoiled(good_warehouse, tmp_path)
    check = expectation_check(CUSTOMERS_KEY, "raw.crm_customers", "crm_customers")
    with dg.instance_for_test() as instance:
        first = _materialize(
            path, _table_asset(CUSTOMERS_KEY, "raw.crm_customers", 100), check, instance
        )
        second = _materialize(
            path, _table_asset(CUSTOMERS_KEY, "raw.crm_customers", 80), check, instance
        )
        assert previous_row_count(instance, CUSTOMERS_KEY, "another run") == 80
        assert previous_row_count(instance, CUSTOMERS_KEY, second.run_id) == 100

    assert first.success
    passed = _evaluations(first)["expectations_crm_customers"]
    assert passed.passed and passed.metadata["previous_row_count"].value == "none: first run"

    assert not second.success  # the blocking check failed
    failed = _evaluations(second)["expectations_crm_customers"]
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["previous_row_count"].value == 100
    assert "shrank by at most 10%" in failed.metadata["failures_markdown"].value
    assert _evaluations(second)["expectations_crm_customers_warnings"].passed


def test_the_check_judges_freshness_at_the_runs_as_of(good_warehouse: Path, tmp_path: Path) -> None:
    path = spoiled(good_warehouse, tmp_path)
    asset = _table_asset(EVENTS_KEY, "staging.stg_clickstream__events", EVENTS + 2)
    check = expectation_check(EVENTS_KEY, "staging.stg_clickstream__events", "stg_events")
    with dg.instance_for_test() as instance:
        fresh = _materialize(path, asset, check, instance, as_of=AS_OF.isoformat())
        stale = _materialize(path, asset, check, instance, as_of="2026-11-02T06:00:00Z")

    assert fresh.success and all(e.passed for e in _evaluations(fresh).values())
    assert stale.success  # a warning blocks nothing
    evaluations = _evaluations(stale)
    assert evaluations["expectations_stg_events"].passed
    assert (
        evaluations["expectations_stg_events"].metadata["as_of"].value
        == "2026-11-02T06:00:00+00:00"
    )
    warning = evaluations["expectations_stg_events_warnings"]
    assert not warning.passed and warning.severity == dg.AssetCheckSeverity.WARN
    assert "at most 24 hours old" in warning.metadata["failures_markdown"].value


def test_every_suite_runs_as_a_check_on_its_asset(tmp_path: Path) -> None:
    from orchestration.definitions import build_definitions

    settings = settings_without_data(tmp_path, as_of=AS_OF.isoformat())
    graph = build_definitions(settings).resolve_asset_graph()
    checks = graph.asset_check_keys
    existing = {key.to_user_string().replace("/", ".") for key in graph.get_all_asset_keys()}
    expected = {
        name for name in SUITE_BUILDERS if name == "event_load" or SUITE_TABLES[name] in existing
    }  # a suite is wired as soon as the model it gates exists in the dbt project
    wired = {
        key.name.removeprefix("expectations_"): key.asset_key.to_user_string()
        for key in checks
        if key.name.startswith("expectations_") and not key.name.endswith("_warnings")
    }
    assert set(wired) == expected
    assert {"raw_events", "event_load", "crm_customers", "stg_events"} <= expected
    for name, asset in wired.items():
        if name != "event_load":  # the load audit is part of the raw/events asset
            assert asset.replace("/", ".") == SUITE_TABLES[name]


def test_validation_memory_is_bounded_like_the_warehouse(good_warehouse: Path) -> None:
    import sqlalchemy as sa

    from expectations import duckdb_compat

    settings = {"TimeZone": "UTC", "memory_limit": "300MB"}
    engine = duckdb_compat.create_engine(good_warehouse, session_settings=settings)
    try:
        with engine.connect() as connection:
            setting = connection.execute(sa.text("SELECT current_setting('memory_limit')"))
            assert setting.scalar() == "286.1 MiB"  # 300 MB
    finally:
        engine.dispose()
    outcome = validate_table(
        good_warehouse,
        crm_customers_suite.TABLE,
        load_suite("crm_customers"),
        session_settings=settings,
    )
    assert outcome.success and failures(outcome) == [] and outcome.outcomes
