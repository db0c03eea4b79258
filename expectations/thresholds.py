"""Every threshold of the expectation suites, in one place. Edit here, not in the suites.

Each value says whether it blocks (a failed expectation stops the run and leaves the published
tables as they were) or warns (shown in the UI, blocks nothing). The suites in
``expectations/suites`` import these names. Column lists and the allowed values of a contract
stay at the top of each suite module, next to the expectations that use them.

Parameters that change per run (the previous run's row count, the run's ``as_of``, the run's
load id) are not here. The Dagster check (orchestration/checks.py) passes them to the suite
builders; see ``expectations.suites.load_suite``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RowCountBounds:
    """How far a table's row count may move from the previous run's (shares of that count)."""

    max_shrink: float
    """Blocking: the table may have at most this share fewer rows than in the previous run."""
    max_growth: float
    """Warning: the table may have at most this share more rows than in the previous run."""


# --- Row counts relative to the previous run (every suite with a previous_row_count) -------
ROW_COUNT_BOUNDS_DEFAULT = RowCountBounds(max_shrink=0.10, max_growth=0.50)
ROW_COUNT_BOUNDS: dict[str, RowCountBounds] = {
    # raw.events only ever grows (files are appended, duplicates dropped): any shrink is loss.
    # A first backfill may double it; the 15-minute loads add little.
    "raw_events": RowCountBounds(max_shrink=0.0, max_growth=1.0),
    # History rows are only added or closed, never deleted.
    "segment_membership_history": RowCountBounds(max_shrink=0.0, max_growth=1.0),
}
"""Per-suite bounds; suites not listed use ``ROW_COUNT_BOUNDS_DEFAULT``."""


def row_count_bounds(suite_name: str) -> RowCountBounds:
    """The row-count bounds of a suite."""
    return ROW_COUNT_BOUNDS.get(suite_name, ROW_COUNT_BOUNDS_DEFAULT)


# --- raw.events (suite raw_events) ---------------------------------------------------------
RAW_EVENTS_MIN_ROWS = 1
"""Blocking: raw.events holds at least this many rows."""
QUANTITY_RANGE = (1, 1000)
"""Warning: quantity lies in this closed range."""
MAX_CLOCK_SKEW_HOURS = 24
"""Warning: occurred_at (client clock) may run ahead of received_at by this much."""
DEVICE_TYPE_MOSTLY = 0.99
"""Warning: at least this share of device_type values is a known device type."""

# --- this run's load (suite event_load, on raw.event_load_audit) ---------------------------
REJECTED_SHARE_WARNING = 0.02
"""Warning: more than this share of the lines landed in this run's load was rejected."""
REJECTED_SHARE_BLOCKING = 0.10
"""Blocking: more than this share of the lines landed in this run's load was rejected."""

# --- freshness of events relative to the run's as_of (suite stg_events) --------------------
FRESHNESS_WARNING_HOURS = 24
"""Warning: the newest event at or before as_of is older than this many hours."""
FRESHNESS_BLOCKING_HOURS = 7 * 24
"""Blocking: ... older than this. Stale events would push every person towards "inactive"
segments (days since last seen grow), so such a run must not publish."""
PAGE_TYPE_MOSTLY = 0.99
"""Warning: at least this share of page_type values is a known page type."""
UNMAPPED_EVENT_SHARE_BLOCKING = 0.25
"""Blocking: more than this share of the staged events has an event type the event taxonomy
(dbt_project/seeds/event_taxonomy.csv) does not know. Any unmapped event type warns, with its
count and share; above this share the models would miss most of what happened (no page views,
no funnel), so such a run must not publish. 1.0 never blocks."""

# --- CRM (suites crm_customers, crm_orders, crm_consents) ----------------------------------
ORDER_STATUS_MOSTLY = 1.0
"""Warning: at least this share of order statuses is a known status."""

# --- segments (suite person_segments) ------------------------------------------------------
SEGMENT_MIN_SHARE = 0.001
"""Warning: every segment of the seeds holds at least this share of all persons (0.1%)."""
SEGMENT_SHARE_MIN_POPULATION = 1_000
"""The minimum-share warning applies only from this many persons on: on fewer, shares are
noise (and dbt's segment_sizes flags segments below an absolute size anyway)."""
