"""Expectation suite for ``raw.crm_orders``: the CRM order snapshot, every column as text.

Blocking: the contract's columns exist; ``order_id`` is never null and unique; every order has a
``customer_id``, an ``ordered_at`` and a ``total_amount``; amounts and timestamps are parseable
(staging casts with ``try_cast``, which would turn bad text into nulls silently) and amounts
are not negative; the row count did not collapse since the previous run. Warnings: the status
is a known one; ``items_count`` is a whole number that is not negative.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.thresholds import ORDER_STATUS_MOSTLY

from .common import (
    BATCH,
    WARNING,
    columns_exist,
    not_null,
    parseable,
    row_count_vs_previous,
    suite,
    unique,
)
from .contracts import crm_columns

SUITE_NAME = "crm_orders"
TABLE = "raw.crm_orders"

ID_COLUMN = "order_id"
COLUMNS = crm_columns("orders")  # the CRM contract (ingestion/contracts/crm.toml)
AMOUNT_TYPE = "DECIMAL(18, 2)"  # the type staging casts total_amount to
ORDER_STATUSES = ["completed", "cancelled", "returned"]


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``crm_orders`` suite; ``previous_row_count`` adds the row-count bounds."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        not_null("customer_id"),
        not_null("ordered_at"),
        not_null("total_amount"),
        parseable("total_amount", AMOUNT_TYPE, ID_COLUMN),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                f"SELECT order_id, total_amount FROM {BATCH} "
                f"WHERE TRY_CAST(total_amount AS {AMOUNT_TYPE}) < 0"
            ),
            description="total_amount is never negative",
        ),
        parseable("ordered_at", "TIMESTAMPTZ", ID_COLUMN),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    warnings: list[gxe.Expectation] = [
        gxe.ExpectColumnValuesToBeInSet(
            column="status",
            value_set=ORDER_STATUSES,
            mostly=ORDER_STATUS_MOSTLY,
            severity=WARNING,
            description="status is one of " + ", ".join(ORDER_STATUSES),
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                f"SELECT order_id, items_count FROM {BATCH} WHERE items_count IS NOT NULL "
                "AND coalesce(TRY_CAST(items_count AS INTEGER) < 0, true)"
            ),
            severity=WARNING,
            description="items_count is a whole number that is not negative",
        ),
    ]
    return suite(SUITE_NAME, TABLE, blocking + warnings, id_columns=[ID_COLUMN])
