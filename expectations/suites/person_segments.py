"""Expectation suite for the dbt mart ``marts.person_segments`` (segments held at ``as_of``).

Blocking: the row count did not collapse since the previous run. Warnings: every segment of the
seeds holds at least ``SEGMENT_MIN_SHARE`` of all persons (checked from
``SEGMENT_SHARE_MIN_POPULATION`` persons on; both in expectations/thresholds.py); the row count
did not jump.

The structural rules of the mart (columns and types, a person holds each segment once, segment
keys and groups from the segment catalogue, exactly one purchase stage per person) are dbt's:
the contract and tests in dbt_project/models/marts/segmentation/_segmentation__models.yml and
dbt_project/tests/assert_every_person_has_one_purchase_stage_and_one_decision.sql.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.thresholds import SEGMENT_MIN_SHARE, SEGMENT_SHARE_MIN_POPULATION

from .common import BATCH, WARNING, row_count_vs_previous, suite

SUITE_NAME = "person_segments"
TABLE = "marts.person_segments"

ID_COLUMNS = ["person_id", "segment_key"]
PERSONS_TABLE = "marts.person_features"
SEED_SEGMENT_TABLES = ["seeds.segments", "seeds.rfm_segments"]
"""dbt seeds whose ``segment_key`` column defines every segment a person can hold."""

_SEED_KEYS = " UNION ".join(f"SELECT segment_key FROM {table}" for table in SEED_SEGMENT_TABLES)


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``person_segments`` suite; ``previous_row_count`` adds the row-count bounds."""
    blocking = row_count_vs_previous(SUITE_NAME, previous_row_count)
    warnings: list[gxe.Expectation] = [
        segment_min_share(SEGMENT_MIN_SHARE, SEGMENT_SHARE_MIN_POPULATION)
    ]
    return suite(SUITE_NAME, TABLE, blocking + warnings, id_columns=ID_COLUMNS)


def segment_min_share(min_share: float, min_population: int) -> gxe.Expectation:
    """Warning: every seeded segment holds at least ``min_share`` of the persons.

    Empty segments count (their share is 0). One row per segment below the share, with its size,
    share and the population; nothing while there are fewer than ``min_population`` persons.
    """
    query = (
        f"WITH population AS (SELECT count(*) AS persons FROM {PERSONS_TABLE}), "
        f"catalog AS ({_SEED_KEYS}), "
        "sizes AS ("
        "SELECT memberships.segment_key, count(DISTINCT memberships.person_id) AS persons "
        f"FROM {BATCH} AS memberships INNER JOIN catalog "
        "ON memberships.segment_key = catalog.segment_key GROUP BY memberships.segment_key) "
        "SELECT catalog.segment_key, coalesce(sizes.persons, 0) AS persons, "
        "round(coalesce(sizes.persons, 0) / population.persons, 5) AS share_of_persons, "
        "population.persons AS population "
        "FROM catalog CROSS JOIN population "
        "LEFT JOIN sizes ON catalog.segment_key = sizes.segment_key "
        f"WHERE population.persons >= {min_population} "
        f"AND coalesce(sizes.persons, 0) < {min_share} * population.persons "
        "ORDER BY share_of_persons, catalog.segment_key"
    )
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=query,
        severity=WARNING,
        description=(
            f"every segment holds at least {min_share:.1%} of all persons "
            f"(from {min_population} persons on)"
        ),
    )
