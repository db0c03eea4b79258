"""Expectation suites as reviewable code, one module per warehouse table, looked up by name.

Each module has ``build_suite(**params)``. Parameters are per-run context that a suite may
declare as keyword arguments, all optional (without them the suite leaves out the expectations
that need them):

- ``previous_row_count``: the table's row count after the previous run; adds the row-count
  bounds of ``expectations.thresholds.ROW_COUNT_BOUNDS``;
- ``as_of``: the run's ``as_of`` (an aware ``datetime``); adds freshness and "nothing after
  as_of" expectations;
- ``load_id``: the run's load id (its Dagster run id); scopes expectations on one load.

``suite_parameters(name)`` tells a caller (orchestration/checks.py) which of them to fetch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import great_expectations as gx

from . import (
    content_decisions,
    crm_consents,
    crm_customers,
    crm_orders,
    event_load,
    person_features,
    person_rfm_scores,
    person_segments,
    raw_events,
    segment_membership_history,
    sessions,
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
    "sessions": sessions.build_suite,
    "person_features": person_features.build_suite,
    "person_rfm_scores": person_rfm_scores.build_suite,
    "person_segments": person_segments.build_suite,
    "segment_membership_history": segment_membership_history.build_suite,
    "content_decisions": content_decisions.build_suite,
}

SUITE_TABLES: dict[str, str] = {
    "raw_events": raw_events.TABLE,
    "event_load": event_load.TABLE,
    "crm_customers": crm_customers.TABLE,
    "crm_orders": crm_orders.TABLE,
    "crm_consents": crm_consents.TABLE,
    "stg_events": stg_events.TABLE,
    "sessions": sessions.TABLE,
    "person_features": person_features.TABLE,
    "person_rfm_scores": person_rfm_scores.TABLE,
    "person_segments": person_segments.TABLE,
    "segment_membership_history": segment_membership_history.TABLE,
    "content_decisions": content_decisions.TABLE,
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
