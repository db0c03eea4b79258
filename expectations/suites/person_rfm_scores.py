"""Expectation suite for the dbt mart ``marts.person_rfm_scores`` (RFM of every buyer).

Blocking: the columns exist; ``person_id`` is never null and unique; the R, F and M scores are
quintiles 1 to 5; every buyer has an RFM segment; recency, frequency and monetary value are not
negative; the row count did not collapse since the previous run. Warning: the row count did not
jump.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from .common import columns_exist, not_null, row_count_vs_previous, suite, unique

SUITE_NAME = "person_rfm_scores"
TABLE = "marts.person_rfm_scores"

ID_COLUMN = "person_id"
SCORE_COLUMNS = ["r_score", "f_score", "m_score"]
SCORES = [1, 2, 3, 4, 5]
NON_NEGATIVE_COLUMNS = ["recency_days", "frequency", "monetary"]
COLUMNS = [ID_COLUMN, *SCORE_COLUMNS, *NON_NEGATIVE_COLUMNS, "rfm_segment_key"]


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``person_rfm_scores`` suite; ``previous_row_count`` adds the row-count bounds."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        *(
            gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=SCORES, description=f"{column} is a quintile 1 to 5"
            )
            for column in SCORE_COLUMNS
        ),
        not_null("rfm_segment_key"),
        *(
            gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=0, description=f"{column} is never negative"
            )
            for column in NON_NEGATIVE_COLUMNS
        ),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    return suite(SUITE_NAME, TABLE, blocking, id_columns=[ID_COLUMN])
