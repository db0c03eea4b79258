"""Population Stability Index: hand-computed values, binning edge cases, thresholds."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ml.config import DriftConfig
from ml.drift import (
    FeatureBaseline,
    baselines_from_dict,
    baselines_to_dict,
    bin_shares,
    build_baselines,
    categorical_baseline,
    classify_psi,
    feature_drift,
    numeric_baseline,
    psi,
    share_psi,
)
from ml.preprocessing import FeatureSet


def test_psi_hand_computed():
    # (0.25 - 0.5) * ln(0.25 / 0.5) + (0.75 - 0.5) * ln(0.75 / 0.5)
    # = (-0.25)(-0.693147) + (0.25)(0.405465) = 0.173287 + 0.101366 = 0.274653
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    # symmetric in this form: swapping expected and actual gives the same value
    assert psi([0.25, 0.75], [0.5, 0.5]) == pytest.approx(0.274653, abs=1e-6)
    # three bins: (0.3-0.2)ln(1.5) + (0.3-0.3)ln(1) + (0.4-0.5)ln(0.8)
    # = 0.1 * 0.405465 + 0 + (-0.1)(-0.223144) = 0.040547 + 0.022314 = 0.062861
    assert psi([0.2, 0.3, 0.5], [0.3, 0.3, 0.4]) == pytest.approx(0.062861, abs=1e-6)


def test_identical_distributions_have_zero_psi():
    assert psi([0.1, 0.2, 0.7], [0.1, 0.2, 0.7]) == 0.0
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.lognormal(size=5_000), "c": rng.choice(["a", "b"], 5_000)})
    baselines = build_baselines(frame, FeatureSet(numeric=("x",), categorical=("c",)))
    report = feature_drift(baselines, frame)
    assert report.features["psi"].abs().max() < 1e-12
    assert report.recommendation == "ok"


def test_empty_bins_use_epsilon():
    # actual bin 2 empty -> epsilon 1e-4: (1e-4 - 0.5) ln(1e-4/0.5) + (1 - 0.5) ln(1/0.5)
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2)
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(expected)
    assert math.isfinite(psi([0.0, 1.0], [1.0, 0.0]))


@pytest.mark.parametrize(
    ("value", "status"),
    [(0.0, "ok"), (0.05, "ok"), (0.1, "ok"), (0.1001, "warn"), (0.25, "warn"), (0.2501, "retrain")],
)
def test_thresholds_classify(value, status):
    assert classify_psi(value, DriftConfig(warn=0.1, retrain=0.25)) == status


def test_numeric_bins_are_baseline_quantiles_with_nulls_apart():
    values = pd.Series([1.0, 2.0, 3.0, 4.0, np.nan, 5.0, 6.0, 7.0, 8.0, np.nan])
    baseline = numeric_baseline("x", values, bins=4)

    # quartiles of 1..8 (observed values): 2, 4, 6 -> bins (-inf,2] (2,4] (4,6] (6,inf) null
    assert baseline.edges == (2.0, 4.0, 6.0)
    assert baseline.proportions == pytest.approx((0.2, 0.2, 0.2, 0.2, 0.2))
    # values beyond the baseline range fall in the open outer bins
    shares = bin_shares(baseline, pd.Series([-100.0, 100.0, np.nan, np.nan]))
    assert shares == pytest.approx([0.25, 0.0, 0.0, 0.25, 0.5])


def test_ties_and_constant_columns():
    zero_inflated = numeric_baseline("orders", pd.Series([0] * 80 + [1] * 10 + [5] * 10), bins=10)
    # deciles 0 (x8), 1: duplicates collapse -> bins (-inf,0] (0,1] (1,inf) null
    assert zero_inflated.edges == (0.0, 1.0)
    assert zero_inflated.proportions == pytest.approx((0.8, 0.1, 0.1, 0.0))

    constant = numeric_baseline("tenure", pd.Series([3.0] * 50), bins=10)
    assert constant.edges == (3.0,)
    assert constant.proportions == pytest.approx((1.0, 0.0, 0.0))
    same = psi(constant.proportions, bin_shares(constant, pd.Series([3.0] * 7)))
    assert same == 0.0
    moved = psi(constant.proportions, bin_shares(constant, pd.Series([4.0] * 7)))
    assert classify_psi(moved) == "retrain"

    empty = numeric_baseline("never", pd.Series([np.nan] * 5), bins=10)
    assert empty.edges == ()
    assert empty.proportions == (0.0, 1.0)  # one (empty) value bin, everything null


def test_categorical_shares_other_and_null_bins():
    baseline = categorical_baseline(
        "country", pd.Series(["DE", "DE", "FR", None]), max_categories=5
    )
    assert baseline.categories == ("DE", "FR")
    assert baseline.proportions == pytest.approx((0.5, 0.25, 0.0, 0.25))

    shares = bin_shares(baseline, pd.Series(["DE", "NL", "NL", None]))
    assert shares == pytest.approx([0.25, 0.0, 0.5, 0.25])  # unseen NL -> "other"


def test_shifted_feature_is_flagged_for_retraining_and_report_is_sorted():
    rng = np.random.default_rng(1)
    base = pd.DataFrame({"stable": rng.normal(size=4_000), "shifted": rng.normal(size=4_000)})
    now = pd.DataFrame({"stable": rng.normal(size=4_000), "shifted": rng.normal(1.0, 1, 4_000)})
    baselines = build_baselines(base, FeatureSet(numeric=("stable", "shifted")))

    report = feature_drift(baselines, now)

    assert list(report.features["feature"]) == ["shifted", "stable"]
    status = report.features.set_index("feature")["status"]
    assert status["shifted"] == "retrain"
    assert status["stable"] == "ok"
    assert report.recommendation == "retrain"
    assert report.summary() == {
        "recommendation": "retrain",
        "max_psi": report.max_psi,
        "features_ok": 1,
        "features_warn": 0,
        "features_retrain": 1,
    }


def test_baselines_survive_json_and_missing_columns_are_reported():
    frame = pd.DataFrame({"x": np.arange(100.0), "c": ["a", "b"] * 50})
    baselines = build_baselines(frame, FeatureSet(numeric=("x",), categorical=("c",)))
    stored = json.loads(json.dumps(baselines_to_dict(baselines)))

    assert baselines_from_dict(stored) == baselines
    report = feature_drift(stored, frame.drop(columns=["c"]))  # JSON form accepted directly
    row = report.features.set_index("feature").loc["c"]
    assert row["note"] == "missing from table"
    assert row["status"] == "retrain"
    assert report.features.set_index("feature").loc["x", "psi"] == 0.0


def test_cluster_share_psi_between_runs():
    # same clusters, shares 0.5/0.5 -> 0.25/0.75: the hand-computed 0.274653 again
    assert share_psi({0: 0.5, 1: 0.5}, {0: 0.25, 1: 0.75}) == pytest.approx(0.274653, abs=1e-6)
    assert share_psi({0: 0.6, 1: 0.4}, {1: 0.4, 0: 0.6}) == 0.0
    # cluster 1 retired, cluster 2 new: each counts as epsilon in the run it is absent from
    value = share_psi({0: 0.5, 1: 0.5}, {0: 0.5, 2: 0.5})
    expected = 2 * (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert value == pytest.approx(expected)


def test_feature_baseline_validation_of_bins():
    baseline = FeatureBaseline("x", "numeric", (0.5, 0.5, 0.0), edges=(1.0,))
    with pytest.raises(ValueError, match="bins differ"):
        psi(baseline.proportions, [0.5, 0.5])
