"""Expectation suite for the dbt mart ``marts.person_features`` (one row per profiled person).

Blocking: the row count did not collapse since the previous run (bounds in
expectations/thresholds.py); somebody is profiled. Only persons with analytics consent are
profiled, so a run where nobody is means that nobody has that consent: typically a CRM without
a consents table, whose customers then get the dbt var ``consent_defaults_customers`` (no
analytics consent by default). The failure says so and counts what the CRM delivered, instead of
letting the ML steps fail later on an empty table.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from .common import BATCH, row_count_vs_previous, suite

SUITE_NAME = "person_features"
TABLE = "marts.person_features"

CONSENT_FIX = (
    "nobody has analytics consent: customers without a consent record get the dbt var "
    "consent_defaults_customers (dbt_project/dbt_project.yml; shipped: no analytics consent) "
    "and anonymous visitors consent_defaults_anonymous; provide a consents table "
    "(SEGWH_CRM_CONSENTS_TABLE) or consent_updated events, or change the default"
)


def build_suite(previous_row_count: int | None = None) -> gx.ExpectationSuite:
    """``previous_row_count`` adds the row-count bounds."""
    return suite(
        SUITE_NAME,
        TABLE,
        [*row_count_vs_previous(SUITE_NAME, previous_row_count), somebody_is_profiled()],
    )


def somebody_is_profiled() -> gxe.Expectation:
    """Blocking: at least one person is profiled. The unexpected row counts the customers and
    the CRM's analytics consent records, so the cause shows in the failure."""
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=(
            "SELECT count(*) AS persons_profiled, "
            "(SELECT count(*) FROM raw.crm_customers) AS customers, "
            "(SELECT count(*) FROM raw.crm_consents "
            "WHERE lower(trim(purpose)) = 'analytics') AS analytics_consent_records "
            f"FROM {BATCH} HAVING count(*) = 0"
        ),
        description=f"at least one person is profiled; if none is, {CONSENT_FIX}",
    )
