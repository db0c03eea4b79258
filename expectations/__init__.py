"""Data-quality suites and the runner that evaluates them inside the DuckDB warehouse.

Usage::

    from expectations import load_suite, validate_table

    outcome = validate_table("data/warehouse.duckdb", "raw.events", load_suite("raw_events"))
    outcome.success  # False if any blocking (severity="critical") expectation failed

Importing Great Expectations takes several seconds, so ``validate_table`` and ``load_suite`` are
imported on first use. ``SuiteOutcome`` and ``ExpectationOutcome`` never import it.
See ``expectations/duckdb_compat.py`` for why Great Expectations needs help on DuckDB.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .outcomes import ExpectationOutcome, SuiteOutcome

# Set before Great Expectations is imported: no usage statistics leave the machine.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

if TYPE_CHECKING:
    from .runner import validate_table
    from .suites import load_suite

__all__ = ["ExpectationOutcome", "SuiteOutcome", "load_suite", "validate_table"]


def __getattr__(name: str) -> Any:
    """Import the Great Expectations parts on first use (PEP 562)."""
    if name == "validate_table":
        from .runner import validate_table

        return validate_table
    if name == "load_suite":
        from .suites import load_suite

        return load_suite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
