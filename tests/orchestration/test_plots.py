"""What the plots of warehouse tables count (orchestration.plots), on small real DuckDB tables;
that every plot is drawn from a real run is tested on the full build (test_pipeline)."""

import duckdb
import pandas as pd
import pytest
from run_helpers import assert_small_png

from orchestration.plots import funnel_per_day, funnel_png, segment_sizes_over_runs
from orchestration.plots import segment_sizes_png as segment_plot


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("CREATE SCHEMA marts")
        yield con


def test_segment_sizes_over_runs_count_the_members_at_each_as_of(con):
    # run 1 (Oct 1): a, b in vip; a in new. Run 2 (Oct 15): b left vip, c entered new.
    con.execute(
        """CREATE TABLE marts.segment_membership_history AS SELECT * FROM (VALUES
        ('a', 'vip', TIMESTAMP '2026-10-01', NULL),
        ('b', 'vip', TIMESTAMP '2026-10-01', TIMESTAMP '2026-10-15'),
        ('a', 'new', TIMESTAMP '2026-10-01', NULL),
        ('c', 'new', TIMESTAMP '2026-10-15', NULL)
        ) AS t(person_id, segment_key, entered_at, left_at)"""
    )
    sizes = segment_sizes_over_runs(con)
    rows = {
        (str(r.as_of.date()), r.segment_key): (r.persons, round(r.share, 3))
        for r in sizes.itertuples()
    }
    assert rows == {
        ("2026-10-01", "new"): (1, 0.5),  # of a and b, the persons in any segment then
        ("2026-10-01", "vip"): (2, 1.0),
        ("2026-10-15", "new"): (2, 1.0),  # of a and c
        ("2026-10-15", "vip"): (1, 0.5),
    }
    assert_small_png(segment_plot(con))


def test_the_funnel_per_day_reads_its_steps_and_shares_from_funnel_steps(con):
    con.execute(
        """CREATE TABLE marts.funnel_steps AS SELECT * FROM (VALUES
        (DATE '2026-10-01', 1, 'product_view', 3, 2),
        (DATE '2026-10-01', 2, 'add_to_cart', 3, 2),
        (DATE '2026-10-01', 3, 'checkout', 3, 1),
        (DATE '2026-10-01', 4, 'purchase', 3, 1),
        (DATE '2026-10-02', 1, 'product_view', 1, 0),
        (DATE '2026-10-02', 2, 'add_to_cart', 1, 0),
        (DATE '2026-10-02', 3, 'checkout', 1, 0),
        (DATE '2026-10-02', 4, 'purchase', 1, 0)
        ) AS t(funnel_date, step_number, step_name, session_count, sessions_reached)"""
    )
    steps = funnel_per_day(con).set_index(["funnel_date", "step"])
    first = steps.xs(pd.Timestamp("2026-10-01"), level="funnel_date")
    assert first["sessions_reached"].to_dict() == {
        "product_view": 2,
        "add_to_cart": 2,
        "checkout": 1,
        "purchase": 1,
    }
    assert first.loc["product_view", "share_of_sessions"] == pytest.approx(2 / 3)
    second = steps.xs(pd.Timestamp("2026-10-02"), level="funnel_date")
    assert second["sessions_reached"].sum() == 0
    # over the week to Oct 2: 2 product views in 4 sessions
    assert second.loc["product_view", "share_of_sessions_7d"] == pytest.approx(2 / 4)
    assert_small_png(funnel_png(con))
