"""Expectation suite for the dbt mart ``marts.sessions`` (one row per session of a person).

Blocking: the columns exist; ``session_id`` is never null and unique; every session belongs to a
person and has a start and an end; it ends no earlier than it starts, lasts zero seconds or more
and holds at least one event; no session ends after the run's ``as_of`` (only events at or before
``as_of`` count downstream of staging); the row count did not collapse since the previous run.
Warning: the row count did not jump.
"""

from __future__ import annotations

from datetime import datetime

import great_expectations as gx
import great_expectations.expectations as gxe

from .common import columns_exist, not_null, row_count_vs_previous, suite, unique, utc_naive

SUITE_NAME = "sessions"
TABLE = "marts.sessions"

ID_COLUMN = "session_id"
COLUMNS = [
    "session_id",
    "person_id",
    "started_at",
    "ended_at",
    "duration_seconds",
    "events",
    "page_views",
    "is_converted",
]


def build_suite(
    previous_row_count: int | None = None, as_of: datetime | None = None
) -> gx.ExpectationSuite:
    """The ``sessions`` suite. ``previous_row_count`` adds the row-count bounds, ``as_of`` the
    check that no session ends after it."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        not_null("person_id"),
        not_null("started_at"),
        not_null("ended_at"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="ended_at",
            column_B="started_at",
            or_equal=True,
            description="a session ends no earlier than it starts",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="duration_seconds",
            min_value=0,
            description="duration_seconds is never negative",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="events", min_value=1, description="every session holds at least one event"
        ),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    if as_of is not None:
        blocking.append(
            gxe.ExpectColumnMaxToBeBetween(
                column="ended_at",
                max_value=utc_naive(as_of),
                description=f"no session ends after as_of ({utc_naive(as_of).isoformat()})",
            )
        )
    return suite(SUITE_NAME, TABLE, blocking, id_columns=[ID_COLUMN])
