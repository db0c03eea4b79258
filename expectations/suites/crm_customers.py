"""Expectation suite for ``raw.crm_customers``: the CRM customer snapshot, every column as text.

Blocking: the columns of the CRM contract exist; ``customer_id`` is never null and unique (a CRM
export that holds a customer twice is the planted bad batch of issue 5: it must not reach the
published segments); the row count did not collapse since the previous run. Warnings: e-mail
addresses look like e-mail addresses; timestamps and the birth year are parseable.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

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

SUITE_NAME = "crm_customers"
TABLE = "raw.crm_customers"

ID_COLUMN = "customer_id"
COLUMNS = crm_columns("customers")  # the CRM contract (ingestion/contracts/crm.toml)
# One @, no spaces, a dot in the domain (RE2, full match). Deliberately loose: it flags typos
# and placeholders such as "n/a", not every address RFC 5322 would refuse.
EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``crm_customers`` suite; ``previous_row_count`` adds the row-count bounds."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    warnings: list[gxe.Expectation] = [
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                f"SELECT customer_id, email FROM {BATCH} WHERE email IS NOT NULL "
                f"AND NOT regexp_full_match(trim(email), '{EMAIL_PATTERN}')"
            ),
            severity=WARNING,
            description="email values look like e-mail addresses",
        ),
        parseable("signup_at", "TIMESTAMPTZ", ID_COLUMN, severity=WARNING),
        parseable("updated_at", "TIMESTAMPTZ", ID_COLUMN, severity=WARNING),
        parseable("birth_year", "INTEGER", ID_COLUMN, severity=WARNING),
    ]
    return suite(SUITE_NAME, TABLE, blocking + warnings, id_columns=[ID_COLUMN])
