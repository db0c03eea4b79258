"""Expectation suite for the dbt mart ``marts.person_segments`` (segments held at ``as_of``).

Blocking: the columns exist; every membership names a person and a segment, once; the segment
group is a known one; every segment key is defined in the rule seeds (``SEED_SEGMENT_TABLES``);
every person of ``person_features`` holds exactly one purchase stage; the row count did not
collapse since the previous run. Warnings: every segment of the seeds holds at least
``SEGMENT_MIN_SHARE`` of all persons (checked from ``SEGMENT_SHARE_MIN_POPULATION`` persons
on; both in expectations/thresholds.py); the row count did not jump.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.thresholds import SEGMENT_MIN_SHARE, SEGMENT_SHARE_MIN_POPULATION

from .common import BATCH, WARNING, columns_exist, not_null, row_count_vs_previous, suite

SUITE_NAME = "person_segments"
TABLE = "marts.person_segments"

ID_COLUMNS = ["person_id", "segment_key"]
COLUMNS = ["person_id", "segment_group", "segment_key", "segment_name", "as_of"]
SEGMENT_GROUPS = ["micro_segment", "purchase_stage", "rfm", "churn"]
PURCHASE_STAGE_GROUP = "purchase_stage"
PERSONS_TABLE = "marts.person_features"
SEED_SEGMENT_TABLES = ["seeds.segments", "seeds.rfm_segments"]
"""dbt seeds whose ``segment_key`` column defines every segment a person can hold."""

_SEED_KEYS = " UNION ".join(f"SELECT segment_key FROM {table}" for table in SEED_SEGMENT_TABLES)


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``person_segments`` suite; ``previous_row_count`` adds the row-count bounds."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null("person_id"),
        not_null("segment_key"),
        gxe.ExpectColumnValuesToBeInSet(
            column="segment_group",
            value_set=SEGMENT_GROUPS,
            description="segment_group is one of " + ", ".join(SEGMENT_GROUPS),
        ),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=ID_COLUMNS, description="a person holds each segment once"
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT memberships.person_id, memberships.segment_key "
                f"FROM {BATCH} AS memberships ANTI JOIN ({_SEED_KEYS}) AS seed_keys "
                "ON memberships.segment_key = seed_keys.segment_key"
            ),
            description="every segment_key is defined in " + " or ".join(SEED_SEGMENT_TABLES),
        ),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT persons.person_id, count(stages.segment_key) AS purchase_stages "
                f"FROM {PERSONS_TABLE} AS persons LEFT JOIN ("
                f"SELECT person_id, segment_key FROM {BATCH} AS memberships "
                f"WHERE segment_group = '{PURCHASE_STAGE_GROUP}'"
                ") AS stages ON persons.person_id = stages.person_id "
                "GROUP BY persons.person_id HAVING count(stages.segment_key) <> 1"
            ),
            description=f"every person of {PERSONS_TABLE} holds exactly one purchase stage",
        ),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
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
