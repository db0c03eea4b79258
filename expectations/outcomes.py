"""Plain, JSON-friendly results of a suite run, independent of Great Expectations' classes.

Blocking vs. warning comes from GX 1.x's own ``severity`` field on each expectation:
``critical`` (the GX default) is blocking, ``warning`` and ``info`` are not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_EXAMPLES = 5
"""Unexpected examples kept per expectation."""

_MAX_CELL_CHARS = 120


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation. Every value is JSON-serializable."""

    expectation_type: str
    column: str | None
    kwargs: dict[str, Any]
    success: bool
    blocking: bool
    observed_value: Any
    unexpected_count: int | None
    unexpected_examples: list[Any]
    description: str


@dataclass(frozen=True)
class SuiteOutcome:
    """The result of running one suite against one table."""

    suite_name: str
    table: str
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    elapsed_seconds: float = 0.0

    @property
    def success(self) -> bool:
        """True if and only if every blocking expectation passed. Warnings never fail a suite."""
        return not self.failed_blocking

    @property
    def failed_blocking(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.blocking and not o.success]

    @property
    def failed_warnings(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.blocking and not o.success]

    def to_metadata(self) -> dict[str, Any]:
        """Short JSON-serializable values for display.

        ``failures_markdown`` is a markdown table of the failed expectations.
        """
        return {
            "suite": self.suite_name,
            "table": self.table,
            "success": self.success,
            "expectations": len(self.outcomes),
            "passed": sum(o.success for o in self.outcomes),
            "failed_blocking": len(self.failed_blocking),
            "failed_warnings": len(self.failed_warnings),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "failures_markdown": self._failures_markdown(),
        }

    def failures(self) -> list[dict[str, Any]]:
        """The failed expectations, blocking first, as plain dicts (for a terminal report)."""
        return [
            {
                "severity": "blocking" if o.blocking else "warning",
                "expectation": o.description,
                "observed": o.observed_value,
                "unexpected": o.unexpected_count,
                "examples": o.unexpected_examples,
            }
            for o in self.failed_blocking + self.failed_warnings
        ]

    def _failures_markdown(self) -> str:
        failed = self.failed_blocking + self.failed_warnings
        if not failed:
            return f"All {len(self.outcomes)} expectations passed."
        lines = [
            "| severity | expectation | column | observed | unexpected | examples |",
            "|---|---|---|---|---|---|",
        ]
        for o in failed:
            cells = [
                "blocking" if o.blocking else "warning",
                o.description,
                o.column or "",
                _cell(o.observed_value),
                "" if o.unexpected_count is None else str(o.unexpected_count),
                _cell(o.unexpected_examples) if o.unexpected_examples else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _cell(value: Any) -> str:
    """One markdown table cell: compact JSON, pipes escaped, long values shortened."""
    if isinstance(value, dict) and "unexpected_percent" in value:  # column map expectation
        value = (
            f"{value['unexpected_count']} of {value['element_count']} rows unexpected "
            f"({value['unexpected_percent']:g}%)"
        )
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.replace("|", "\\|").replace("\n", " ")
    if len(text) > _MAX_CELL_CHARS:
        text = text[: _MAX_CELL_CHARS - 1] + "…"
    return text
