"""Expectation suites for the dbt marts whose every structural rule is a dbt test: the row count.

dbt owns the structural rules of the models it builds: the enforced contract (columns, types,
not-null constraints) and the data tests beside it (keys, accepted values, ranges, relationships,
row-level logic such as "nothing after as_of" or "one decision per person"), in each folder's
``_<folder>__models.yml`` and in dbt_project/tests. What dbt does not see is how a table changed
since the previous run. Each suite here checks that: blocking when the row count collapsed,
a warning when it jumped, with the suite's bounds in expectations/thresholds.py.

The suites are named like their mart (``marts.<name>``), so that the Dagster check of each mart
keeps its name.
"""

from __future__ import annotations

from collections.abc import Callable

import great_expectations as gx

from .common import row_count_vs_previous, suite

ROW_COUNT_SUITES = (  # person_features has a suite of its own (person_features.py)
    "sessions",
    "person_rfm_scores",
    "segment_membership_history",
    "content_decisions",
)


def table(suite_name: str) -> str:
    return f"marts.{suite_name}"


def row_count_suite(suite_name: str) -> Callable[..., gx.ExpectationSuite]:
    """The builder of the row-count suite of the mart ``suite_name``."""

    def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
        """``previous_row_count`` adds the row-count bounds; without it the suite is empty."""
        return suite(
            suite_name,
            table(suite_name),
            row_count_vs_previous(suite_name, previous_row_count),
        )

    return build_suite
