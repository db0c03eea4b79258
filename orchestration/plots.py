"""The plots of warehouse tables shown with their assets in the UI: what each reads (one small
query per plot, so a renamed column is changed in one place) and how it is drawn (ml.plots).

- raw/events: events per day (raw.events by the UTC day they occurred);
- marts/segment_sizes: persons per segment at each run's as_of, and their share, from
  marts.segment_membership_history (it records every entry and exit at a run's as_of: the
  warehouse's only history of segment sizes);
- marts/funnel_steps: sessions reaching each funnel step per day, and their share (the table
  itself, which counts every session once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import dagster as dg
import duckdb

from orchestration.metadata import png_metadata
from warehouse.connection import table_exists

if TYPE_CHECKING:
    import pandas as pd


def events_per_day(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """event_date, events: raw events per UTC day of occurrence."""
    return con.execute(
        """SELECT CAST(timezone('UTC', occurred_at) AS DATE) AS event_date, count(*) AS events
        FROM raw.events GROUP BY 1 ORDER BY 1"""
    ).df()


def segment_sizes_over_runs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """as_of, segment_key, persons, share: the members of each segment at every as_of a run
    recorded a change at, and their share of the persons in any segment then."""
    return con.execute(
        """
        WITH runs AS (
            SELECT DISTINCT entered_at AS as_of FROM marts.segment_membership_history
            UNION
            SELECT DISTINCT left_at FROM marts.segment_membership_history
            WHERE left_at IS NOT NULL
        ),
        held AS (
            SELECT runs.as_of, history.segment_key, history.person_id
            FROM runs
            JOIN marts.segment_membership_history AS history
              ON history.entered_at <= runs.as_of
             AND (history.left_at IS NULL OR history.left_at > runs.as_of)
        ),
        sizes AS (
            SELECT as_of, segment_key, count(DISTINCT person_id) AS persons
            FROM held GROUP BY ALL
        ),
        segmented AS (
            SELECT as_of, count(DISTINCT person_id) AS persons FROM held GROUP BY ALL
        )
        SELECT sizes.as_of, sizes.segment_key, sizes.persons,
               sizes.persons / segmented.persons AS share
        FROM sizes JOIN segmented USING (as_of)
        ORDER BY sizes.as_of, sizes.segment_key
        """
    ).df()


def funnel_per_day(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """funnel_date, step, sessions_reached, share_of_sessions and share_of_sessions_7d (over
    the 7 days ending that day), read from marts.funnel_steps (every session once; the funnel's
    rule, a closed funnel, is written there only)."""
    steps = con.execute(
        """
        SELECT funnel_date, step_name AS step, sessions_reached, session_count AS sessions
        FROM marts.funnel_steps
        ORDER BY step_number, funnel_date
        """
    ).df()
    steps["share_of_sessions"] = steps["sessions_reached"] / steps["sessions"]
    # a day has few sessions: the share over the week ending that day reads better
    weekly = (
        steps.set_index("funnel_date")
        .groupby("step", sort=False)[["sessions_reached", "sessions"]]
        .rolling("7D")
        .sum()
        .reset_index(drop=True)
    )
    steps["share_of_sessions_7d"] = weekly["sessions_reached"] / weekly["sessions"]
    return steps


# ml.plots (matplotlib, scikit-learn) is imported when a plot is drawn, not when the code
# location loads


def events_per_day_png(con: duckdb.DuckDBPyConnection) -> bytes | None:
    from ml.plots import daily_bars_png

    daily = events_per_day(con)
    if daily.empty:
        return None
    return daily_bars_png(
        daily,
        day="event_date",
        value="events",
        title="Events in raw.events per day they occurred (UTC)",
        ylabel="events",
    )


def segment_sizes_png(con: duckdb.DuckDBPyConnection) -> bytes | None:
    from ml.plots import lines_over_time_png

    if not table_exists(con, "marts", "segment_membership_history"):
        return None
    sizes = segment_sizes_over_runs(con)
    if sizes.empty:
        return None
    return lines_over_time_png(
        sizes,
        time="as_of",
        series="segment_key",
        panels={"persons": "persons", "share": "share of segmented persons"},
        title="Segment sizes and shares at each run's as_of",
    )


def funnel_png(con: duckdb.DuckDBPyConnection) -> bytes | None:
    from ml.plots import lines_over_time_png

    steps = funnel_per_day(con)
    if steps.empty:
        return None
    return lines_over_time_png(
        steps,
        time="funnel_date",
        series="step",
        panels={
            "sessions_reached": "sessions reaching the step",
            "share_of_sessions_7d": "share of sessions, last 7 days",
        },
        title="Purchase funnel per day (closed funnel, all sessions)",
    )


Plot = tuple[str, str, Callable[[duckdb.DuckDBPyConnection], bytes | None]]
# asset -> (metadata key, title, plot) for the tables drawn in their asset's metadata
TABLE_PLOTS: dict[dg.AssetKey, tuple[Plot, ...]] = {
    dg.AssetKey(["raw", "events"]): (
        ("events_per_day_plot", "events per day", events_per_day_png),
    ),
    dg.AssetKey(["marts", "segment_sizes"]): (
        ("segment_sizes_plot", "segment sizes and shares over runs", segment_sizes_png),
    ),
    dg.AssetKey(["marts", "funnel_steps"]): (
        ("funnel_per_day_plot", "funnel per day", funnel_png),
    ),
}


def table_plots_metadata(
    context: dg.AssetExecutionContext, key: dg.AssetKey, con: duckdb.DuckDBPyConnection
) -> dict[str, dg.MetadataValue]:
    """The plots of ``key`` (TABLE_PLOTS) as metadata the UI shows inline; none for other
    assets, and none for a plot whose table is empty."""
    metadata = {}
    for name, title, plot in TABLE_PLOTS.get(key, ()):
        png = plot(con)
        if png is not None:
            metadata[name] = png_metadata(
                context.instance, context.run.run_id, key, name, title, png
            )
    return metadata
