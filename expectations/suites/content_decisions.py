"""Expectation suite for the dbt mart ``marts.content_decisions`` (one content variant per person).

Blocking: the columns exist; every person of ``person_features`` is in exactly one content
decision, i.e. ``person_id`` is never null and unique, and an anti-join finds no person without a
decision and no decision for an unknown person; every decision names a variant and a rule of the
seed ``DECISION_RULES_TABLE`` with that rule's variant; the row count did not collapse since the
previous run. Warning: the row count did not jump.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from .common import BATCH, columns_exist, not_null, row_count_vs_previous, suite, unique

SUITE_NAME = "content_decisions"
TABLE = "marts.content_decisions"

ID_COLUMN = "person_id"
COLUMNS = ["person_id", "content_variant", "decision_rule_id", "decision_priority", "as_of"]
PERSONS_TABLE = "marts.person_features"
DECISION_RULES_TABLE = "seeds.content_decision_rules"


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """The ``content_decisions`` suite; ``previous_row_count`` adds the row-count bounds."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        not_null(ID_COLUMN),
        unique(ID_COLUMN),
        every_person_has_a_decision(),
        not_null("content_variant"),
        not_null("decision_rule_id"),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT decisions.person_id, decisions.decision_rule_id, "
                f"decisions.content_variant FROM {BATCH} AS decisions "
                f"ANTI JOIN {DECISION_RULES_TABLE} AS rules "
                "ON decisions.decision_rule_id = rules.rule_id "
                "AND decisions.content_variant = rules.content_variant"
            ),
            description=f"every decision is a rule of {DECISION_RULES_TABLE} with its variant",
        ),
        *row_count_vs_previous(SUITE_NAME, previous_row_count),
    ]
    return suite(SUITE_NAME, TABLE, blocking, id_columns=[ID_COLUMN])


def every_person_has_a_decision() -> gxe.Expectation:
    """Anti-join both ways: persons without a decision, and decisions for unknown persons.

    With ``person_id`` unique this makes "every person in exactly one decision". Each
    unexpected row names the person and what is wrong.
    """
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "SELECT coalesce(persons.person_id, decisions.person_id) AS person_id, "
            "CASE WHEN decisions.person_id IS NULL THEN 'no content decision' "
            f"ELSE 'not a person of {PERSONS_TABLE}' END AS problem "
            f"FROM {PERSONS_TABLE} AS persons "
            f"FULL OUTER JOIN (SELECT DISTINCT person_id FROM {BATCH} AS decisions) AS decisions "
            "ON persons.person_id = decisions.person_id "
            "WHERE persons.person_id IS NULL OR decisions.person_id IS NULL"
        ),
        description=f"every person of {PERSONS_TABLE} has a content decision, and only they",
    )
