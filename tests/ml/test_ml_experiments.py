"""ml.experiments: the statistics match independent scipy computations on fixed data; CUPED
reduces variance with a correlated pre-period; the false-positive rate of a null experiment is
the stated alpha over repeated seeds; a real lift is found; a sample-ratio mismatch blocks; no
result is significant before the planned sample size."""

from __future__ import annotations

import math
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml.config import ExperimentConfig
from ml.experiments import (
    WITHHELD_WHEN_BLOCKED,
    ExperimentSpec,
    adjust_p_values,
    analyze_experiment,
    cuped_adjust,
    parse_variants,
    persons_needed,
    power_now,
    srm_p_value,
    two_proportion_test,
    welch_test,
)

AS_OF = datetime(2026, 11, 1)
START = datetime(2026, 10, 1)
TOLERANCE = 1e-6


def _spec(**overrides) -> ExperimentSpec:
    values = dict(
        key="exp",
        variants=(("control", 50), ("treatment", 50)),
        primary_metric="revenue",
        secondary_metrics=(),
        minimum_detectable_effect=0.1,
        planned_persons_per_variant=100,
        start_at=START,
        end_at=datetime(2026, 12, 1),
    )
    return ExperimentSpec(**(values | overrides))


def _persons(rng, n_control, n_treatment, lift=0.0, metric="revenue", binary=False, rho=0.7):
    """Persons of a two-variant experiment: a metric and its pre-period with correlation rho."""
    n = n_control + n_treatment
    pre = rng.normal(size=n)
    noise = rng.normal(size=n)
    latent = rho * pre + math.sqrt(1 - rho**2) * noise
    variant = np.array(["control"] * n_control + ["treatment"] * n_treatment)
    treated = variant == "treatment"
    if binary:
        base = 0.2
        p = np.clip(base + 0.1 * latent, 0.01, 0.99) * np.where(treated, 1 + lift, 1.0)
        value = (rng.random(n) < np.clip(p, 0, 1)).astype(float)
        pre_value = (pre > 0.8).astype(float)
    else:
        value = 100 + 20 * latent + np.where(treated, 100 * lift, 0.0)
        pre_value = 100 + 20 * pre
    return pd.DataFrame({"variant": variant, metric: value, f"pre_{metric}": pre_value})


# --- fixed data against scipy --------------------------------------------------------------

FIXED_CONTROL = np.array([12.0, 0.0, 7.5, 3.2, 9.9, 14.1, 0.0, 5.5, 8.8, 2.2, 6.6, 11.0])
FIXED_TREATMENT = np.array([15.2, 3.3, 9.1, 0.0, 12.7, 18.4, 6.1, 7.7, 10.5, 13.9])


def test_welch_matches_scipy_on_fixed_data():
    a, b = FIXED_TREATMENT, FIXED_CONTROL
    ours = welch_test(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    reference = stats.ttest_ind(a, b, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert ours.p_value == pytest.approx(reference.pvalue, abs=TOLERANCE)
    assert ours.difference == pytest.approx(a.mean() - b.mean(), abs=TOLERANCE)
    assert ours.ci_low == pytest.approx(interval.low, abs=TOLERANCE)
    assert ours.ci_high == pytest.approx(interval.high, abs=TOLERANCE)


def test_two_proportion_z_test_matches_scipy_on_fixed_data():
    x1, n1, x0, n0 = 61, 412, 42, 398
    ours = two_proportion_test(x1, n1, x0, n0)
    # the pooled two-proportion z-test is the chi-square test of the 2x2 table (z^2 = chi^2)
    table = np.array([[x1, n1 - x1], [x0, n0 - x0]])
    _, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert ours.p_value == pytest.approx(p, abs=TOLERANCE)
    p1, p0 = x1 / n1, x0 / n0
    half = stats.norm.ppf(0.975) * math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    assert ours.ci_low == pytest.approx(p1 - p0 - half, abs=TOLERANCE)
    assert ours.ci_high == pytest.approx(p1 - p0 + half, abs=TOLERANCE)
    # the relative lift's delta-method interval against a direct computation
    se = math.sqrt(p1 * (1 - p1) / (n1 * p0**2) + p1**2 * p0 * (1 - p0) / (n0 * p0**4))
    assert ours.relative == pytest.approx(p1 / p0 - 1, abs=TOLERANCE)
    assert ours.relative_ci_high - ours.relative == pytest.approx(
        stats.norm.ppf(0.975) * se, abs=TOLERANCE
    )


def test_srm_matches_the_chi_square_statistic_computed_by_hand():
    observed, weights = [158, 281], [50, 50]
    expected = np.array([219.5, 219.5])
    statistic = float(((np.array(observed) - expected) ** 2 / expected).sum())
    assert srm_p_value(observed, weights) == pytest.approx(stats.chi2.sf(statistic, 1), abs=1e-12)
    assert srm_p_value([500, 251, 249], [50, 25, 25]) > 0.9


def test_cuped_theta_and_variance_reduction_match_a_regression():
    rng = np.random.default_rng(3)
    frame = _persons(rng, 300, 300, rho=0.6)
    y, x = frame["revenue"].to_numpy(), frame["pre_revenue"].to_numpy()
    adjusted, theta, reduction = cuped_adjust(y, x)
    regression = stats.linregress(x, y)
    assert theta == pytest.approx(regression.slope, abs=TOLERANCE)
    assert reduction == pytest.approx(regression.rvalue**2, abs=TOLERANCE)
    assert adjusted.mean() == pytest.approx(y.mean(), abs=TOLERANCE)  # unbiased shift only
    assert 0.25 < reduction < 0.45  # rho 0.6: about 0.36 of the variance goes


def test_cuped_reduces_variance_and_narrows_the_interval_with_a_correlated_pre_period():
    rng = np.random.default_rng(4)
    frame = _persons(rng, 400, 400, lift=0.05, rho=0.8)
    result = analyze_experiment(frame, _spec(planned_persons_per_variant=10), AS_OF)
    row = result[~result["is_control"]].iloc[0]
    assert row["cuped_variance_reduction"] > 0.5
    plain_width = row["absolute_lift_ci_high"] - row["absolute_lift_ci_low"]
    cuped_width = row["cuped_ci_high"] - row["cuped_ci_low"]
    assert cuped_width < 0.75 * plain_width
    # without correlation there is nothing to remove
    flat = _persons(np.random.default_rng(5), 400, 400, rho=0.0)
    row = analyze_experiment(flat, _spec(), AS_OF).query("not is_control").iloc[0]
    assert row["cuped_variance_reduction"] < 0.02


def test_the_analysis_table_matches_scipy_row_by_row():
    frame = pd.DataFrame(
        {
            "variant": ["control"] * len(FIXED_CONTROL) + ["treatment"] * len(FIXED_TREATMENT),
            "revenue": np.concatenate([FIXED_CONTROL, FIXED_TREATMENT]),
            "pre_revenue": np.concatenate([FIXED_CONTROL[::-1] * 0.5, FIXED_TREATMENT * 0.3]),
        }
    )
    row = analyze_experiment(frame, _spec(planned_persons_per_variant=5), AS_OF).iloc[1]
    reference = stats.ttest_ind(FIXED_TREATMENT, FIXED_CONTROL, equal_var=False)
    assert row["p_value"] == pytest.approx(reference.pvalue, abs=TOLERANCE)
    assert row["mean"] == pytest.approx(FIXED_TREATMENT.mean(), abs=TOLERANCE)
    assert row["variance"] == pytest.approx(FIXED_TREATMENT.var(ddof=1), abs=TOLERANCE)
    adjusted, _, _ = cuped_adjust(frame["revenue"].to_numpy(), frame["pre_revenue"].to_numpy())
    treated = (frame["variant"] == "treatment").to_numpy()
    cuped = stats.ttest_ind(adjusted[treated], adjusted[~treated], equal_var=False)
    assert row["cuped_p_value"] == pytest.approx(cuped.pvalue, abs=TOLERANCE)
    assert row["cuped_ci_low"] == pytest.approx(cuped.confidence_interval().low, abs=TOLERANCE)


def test_holm_and_bonferroni_adjustments():
    p = [0.01, 0.04, 0.03, math.nan]
    holm = adjust_p_values(p, "holm")
    assert holm[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(holm[3])
    assert adjust_p_values(p, "bonferroni")[:3] == pytest.approx([0.03, 0.12, 0.09])


def test_power_and_persons_needed_against_the_closed_form():
    sigma, effect = 20.0, 4.0
    needed = persons_needed(sigma**2, sigma**2, effect, 0.05, 0.8)
    closed_form = 2 * sigma**2 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) ** 2 / effect**2
    assert needed == pytest.approx(closed_form, rel=1e-9)
    # at exactly that many persons the power is (nearly) the planned one
    n = math.ceil(needed)
    assert power_now(sigma**2, n, sigma**2, n, effect, 0.05) == pytest.approx(0.8, abs=0.005)


def test_days_to_mde_follow_the_enrollment_rate():
    rng = np.random.default_rng(6)
    frame = _persons(rng, 100, 100, rho=0.0)
    config = ExperimentConfig(use_cuped=False)
    spec = _spec(minimum_detectable_effect=0.05)
    row = analyze_experiment(frame, spec, AS_OF, config).query("not is_control").iloc[0]
    # 100 persons per variant in the 31 days since START; the rest at that rate
    assert row["persons_needed_for_mde"] > 100
    expected = (row["persons_needed_for_mde"] - 100) / (100 / 31)
    assert row["days_to_mde"] == pytest.approx(expected, rel=0.02)


# --- behaviour over repeated seeds ---------------------------------------------------------


def _significant_rate(lift: float, seeds: range, binary: bool) -> float:
    metric = "conversion" if binary else "revenue"
    spec = _spec(primary_metric=metric, planned_persons_per_variant=200)
    hits = 0
    for seed in seeds:
        frame = _persons(np.random.default_rng(seed), 200, 200, lift, metric, binary)
        row = analyze_experiment(frame, spec, AS_OF).query("not is_control").iloc[0]
        hits += bool(row["is_significant"])
    return hits / len(seeds)


@pytest.mark.parametrize("binary", [False, True])
def test_a_null_experiment_is_significant_at_the_stated_rate(binary):
    seeds = range(400)
    rate = _significant_rate(0.0, seeds, binary)
    alpha = ExperimentConfig().alpha
    # binomial(400, 0.05): sd 0.011; within 3 sd of alpha
    assert abs(rate - alpha) < 3 * math.sqrt(alpha * (1 - alpha) / len(seeds))


def test_a_real_lift_is_found():
    assert _significant_rate(0.3, range(100), binary=False) > 0.95  # power ~1 at this effect
    assert _significant_rate(0.5, range(100), binary=True) > 0.6


def test_a_sample_ratio_mismatch_blocks_the_results():
    frame = _persons(np.random.default_rng(7), 300, 420, lift=0.3)
    result = analyze_experiment(frame, _spec(), AS_OF)
    assert result["is_srm_blocked"].all() and (result["status"] == "blocked_srm").all()
    assert result["srm_p_value"].iloc[0] < 0.001
    assert not result["is_significant"].any()
    assert result.loc[:, list(WITHHELD_WHEN_BLOCKED)].isna().all().all()
    shown = analyze_experiment(frame, _spec(), AS_OF, withhold_blocked=False)
    assert shown.loc[1, "absolute_lift"] == pytest.approx(30, abs=10)  # computed, not shown


def test_nothing_is_significant_before_the_planned_sample_size():
    frame = _persons(np.random.default_rng(8), 150, 150, lift=0.5)
    early = analyze_experiment(frame, _spec(planned_persons_per_variant=1000), AS_OF)
    row = early.query("not is_control").iloc[0]
    assert row["cuped_p_value_adjusted"] < 1e-6  # a huge effect ...
    assert row["status"] == "collecting" and not row["is_significant"]  # ... not called yet
    assert not row["has_reached_planned_size"]


def test_several_variants_are_corrected_and_weights_respected():
    rng = np.random.default_rng(9)
    frame = pd.concat(
        [
            _persons(rng, 400, 0).assign(variant="control"),
            _persons(rng, 0, 200).assign(variant="a"),
            _persons(rng, 0, 200).assign(variant="b"),
        ]
    )
    spec = _spec(variants=parse_variants("control:50;a:25;b:25"))
    result = analyze_experiment(frame, spec, AS_OF).set_index("variant")
    assert result["srm_p_value"].iloc[0] > 0.9  # 400/200/200 is what 50/25/25 expects
    assert result.loc["a", "expected_share"] == 0.25
    p = result.loc[["a", "b"], "p_value"].to_numpy()
    adjusted = result.loc[["a", "b"], "p_value_adjusted"].to_numpy()
    assert adjusted == pytest.approx(adjust_p_values(p, "holm"))
    assert (adjusted >= p).all()
