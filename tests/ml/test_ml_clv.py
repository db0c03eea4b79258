"""Customer lifetime value (ml.clv): scoring, the top-value flag, the backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.churn import latest_snapshot
from ml.clv import (
    InsufficientClvHistoryError,
    backtest_clv,
    fit_clv,
    score_clv,
    top_share_flags,
)
from ml.config import ClvConfig
from ml.schemas import CLV_COLUMNS


@pytest.fixture(scope="module")
def history(activity):
    return activity(n_persons=2000, seed=1)


def test_scores_fill_the_declared_table_with_a_top_decile(history):
    rows = latest_snapshot(history)
    model = fit_clv(rows)

    values = score_clv(model, rows)

    assert list(values.columns) == list(CLV_COLUMNS)
    assert len(values) == len(rows) and values["person_id"].is_unique
    assert values.notna().all().all()
    assert (values["clv"] >= 0).all()
    assert np.allclose(values["clv"], values["expected_orders"] * values["expected_order_value"])
    assert values["is_top_value"].sum() == int(np.ceil(0.1 * len(values)))
    cut = values.loc[values["is_top_value"], "clv"].min()
    assert (values.loc[~values["is_top_value"], "clv"] <= cut).all()
    assert (values["model_version"] == model.version).all()
    assert model.version.startswith("clv-20261101-")
    assert (values["horizon_days"] == 90).all()
    # a person who buys often and recently is worth more than one silent since one order
    persons = rows.set_index("person_id")
    busy = values.set_index("person_id")["clv"].idxmax()
    assert persons.loc[busy, "completed_orders"] >= persons["completed_orders"].median()


def test_the_backtest_compares_with_the_spend_that_followed(history):
    """Fitted 90 days before the latest snapshot; the actual value is the lifetime spend added
    since. The model's top decile captures far more than a tenth of the actual value."""
    result = backtest_clv(history)

    assert result["fitted_at"] == "2026-08-03T00:00:00"
    assert result["actual_until"] == "2026-11-01T00:00:00"
    start = history.loc[history["snapshot_at"] == pd.Timestamp("2026-08-03")]
    assert result["persons"] == len(start)
    later = history.loc[history["snapshot_at"] == pd.Timestamp("2026-11-01")]
    spent = later.set_index("person_id")["lifetime_spend"].reindex(start["person_id"]).to_numpy()
    actual = np.clip(spent - start["lifetime_spend"].to_numpy(), 0, None)
    assert result["mean_actual"] == pytest.approx(actual.mean())
    assert result["top_decile_capture"] > 0.3
    assert result["top_decile_capture"] <= result["top_decile_capture_ceiling"] <= 1
    assert result["pearson"] > 0.3 and result["spearman"] > 0.2
    assert result["mae"] > 0
    assert result["mean_predicted"] == pytest.approx(result["mean_actual"], rel=0.5)


def test_the_backtest_needs_a_snapshot_one_horizon_back(history):
    with pytest.raises(InsufficientClvHistoryError, match="no snapshot at"):
        backtest_clv(history, ClvConfig(horizon_days=45))
    with pytest.raises(InsufficientClvHistoryError, match="needs the columns"):
        fit_clv(latest_snapshot(history).drop(columns=["lifetime_spend"]))


def test_top_share_flags_break_ties_by_order():
    flags = top_share_flags(np.array([1.0, 5.0, 5.0, 2.0]), 0.5)
    assert flags.tolist() == [False, True, True, False]
    assert top_share_flags(np.array([3.0, 3.0, 3.0]), 0.1).sum() == 1
