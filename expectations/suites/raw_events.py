"""Expectation suite for the warehouse table ``raw.events`` (one row per landed event).

Blocking (``severity="critical"``, the GX default) is the raw event contract, declared once in
ingestion/contracts/events.toml (``contracts.py`` reads it): its columns exist, ``event_id`` is
unique, the required fields are never null and every event has an identity (anonymous id or user
id). These rules gate everything downstream, together with the row count relative to the
previous run (raw.events only grows). Warnings (``severity="warning"``) flag suspicious values
that staging can still handle. Thresholds live in expectations/thresholds.py. Every expectation
is pushed down to DuckDB as SQL.
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

from .common import WARNING, columns_exist, not_null, row_count_vs_previous, suite, unique
from .contracts import raw_event_fields

SUITE_NAME = "raw_events"
TABLE = "raw.events"

COLUMNS = raw_event_fields()
REQUIRED_COLUMNS = raw_event_fields("required")
IDENTITY_COLUMNS = raw_event_fields("identity")
ID_COLUMN = "event_id"
MIN_ROWS = RAW_EVENTS_MIN_ROWS
DEVICE_TYPES = ["desktop", "mobile", "tablet", "other"]


def build_suite(
    previous_row_count: int | None = None, events_expected: bool = True
) -> gx.ExpectationSuite:
    """The ``raw_events`` suite; unexpected examples carry the row's ``event_id``.

    ``previous_row_count`` (the table's rows after the previous run) adds the row-count bounds;
    ``events_expected`` False (a deployment without a clickstream) drops the minimum row count.
    """
    first_identity, other_identity = IDENTITY_COLUMNS  # anonymous_id, user_id
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        *(
            [
                gxe.ExpectTableRowCountToBeBetween(
                    min_value=MIN_ROWS,
                    description=(
                        f"the table has at least {MIN_ROWS} row; if the landing folder is "
                        "empty on purpose (order history without a clickstream), set "
                        "SEGWH_SOURCES=crm"
                    ),
                )
            ]
            if events_expected
            else []
        ),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        *(not_null(column) for column in REQUIRED_COLUMNS if column != ID_COLUMN),
        # "anonymous_id or user_id" as a column-map expectation: it is pushed down as an
        # aggregate plus a LIMIT-ed example query, like the other null checks.
        gxe.ExpectColumnValuesToNotBeNull(
            column=first_identity,
            row_condition=Column(other_identity).is_null(),
            description=f"every event has an {first_identity} or a {other_identity}",
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
    return suite(SUITE_NAME, TABLE, blocking + warnings, id_columns=[ID_COLUMN])
