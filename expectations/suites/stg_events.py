"""Expectation suite for the dbt view ``staging.stg_clickstream__events`` (human events, typed).

Blocking: the row count did not collapse since the previous run; the newest event at or before
the run's ``as_of`` is not older than ``FRESHNESS_BLOCKING_HOURS``; at most
``UNMAPPED_EVENT_SHARE_BLOCKING`` of the events have an event type the event taxonomy seed does
not know. Warnings: ... not older than ``FRESHNESS_WARNING_HOURS``; the row count did not jump;
page types are known ones (``mostly``); every event type is in the taxonomy (the unmapped ones
with their counts and shares).

The structural rules of the staged events (the documented columns exist, ``event_id`` never
null and unique, every event has a type, an ``occurred_at`` and an anonymous id or user id) are
dbt's: the tests in dbt_project/models/staging/clickstream/_clickstream__models.yml.

Freshness looks only at events at or before ``as_of`` because that is all the features use: a
backtest at an earlier ``as_of`` is judged by the data that existed then, and events after it
(later loads, client clocks running ahead) neither help nor hurt.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from expectations.thresholds import (
    FRESHNESS_BLOCKING_HOURS,
    FRESHNESS_WARNING_HOURS,
    PAGE_TYPE_MOSTLY,
    UNMAPPED_EVENT_SHARE_BLOCKING,
)

from .common import BATCH, WARNING, row_count_vs_previous, severity_kwargs, suite, utc_naive

SUITE_NAME = "stg_events"
TABLE = "staging.stg_clickstream__events"

ID_COLUMN = "event_id"
PAGE_TYPES = ["home", "category", "product", "content", "cart", "checkout", "search", "account"]
# The event taxonomy seed (dbt): event types it has no row for have no role in the models.
TAXONOMY_TABLE = "seeds.event_taxonomy"
TAXONOMY_FIX = (
    "map them to roles in dbt_project/seeds/event_taxonomy.csv (one row per event type: role "
    "and whether it counts as a page view; README, 'Bring your own data')"
)


def build_suite(
    previous_row_count: int | None = None,
    as_of: datetime | None = None,
    events_expected: bool = True,
) -> gx.ExpectationSuite:
    """The ``stg_events`` suite. ``previous_row_count`` adds the row-count bounds, ``as_of``
    the freshness of the newest event unless ``events_expected`` is False (a deployment without
    a clickstream has no newest event)."""
    blocking = [*row_count_vs_previous(SUITE_NAME, previous_row_count), unmapped_events_at_most()]
    warnings: list[gxe.Expectation] = [
        unmapped_event_types(),
        gxe.ExpectColumnValuesToBeInSet(
            column="page_type",
            value_set=PAGE_TYPES,
            mostly=PAGE_TYPE_MOSTLY,
            severity=WARNING,
            description=(
                f"at least {PAGE_TYPE_MOSTLY:.0%} of page_type values are one of "
                + ", ".join(PAGE_TYPES)
            ),
        ),
    ]
    if as_of is not None and events_expected:
        blocking.append(newest_event_within(as_of, FRESHNESS_BLOCKING_HOURS, severity=None))
        warnings.append(newest_event_within(as_of, FRESHNESS_WARNING_HOURS, severity=WARNING))
    return suite(SUITE_NAME, TABLE, blocking + warnings, id_columns=[ID_COLUMN])


def newest_event_within(
    as_of: datetime, hours: int, *, severity: str | None, column: str = "occurred_at"
) -> gxe.Expectation:
    """The newest ``column`` at or before ``as_of`` is at most ``hours`` older than ``as_of``.

    The observed value in the result is that newest event's time.
    """
    as_of_utc = utc_naive(as_of)
    return gxe.ExpectColumnMaxToBeBetween(
        column=column,
        min_value=as_of_utc - timedelta(hours=hours),
        row_condition=Column(column) <= as_of_utc,
        description=(
            f"the newest event at or before as_of ({as_of_utc.isoformat()}) is at most "
            f"{hours} hours old; for a historical as_of or a backfill of data that ends "
            "earlier, set SEGWH_AS_OF to an instant at most that long after the newest event "
            "(the limits are FRESHNESS_*_HOURS in expectations/thresholds.py)"
        ),
        **severity_kwargs(severity),
    )


_UNMAPPED = f"event_type NOT IN (SELECT lower(trim(event_type)) FROM {TAXONOMY_TABLE})"


def unmapped_event_types() -> gxe.Expectation:
    """Warning: every event type is in the taxonomy; the examples are the unmapped types, most
    frequent first, with their event counts and shares of all events."""
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            f"SELECT event_type, count(*) AS events, "
            f"round(count(*) / (SELECT count(*) FROM {BATCH}), 4) AS share_of_events "
            f"FROM {BATCH} WHERE {_UNMAPPED} GROUP BY event_type ORDER BY events DESC"
        ),
        severity=WARNING,
        description=f"every event type is in the event taxonomy; if not, {TAXONOMY_FIX}",
    )


def unmapped_events_at_most(share: float = UNMAPPED_EVENT_SHARE_BLOCKING) -> gxe.Expectation:
    """Blocking: at most ``share`` of the events have an event type the taxonomy lacks (one
    unexpected row, with the counts, when more do)."""
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            f"SELECT count(*) FILTER (WHERE {_UNMAPPED}) AS unmapped_events, "
            f"count(*) AS events FROM {BATCH} "
            f"HAVING count(*) FILTER (WHERE {_UNMAPPED}) > {share} * count(*)"
        ),
        description=(
            f"at most {share:.0%} of the events have an event type that is not in the event "
            f"taxonomy; if more do, {TAXONOMY_FIX}"
        ),
    )
