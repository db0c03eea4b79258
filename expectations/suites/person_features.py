"""Expectation suite for the dbt mart ``marts.person_features`` (one row per person).

Blocking: the columns below exist; ``person_id`` is never null and unique; counts and day counts
are never negative; rates and shares lie in [0, 1]; the features were computed at this run's
``as_of`` and see nothing after it; the row count did not collapse since the previous run.
Warning: the row count did not jump.

The column lists are the contract with the mart (dbt_project/models/marts/behaviour): when a
feature is added, renamed or dropped there, adjust ``COUNT_COLUMNS`` or ``RATE_COLUMNS`` here.
A listed column that is missing fails ``columns_exist``, naming it.
"""

from __future__ import annotations

from datetime import datetime

import great_expectations as gx
import great_expectations.expectations as gxe

from .common import (
    BATCH,
    columns_exist,
    not_null,
    row_count_vs_previous,
    sql_timestamp,
    suite,
    unique,
    utc_naive,
)

SUITE_NAME = "person_features"
TABLE = "marts.person_features"

ID_COLUMN = "person_id"
COUNT_COLUMNS = [
    "anonymous_ids",
    "user_ids",
    "tenure_days",
    "days_since_last_seen",
    "recency_days",
    "frequency",
    "orders",
    "completed_orders",
    "orders_7d",
    "orders_30d",
    "web_orders",
    "events",
    "events_7d",
    "events_30d",
    "events_90d",
    "events_last_hour",
    "events_last_5_minutes",
    "sessions",
    "sessions_7d",
    "sessions_30d",
    "sessions_90d",
    "converted_sessions",
    "page_views",
    "product_views",
    "product_views_7d",
    "content_page_views",
    "add_to_carts",
    "add_to_carts_7d",
    "abandoned_carts",
    "abandoned_carts_30d",
    "discounted_orders",
    "filter_uses",
    "price_filter_uses",
    "device_types_used",
]
"""Counts (and whole-day counts): 0 or more."""
RATE_COLUMNS = [
    "conversion_rate",
    "bounce_rate",
    "content_page_share",
    "cart_abandonment_rate",
    "discounted_order_share",
    "price_filter_share",
    "desktop_share",
    "mobile_share",
    "tablet_share",
]
"""Rates and shares: in [0, 1] (null when their denominator is 0)."""


def build_suite(
    previous_row_count: int | None = None, as_of: datetime | None = None
) -> gx.ExpectationSuite:
    """The ``person_features`` suite. ``previous_row_count`` adds the row-count bounds,
    ``as_of`` the checks that the features are computed at it and see nothing after it."""
    blocking: list[gxe.Expectation] = [
        columns_exist([ID_COLUMN, *COUNT_COLUMNS, *RATE_COLUMNS, "last_seen_at", "as_of"]),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=0, description=f"{column} is never negative"
            )
            for column in COUNT_COLUMNS
        ),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=column,
                min_value=0,
                max_value=1,
                description=f"{column} is within [0, 1]",
            )
            for column in RATE_COLUMNS
        ),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    if as_of is not None:
        blocking += [
            gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=(
                    f"SELECT person_id, as_of FROM {BATCH} "
                    f"WHERE as_of IS DISTINCT FROM {sql_timestamp(as_of)}"
                ),
                description=f"the features are computed at this run's as_of ({as_of.isoformat()})",
            ),
            gxe.ExpectColumnMaxToBeBetween(
                column="last_seen_at",
                max_value=utc_naive(as_of),
                description="no person was last seen after as_of",
            ),
        ]
    return suite(SUITE_NAME, TABLE, blocking, id_columns=[ID_COLUMN])
