"""Expectation suites as reviewable code, one module per warehouse table, looked up by name."""

from __future__ import annotations

from collections.abc import Callable

import great_expectations as gx

from . import raw_events

SUITE_BUILDERS: dict[str, Callable[[], gx.ExpectationSuite]] = {
    "raw_events": raw_events.build_suite,
}


def load_suite(name: str) -> gx.ExpectationSuite:
    """A freshly built suite by name, e.g. ``load_suite("raw_events")``."""
    try:
        builder = SUITE_BUILDERS[name]
    except KeyError:
        raise KeyError(f"Unknown suite {name!r}; known: {sorted(SUITE_BUILDERS)}") from None
    return builder()
