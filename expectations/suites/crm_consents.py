"""Expectation suite for ``raw.crm_consents``: the CRM consent snapshot, every column as text.

The consents table is optional in the CRM; without it the raw table is empty, which passes.
Blocking: the contract's columns exist; every consent names a customer, a known purpose and a
``granted`` value that staging can read as a boolean (an unreadable one would silently become
"unknown" consent); the row count did not collapse since the previous run. Warnings: one row per
customer and purpose; ``updated_at`` is parseable.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from .common import (
    WARNING,
    columns_exist,
    not_null,
    parseable,
    row_count_vs_previous,
    suite,
)
from .contracts import crm_columns

SUITE_NAME = "crm_consents"
TABLE = "raw.crm_consents"

ID_COLUMN = "customer_id"
COLUMNS = crm_columns("consents")  # the CRM contract (ingestion/contracts/crm.toml)
PURPOSES = ["analytics", "personalization", "marketing"]


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``crm_consents`` suite; ``previous_row_count`` adds the row-count bounds."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null("customer_id"),
        not_null("purpose"),
        gxe.ExpectColumnValuesToBeInSet(
            column="purpose",
            value_set=PURPOSES,
            description="purpose is one of " + ", ".join(PURPOSES),
        ),
        not_null("granted"),
        parseable("granted", "BOOLEAN", ID_COLUMN),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    warnings: list[gxe.Expectation] = [
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["customer_id", "purpose"],
            severity=WARNING,
            description="one consent per customer and purpose",
        ),
        parseable("updated_at", "TIMESTAMPTZ", ID_COLUMN, severity=WARNING),
    ]
    return suite(SUITE_NAME, TABLE, blocking + warnings, id_columns=[ID_COLUMN])
