"""The end of a `segwh run`: what the checks found, readable in a terminal.

Passed checks are counted, not listed. Each failed check is shown with what failed, what was
observed and what to do: the expectation suites put their fix in each expectation's
description (orchestration/checks.py stores the failures in the check's metadata); a dbt test
shows its failing row count. Blocking failures come first: they are why a run did not publish.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg

from orchestration.checks import FAILURES_METADATA_KEY

_DBT_FAILED_ROWS = "dagster_dbt/failed_row_count"
_MAX_EXAMPLE_CHARS = 300


def check_report(evaluations: Sequence[dg.AssetCheckEvaluation]) -> list[str]:
    """Lines: a count of the checks, then every failed blocking check, then every warning."""
    failed = [e for e in evaluations if not e.passed]
    blocking = [e for e in failed if e.severity == dg.AssetCheckSeverity.ERROR]
    warnings = [e for e in failed if e.severity != dg.AssetCheckSeverity.ERROR]
    lines = [
        f"checks: {len(evaluations) - len(failed)} passed, {len(blocking)} blocking failed, "
        f"{len(warnings)} warnings"
    ]
    for title, group in (("BLOCKING (the run did not publish)", blocking), ("warning", warnings)):
        for evaluation in group:
            lines.append(
                f"{title}: {evaluation.asset_key.to_user_string()} {evaluation.check_name}"
            )
            lines.extend(f"    {line}" for line in _details(evaluation))
    return lines


def _details(evaluation: dg.AssetCheckEvaluation) -> Iterable[str]:
    metadata = evaluation.metadata
    failures = metadata.get(FAILURES_METADATA_KEY)
    if failures is not None and failures.value:
        for failure in failures.value:
            yield f"- {failure['expectation']}"
            observed = _observed(failure)
            if observed:
                yield f"  observed: {observed}"
        return
    if _DBT_FAILED_ROWS in metadata:
        yield f"- dbt test: {metadata[_DBT_FAILED_ROWS].value} failing row(s)"
        return
    if evaluation.description:
        yield f"- {evaluation.description}"
    # any other check: its short values (e.g. a drift check's psi, status, recommendation)
    short = [
        f"{key}: {_short(entry.value)}"
        for key, entry in metadata.items()
        if isinstance(entry.value, str | int | float | bool) and len(str(entry.value)) <= 80
    ]
    if short:
        yield f"- {', '.join(short)}"


def _observed(failure: dict[str, Any]) -> str:
    parts = []
    if failure.get("unexpected") is not None:
        parts.append(f"{failure['unexpected']} unexpected")
    elif failure.get("observed") is not None:
        parts.append(_short(failure["observed"]))
    if failure.get("examples"):
        parts.append(f"e.g. {_short(failure['examples'])}")
    return "; ".join(parts)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MAX_EXAMPLE_CHARS else text[: _MAX_EXAMPLE_CHARS - 1] + "…"
