"""Integration: bringing your own data (real Dagster runs on small fixtures): the deployment
modes (SEGWH_SOURCES: CRM only, events only), an event vocabulary mapped in the taxonomy seed,
Segment-spec landing files."""

import dataclasses
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dbt_helpers import copy_project
from own_data_fixtures import (
    CRM_AS_OF,
    FIXTURE_RATES,
    FOREIGN_EXPECTED,
    FOREIGN_ORDER_EUR,
    FOREIGN_SESSIONS,
    FOREIGN_TAXONOMY_ROWS,
    HAND_COMPUTED,
    SEGMENT_EMAIL,
    SEGMENT_EXPECTED,
    UNMAPPED_EVENT_TYPE,
    append_seed_rows,
    write_crm,
    write_foreign_clickstream,
    write_segment_file,
)
from run_helpers import check_evaluations, materialization_metadata, run_full_build, scalar

from orchestration.run_report import check_report
from sample_data import DEFAULT_AS_OF
from warehouse.connection import connect
from warehouse.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _settings(tmp_path: Path, sample, **changes) -> Settings:
    changes = {"as_of": DEFAULT_AS_OF.isoformat(), **changes}
    return Settings.in_folder(tmp_path, sample.landing_dir, sample.crm_url, **changes)


def _failed_checks(result) -> list[str]:
    return [
        e.check_name
        for e in check_evaluations(result)
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def _published(settings: Settings, sql: str):
    path = settings.resolved_serving_dir / "segments.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchone()[0]


def _failure_texts(result) -> str:
    """Everything a failed run says: failed checks (with their failures) and step errors."""
    texts = []
    for event in result.all_events:
        data = event.event_specific_data
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not data.passed:
            texts.append(f"{data.check_name}: {data.metadata.get('failures_markdown')}")
        if event.event_type_value == "STEP_FAILURE" and data.error:
            texts.append(data.error.message)
    return "\n".join(texts)


def test_crm_only_with_three_currencies_and_the_consent_default(tmp_path, instance):
    """SEGWH_SOURCES=crm with a CRM this project did not generate (900 buyers over 20 months,
    orders in EUR, GBP and USD, no consents table) and no landing folder at all.

    The first run stops at the check that says why nobody is profiled (no consent record, and
    consent_defaults_customers says no). With that default changed and the exchange rates
    replaced (seed and var edits in a copy of the dbt project), the run publishes features,
    RFM, segments, clusters and churn from the orders alone; spend is converted at the rate of
    each order's date (hand-computed totals) and the order in a currency without a rate is
    left out and reported."""
    crm = tmp_path / "crm.sqlite"
    write_crm(crm, with_consents=False)
    settings = Settings.in_folder(
        tmp_path,
        tmp_path / "no-landing-folder",
        f"sqlite:///{crm}",
        as_of=CRM_AS_OF.isoformat(),
        sources=("crm",),
    )

    refused = run_full_build(settings, instance)

    assert not refused.success
    assert "expectations_person_features" in _failed_checks(refused)
    failure = _failure_texts(refused)
    assert "consent_defaults_customers" in failure and "consents table" in failure
    # what `segwh run` prints at the end: the check, what was observed, what to do
    report = "\n".join(check_report(check_evaluations(refused)))
    assert "BLOCKING (the run did not publish): marts/person_features" in report
    assert "change the default" in report
    assert '"persons_profiled": 0, "customers": 903, "analytics_consent_records": 0' in report

    project = copy_project(tmp_path / "dbt_project")
    project_yml = project / "dbt_project.yml"
    project_yml.write_text(
        project_yml.read_text().replace(
            "consent_defaults_customers: {analytics: false, personalization: false,",
            "consent_defaults_customers: {analytics: true, personalization: true,",
        )
    )
    rates = project / "seeds" / "exchange_rates.csv"
    rates.write_text("currency,valid_from,rate\n")
    append_seed_rows(rates, FIXTURE_RATES)
    settings = dataclasses.replace(settings, dbt_project_dir=project)

    result = run_full_build(settings, instance)

    assert result.success, _failed_checks(result)
    assert scalar(settings, "SELECT count(*) FROM raw.events") == 0
    assert scalar(settings, "SELECT count(*) FROM marts.sessions") == 0
    with sqlite3.connect(crm) as source:  # customers with an order at or before as_of
        (expected_buyers,) = source.execute(
            "SELECT count(DISTINCT customer_id) FROM orders WHERE ordered_at <= ?",
            [CRM_AS_OF.isoformat()],
        ).fetchone()
    with connect(settings.warehouse_path, read_only=True) as con:
        buyers, sessions = con.execute(
            "SELECT count(*) FILTER (WHERE completed_orders > 0), max(session_count) "
            "FROM marts.person_features"
        ).fetchone()
        assert (buyers, sessions) == (expected_buyers, 0)
        for hand in HAND_COMPUTED:
            (spend,) = con.execute(
                "SELECT f.lifetime_spend FROM marts.person_features AS f "
                "JOIN intermediate.int_orders_deduplicated AS o USING (person_id) "
                "WHERE o.order_id = ?",
                [hand.orders[0][0]],
            ).fetchone()
            assert float(spend) == hand.lifetime_spend_eur, hand
        assert con.execute(
            "SELECT amount, exchange_rate FROM intermediate.int_orders_deduplicated "
            "WHERE order_id = 'H-CHF'"
        ).fetchone() == (None, None)
    unrated = _evaluation(result, "has_exchange_rate_int_orders_deduplicated_exchange_rate")
    assert not unrated.passed and unrated.severity == dg.AssetCheckSeverity.WARN
    model = materialization_metadata(result, dg.AssetKey(["ml", "churn_model"]))
    assert model["trained"].value, model.get("reason")
    for table in ("person_rfm_scores", "person_segments", "person_clusters", "churn_scores"):
        assert _published(settings, f"SELECT count(*) FROM {table}") > 0, table


def _evaluation(result, check_name: str):
    return next(e for e in check_evaluations(result) if e.check_name == check_name)


def _session_counts(con, event_id: str) -> list[tuple]:
    """(page views, product views, add to carts, checkout starts, purchases, event count) of every
    session of the person of ``event_id``."""
    return con.execute(
        """SELECT page_views, product_views, add_to_carts, checkout_starts, purchases, event_count
        FROM marts.sessions WHERE person_id = (
            SELECT person_id FROM intermediate.int_events_stitched WHERE event_id = ?)""",
        [event_id],
    ).fetchall()


def test_events_only_with_a_foreign_vocabulary_and_segment_files(tmp_path, small_sample, instance):
    """SEGWH_SOURCES=events, the CRM URL points nowhere (never opened). Next to the sample, a
    clickstream in a foreign vocabulary, mapped by rows appended to the taxonomy seed only, and
    Segment-spec messages as Segment's Python library builds them: page views, funnel steps and
    purchases come out as counted by hand; identify and alias calls stitch; the one unmapped
    event type warns with its count."""
    day = datetime(2026, 12, 1, tzinfo=UTC)  # after the sample's events: its funnel day is ours
    landing = tmp_path / "landing"
    shutil.copytree(small_sample.landing_dir, landing)
    write_foreign_clickstream(landing / "shop-2026-12-01.jsonl", day)
    messages = write_segment_file(landing / "segment-2026-12-01.jsonl", day)
    project = copy_project(tmp_path / "dbt_project")
    append_seed_rows(project / "seeds" / "event_taxonomy.csv", FOREIGN_TAXONOMY_ROWS)
    settings = _settings(
        tmp_path,
        small_sample,
        landing_dir=landing,
        crm_url="postgresql://nobody@127.0.0.1:1/none",
        sources=("events",),
        dbt_project_dir=project,
        as_of=(day + timedelta(days=1)).isoformat(),
    )

    result = run_full_build(settings, instance)

    assert result.success, _failed_checks(result)
    with connect(settings.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.crm_orders").fetchone() == (0,)
        funnel = dict(
            con.execute(
                "SELECT step_name, sessions_reached FROM marts.funnel_steps WHERE funnel_date = ?",
                [day.date()],
            ).fetchall()
        )
        assert funnel == {"product_view": 5, "add_to_cart": 3, "checkout": 2, "purchase": 2}
        for anonymous_id, expected in FOREIGN_EXPECTED.items():
            events = len(FOREIGN_SESSIONS[anonymous_id])
            assert _session_counts(con, f"{anonymous_id}-0") == [(*expected, events)]
        # Segment: one person per visitor across anonymous and user ids, one session each
        first_of = {
            m["anonymousId"]: m["messageId"] for m in reversed(messages) if m.get("anonymousId")
        }
        for anonymous_id, expected in SEGMENT_EXPECTED.items():
            assert _session_counts(con, first_of[anonymous_id]) == [expected]
        persons = con.execute(
            "SELECT count(DISTINCT person_id) FROM intermediate.int_events_stitched "
            "WHERE event_id IN (SELECT unnest(?))",
            [
                [
                    m["messageId"]
                    for m in messages
                    if m.get("userId") == "u-500" or m.get("anonymousId") == "s-anon-1"
                ]
            ],
        ).fetchone()
        assert persons == (1,)
        # ... and reach the person's features: one order, its product view and cart
        assert con.execute(
            "SELECT completed_orders, product_views, add_to_carts, session_count "
            "FROM marts.person_features WHERE person_id = ("
            "  SELECT person_id FROM intermediate.int_events_stitched WHERE event_id = ?)",
            [first_of["s-anon-1"]],
        ).fetchone() == (1, 1, 1, 1)
        # event revenue in GBP is converted into the reporting currency
        assert con.execute(
            "SELECT s.revenue, o.amount FROM marts.sessions AS s "
            "JOIN intermediate.int_orders_deduplicated AS o USING (person_id) "
            "WHERE o.order_id = 'f-anon-1-order'"
        ).fetchone() == (Decimal(str(FOREIGN_ORDER_EUR)), Decimal(str(FOREIGN_ORDER_EUR)))
        # orders come from purchase events; the Segment coupon is the discount code
        assert con.execute(
            "SELECT count(*), count(*) FILTER (WHERE order_source = 'web'), "
            "count(*) FILTER (WHERE discount_code = 'WINTER10') "
            "FROM intermediate.int_orders_deduplicated "
            "WHERE order_id IN ('S-O1', 'f-anon-1-order')"
        ).fetchone() == (2, 2, 1)
        # the identify call's email stays in raw
        assert con.execute(
            "SELECT properties->>'$.email' FROM raw.events WHERE event_type = 'identify'"
        ).fetchall() == [(SEGMENT_EMAIL,)]
    warning = _evaluation(result, "expectations_stg_events_warnings")
    assert not warning.passed
    report = warning.metadata["failures_markdown"].value
    assert UNMAPPED_EVENT_TYPE in report and "event taxonomy" in report
    assert _published(settings, "SELECT count(*) FROM person_segments") > 0
