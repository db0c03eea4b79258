"""Expectation suite for ``raw.event_load_audit``: the accounting of the landing-file loads.

The audit table has one row per loaded file; ``load_id`` is the Dagster run that loaded it.
Blocking: nothing is lost silently, for every file
``landed = loaded + rejected + duplicate + suppressed`` (rows of erased persons);
more than ``REJECTED_SHARE_BLOCKING`` of the lines landed in this run's load were not rejected.
Warning: ... not more than ``REJECTED_SHARE_WARNING`` (thresholds in expectations/thresholds.py).

The share is taken over the whole load (all its files), so one small file full of bad lines
does not raise an alarm on its own. A run that loaded no file passes.
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.thresholds import REJECTED_SHARE_BLOCKING, REJECTED_SHARE_WARNING

from .common import BATCH, WARNING, columns_exist, severity_kwargs, sql_string, suite

SUITE_NAME = "event_load"
TABLE = "raw.event_load_audit"

COLUMNS = ["load_id", "file_name", "landed", "loaded", "rejected", "duplicate", "loaded_at"]


def build_suite(load_id: str | None = None) -> gx.ExpectationSuite:
    """The ``event_load`` suite for the load ``load_id`` (the run id); ``None``: the latest load."""
    blocking: list[gxe.Expectation] = [
        columns_exist(COLUMNS),
        gxe.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                f"SELECT load_id, file_name, landed, loaded, rejected, duplicate FROM {BATCH} "
                "WHERE landed IS DISTINCT FROM "
                "loaded + rejected + duplicate + coalesce(suppressed, 0)"
            ),
            description="every file's landed lines = loaded + rejected + duplicate + suppressed",
        ),
        _rejected_share_at_most(load_id, REJECTED_SHARE_BLOCKING, severity=None),
    ]
    warnings: list[gxe.Expectation] = [
        _rejected_share_at_most(load_id, REJECTED_SHARE_WARNING, severity=WARNING),
    ]
    return suite(SUITE_NAME, TABLE, blocking + warnings)


def _rejected_share_at_most(
    load_id: str | None, max_share: float, *, severity: str | None
) -> gxe.Expectation:
    """At most ``max_share`` of the lines landed in the load were rejected; else one row."""
    if load_id is None:
        which = f"(SELECT load_id FROM {BATCH} ORDER BY loaded_at DESC LIMIT 1)"
        scope = "the latest load"
    else:
        which = sql_string(load_id)
        scope = "this run's load"
    query = (
        "SELECT load_id, count(*) AS files, sum(landed) AS landed, sum(rejected) AS rejected, "
        "round(sum(rejected) / sum(landed), 4) AS rejected_share "
        f"FROM {BATCH} WHERE load_id = {which} GROUP BY load_id "
        f"HAVING sum(rejected) > {max_share} * sum(landed)"
    )
    return gxe.UnexpectedRowsExpectation(
        unexpected_rows_query=query,
        description=f"at most {max_share:.0%} of the lines landed in {scope} were rejected",
        **severity_kwargs(severity),
    )
