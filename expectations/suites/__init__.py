"""Expectation suites as reviewable code, looked up by name: one module per raw table, load
audit or staged table, and ``marts`` for the dbt marts (great-expectations checks what dbt's
tests cannot: raw tables before dbt reads them, load audits, freshness, row counts compared with
the previous run, shares and distributions; dbt tests own the structural rules of dbt models).

Each suite has a builder ``build_suite(**params)``. Parameters are per-run context that a
suite may declare as keyword arguments, all optional (without them the suite leaves out the
expectations that need them):

- ``previous_row_count``: the table's row count after the previous run; adds the row-count
  bounds of ``expectations.thresholds.ROW_COUNT_BOUNDS``;
- ``as_of``: the run's ``as_of`` (an aware ``datetime``); adds freshness expectations;
- ``load_id``: the run's load id (its Dagster run id); scopes expectations on one load.

``suite_parameters(name)`` tells a caller (orchestration/checks.py) which of them to fetch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import great_expectations as gx

from . import (
    crm_consents,
    crm_customers,
    crm_orders,
    event_load,
    marts,
    person_features,
    person_segments,
    raw_events,
    stg_events,
)

SuiteBuilder = Callable[..., gx.ExpectationSuite]

SUITE_BUILDERS: dict[str, SuiteBuilder] = {
    "raw_events": raw_events.build_suite,
    "event_load": event_load.build_suite,
    "crm_customers": crm_customers.build_suite,
    "crm_orders": crm_orders.build_suite,
    "crm_consents": crm_consents.build_suite,
    "stg_events": stg_events.build_suite,
    **{name: marts.row_count_suite(name) for name in marts.ROW_COUNT_SUITES},
    "person_features": person_features.build_suite,
    "person_segments": person_segments.build_suite,
}

SUITE_TABLES: dict[str, str] = {
    "raw_events": raw_events.TABLE,
    "event_load": event_load.TABLE,
    "crm_customers": crm_customers.TABLE,
    "crm_orders": crm_orders.TABLE,
    "crm_consents": crm_consents.TABLE,
    "stg_events": stg_events.TABLE,
    **{name: marts.table(name) for name in marts.ROW_COUNT_SUITES},
    "person_features": person_features.TABLE,
    "person_segments": person_segments.TABLE,
}
"""The warehouse table (``schema.name``) each suite is written for."""


def _builder(name: str) -> SuiteBuilder:
    try:
        return SUITE_BUILDERS[name]
    except KeyError:
        raise KeyError(f"Unknown suite {name!r}; known: {sorted(SUITE_BUILDERS)}") from None


def suite_parameters(name: str) -> frozenset[str]:
    """The per-run parameters the named suite accepts, e.g. ``{"previous_row_count"}``."""
    return frozenset(inspect.signature(_builder(name)).parameters)


def load_suite(name: str, **params: object) -> gx.ExpectationSuite:
    """A freshly built suite by name, e.g. ``load_suite("stg_events", as_of=as_of)``.

    Raises ``TypeError`` for a parameter the suite does not accept.
    """
    builder = _builder(name)
    unknown = set(params) - suite_parameters(name)
    if unknown:
        raise TypeError(
            f"Suite {name!r} takes no parameter(s) {sorted(unknown)}; "
            f"it takes {sorted(suite_parameters(name))}"
        )
    return builder(**params)
