"""Expectation suite for the warehouse table ``raw.events`` (one row per landed event).

Blocking (``severity="critical"``, the GX default) is the raw event contract in DESIGN.md. These
rules gate everything downstream, together with the row count relative to the previous run
(raw.events only grows). Warnings (``severity="warning"``) flag suspicious values that staging
can still handle. Thresholds live in expectations/thresholds.py. Every expectation is pushed
down to DuckDB as SQL.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from expectations.thresholds import (
    DEVICE_TYPE_MOSTLY,
    MAX_CLOCK_SKEW_HOURS,
    QUANTITY_RANGE,
    RAW_EVENTS_MIN_ROWS,
)

from .common import WARNING, row_count_vs_previous

SUITE_NAME = "raw_events"
TABLE = "raw.events"

KEY_COLUMNS = ["event_id", "event_type", "occurred_at", "anonymous_id", "user_id"]
ID_COLUMN = "event_id"
MIN_ROWS = RAW_EVENTS_MIN_ROWS
DEVICE_TYPES = ["desktop", "mobile", "tablet", "other"]


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``raw_events`` suite; unexpected examples carry the row's ``event_id``.

    ``previous_row_count`` (the table's rows after the previous run) adds the row-count bounds.
    """
    blocking: list[gxe.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=KEY_COLUMNS,
            exact_match=False,
            description="the key columns exist",
        ),
        gxe.ExpectTableRowCountToBeBetween(
            min_value=MIN_ROWS, description=f"the table has at least {MIN_ROWS} row"
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="event_id", description="event_id values are never null"
        ),
        gxe.ExpectColumnValuesToBeUnique(
            column="event_id", description="event_id values are unique"
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="event_type", description="event_type values are never null"
        ),
        gxe.ExpectColumnValuesToNotBeNull(
            column="occurred_at", description="occurred_at values are never null"
        ),
        # "anonymous_id or user_id" as a column-map expectation: it is pushed down as an
        # aggregate plus a LIMIT-ed example query, like the other null checks.
        gxe.ExpectColumnValuesToNotBeNull(
            column="anonymous_id",
            row_condition=Column("user_id").is_null(),
            description="every event has an anonymous_id or a user_id",
        ),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    warnings: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToBeBetween(
            column="price", min_value=0, severity=WARNING, description="price is never negative"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="revenue",
            min_value=0,
            severity=WARNING,
            description="revenue is never negative",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="quantity",
            min_value=QUANTITY_RANGE[0],
            max_value=QUANTITY_RANGE[1],
            severity=WARNING,
            description=f"quantity is between {QUANTITY_RANGE[0]} and {QUANTITY_RANGE[1]}",
        ),
        # Comparing epochs is about 10x faster in DuckDB than TIMESTAMPTZ + INTERVAL arithmetic.
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT event_id, occurred_at, received_at FROM {batch} "
                f"WHERE epoch(occurred_at) - epoch(received_at) > {MAX_CLOCK_SKEW_HOURS * 3600}"
            ),
            severity=WARNING,
            description=(
                f"occurred_at is not later than received_at + {MAX_CLOCK_SKEW_HOURS} hours"
            ),
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="device_type",
            value_set=DEVICE_TYPES,
            mostly=DEVICE_TYPE_MOSTLY,
            severity=WARNING,
            description=(
                f"at least {DEVICE_TYPE_MOSTLY:.0%} of device_type values are one of "
                + ", ".join(DEVICE_TYPES)
            ),
        ),
    ]
    return gx.ExpectationSuite(
        name=SUITE_NAME,
        expectations=blocking + warnings,
        meta={"table": TABLE, "unexpected_index_column_names": [ID_COLUMN]},
    )
