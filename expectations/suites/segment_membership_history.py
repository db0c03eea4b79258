"""Expectation suite for the dbt mart ``marts.segment_membership_history`` (when each person
entered and left each segment; one row per membership).

Blocking: the columns exist; ``membership_id`` is never null and unique; every membership names
a person, a segment and when it was entered; a membership ends after it starts; ``is_current``
is true exactly while the membership has not ended; a person holds at most one open membership
per segment; the history did not lose rows since the previous run (it only grows). Warning: the
row count did not jump.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from .common import BATCH, columns_exist, not_null, row_count_vs_previous, suite, unique

SUITE_NAME = "segment_membership_history"
TABLE = "marts.segment_membership_history"

ID_COLUMN = "membership_id"
COLUMNS = ["membership_id", "person_id", "segment_key", "entered_at", "left_at", "is_current"]


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``segment_membership_history`` suite; ``previous_row_count`` adds the row-count
    bounds."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        not_null("person_id"),
        not_null("segment_key"),
        not_null("entered_at"),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="left_at",
            column_B="entered_at",
            ignore_row_if="either_value_is_missing",
            description="a membership ends after it starts",
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                f"SELECT membership_id, left_at, is_current FROM {BATCH} "
                "WHERE is_current IS DISTINCT FROM (left_at IS NULL)"
            ),
            description="is_current is true exactly while left_at is null",
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["person_id", "segment_key"],
            row_condition=Column("left_at").is_null(),
            description="a person holds at most one open membership per segment",
        ),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    return suite(SUITE_NAME, TABLE, blocking, id_columns=[ID_COLUMN])
