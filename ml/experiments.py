"""Analysis of experiments: per experiment x metric x variant, lift against the control with
confidence intervals and p-values, CUPED, the sample-ratio-mismatch check, power and the days
still needed to reach the minimum detectable effect.

Input: one row per exposed person and experiment (``marts.experiment_person_metrics``), each
metric from the person's first exposure on (``<metric>``) and over the pre-exposure period
(``pre_<metric>``); the experiments' definitions (``ExperimentSpec``, from the seed).

Methods (README "Experiments"; each matches an independent scipy computation in the tests):

- continuous metrics (revenue, orders, sessions): Welch's t-test; confidence interval of the
  absolute difference with Welch-Satterthwaite degrees of freedom;
- conversion (0/1): two-proportion z-test with the pooled proportion for the p-value and the
  unpooled standard error for the interval;
- relative lift (difference / control mean): delta-method normal interval;
- CUPED (Deng et al. 2013): ``y - theta * (x - mean(x))`` with ``x`` the same metric over the
  pre-exposure period and ``theta = cov(x, y) / var(x)`` over all persons of the experiment
  (unbiased under randomization), then Welch's t-test; the variance reduction reported is
  ``1 - var(adjusted) / var(y)`` (= squared correlation of y and x);
- sample-ratio mismatch: chi-square goodness of fit of the persons per variant against the
  configured weights; p below ``srm_p_threshold`` blocks the experiment: lifts, intervals and
  p-values are withheld (null) and nothing is significant;
- multiple comparisons: Holm (or Bonferroni) correction of the p-values in two families per
  experiment: the primary metric's comparisons (one per treatment variant), and all secondary
  metrics' comparisons together; significance uses the corrected p-value;
- peeking guard: fixed-horizon tests; no result is significant before every variant has its
  planned persons (no sequential method is used, so looking earlier is only a progress report);
- power: persons per variant needed to detect the minimum detectable effect (relative to the
  control mean) at ``alpha`` with ``power``, the power reached now, and the days still needed at
  the enrollment rate so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import stats

from ml.config import ExperimentConfig
from ml.schemas import EXPERIMENT_RESULTS

METRICS: tuple[str, ...] = ("conversion", "revenue", "orders", "sessions")
BINARY_METRICS: frozenset[str] = frozenset({"conversion"})
PRE_PREFIX = "pre_"


@dataclass(frozen=True)
class ExperimentSpec:
    key: str
    variants: tuple[tuple[str, int], ...]  # (variant, integer weight), the control first
    primary_metric: str
    secondary_metrics: tuple[str, ...] = ()
    minimum_detectable_effect: float = 0.1  # relative to the control mean
    planned_persons_per_variant: int = 0
    start_at: datetime | None = None
    end_at: datetime | None = None

    @property
    def control(self) -> str:
        return self.variants[0][0]

    @property
    def metrics(self) -> tuple[str, ...]:
        return (
            self.primary_metric,
            *(m for m in self.secondary_metrics if m != self.primary_metric),
        )


def parse_variants(text: str) -> tuple[tuple[str, int], ...]:
    """``control:50;treatment:50`` -> ((control, 50), (treatment, 50)) (the seed's format)."""
    pairs = []
    for spec in text.split(";"):
        name, _, weight = spec.partition(":")
        pairs.append((name.strip(), int(weight.strip())))
    return tuple(pairs)


def specs_from_seed(frame: pd.DataFrame) -> list[ExperimentSpec]:
    """The experiments of the seed table ``experiments`` (one row each)."""

    def split(value: object) -> tuple[str, ...]:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ()
        return tuple(part.strip() for part in str(value).split(";") if part.strip())

    return [
        ExperimentSpec(
            key=row.experiment_key,
            variants=parse_variants(row.variants),
            primary_metric=row.primary_metric,
            secondary_metrics=split(row.secondary_metrics),
            minimum_detectable_effect=float(row.minimum_detectable_effect),
            planned_persons_per_variant=int(row.planned_persons_per_variant),
            start_at=pd.Timestamp(row.start_at).to_pydatetime(),
            end_at=pd.Timestamp(row.end_at).to_pydatetime(),
        )
        for row in frame.itertuples(index=False)
    ]


# --- the tests, on summary statistics ------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    relative: float
    relative_ci_low: float
    relative_ci_high: float


def _relative(mean1, var1, n1, mean0, var0, n0, z) -> tuple[float, float, float]:
    if mean0 == 0:
        return (math.nan, math.nan, math.nan)
    relative = mean1 / mean0 - 1.0
    se = math.sqrt(var1 / (n1 * mean0**2) + mean1**2 * var0 / (n0 * mean0**4))
    return relative, relative - z * se, relative + z * se


def welch_test(mean1, var1, n1, mean0, var0, n0, alpha: float = 0.05) -> Comparison:
    """Welch's t-test of mean1 - mean0 (sample variances with ddof=1)."""
    a, b = var1 / n1, var0 / n0
    se = math.sqrt(a + b)
    difference = mean1 - mean0
    z = stats.norm.ppf(1 - alpha / 2)
    relative = _relative(mean1, var1, n1, mean0, var0, n0, z)
    if se == 0:
        p = 1.0 if difference == 0 else 0.0
        return Comparison(difference, difference, difference, p, *relative)
    df = (a + b) ** 2 / (a**2 / (n1 - 1) + b**2 / (n0 - 1))
    t = stats.t.ppf(1 - alpha / 2, df)
    p = float(2 * stats.t.sf(abs(difference) / se, df))
    return Comparison(difference, difference - t * se, difference + t * se, p, *relative)


def two_proportion_test(x1, n1, x0, n0, alpha: float = 0.05) -> Comparison:
    """Two-proportion z-test: pooled proportion for the p-value, unpooled standard error for
    the interval of p1 - p0."""
    p1, p0 = x1 / n1, x0 / n0
    pooled = (x1 + x0) / (n1 + n0)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
    se = math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    z = stats.norm.ppf(1 - alpha / 2)
    difference = p1 - p0
    p = 1.0 if se_pooled == 0 else float(2 * stats.norm.sf(abs(difference) / se_pooled))
    # the relative interval with the binomial variances (ddof 0) of the proportions
    relative = _relative(p1, p1 * (1 - p1), n1, p0, p0 * (1 - p0), n0, z)
    return Comparison(difference, difference - z * se, difference + z * se, p, *relative)


def srm_p_value(observed: Sequence[int], weights: Sequence[float]) -> float:
    """Chi-square goodness-of-fit p-value of the persons per variant against the weights."""
    observed_arr = np.asarray(observed, dtype=float)
    total = observed_arr.sum()
    if total == 0 or len(observed_arr) < 2:
        return 1.0
    expected = total * np.asarray(weights, dtype=float) / float(np.sum(weights))
    return float(stats.chisquare(observed_arr, expected).pvalue)


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Holm step-down or Bonferroni adjustment (NaN stays NaN)."""
    values = np.asarray(p_values, dtype=float)
    valid = ~np.isnan(values)
    m = int(valid.sum())
    adjusted = np.full(len(values), np.nan)
    if m == 0:
        return adjusted.tolist()
    if method == "bonferroni":
        adjusted[valid] = np.minimum(values[valid] * m, 1.0)
        return adjusted.tolist()
    index = np.flatnonzero(valid)
    order = index[np.argsort(values[index], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min((m - rank) * values[i], 1.0))
        adjusted[i] = running
    return adjusted.tolist()


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """CUPED-adjusted values, theta and the variance reduction 1 - var(adjusted) / var(y)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    var_x = float(np.var(x, ddof=1)) if len(x) > 1 else 0.0
    if var_x == 0:
        return y.copy(), 0.0, 0.0
    theta = float(np.cov(x, y, ddof=1)[0, 1] / var_x)
    adjusted = y - theta * (x - x.mean())
    var_y = float(np.var(y, ddof=1))
    reduction = 0.0 if var_y == 0 else 1.0 - float(np.var(adjusted, ddof=1)) / var_y
    return adjusted, theta, reduction


def persons_needed(var1: float, var0: float, effect: float, alpha: float, power: float) -> float:
    """Persons per variant to detect an absolute ``effect`` (two-sided ``alpha``, ``power``)."""
    if effect == 0 or not math.isfinite(effect):
        return math.inf
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return float(z**2 * (var1 + var0) / effect**2)


def power_now(var1, n1, var0, n0, effect, alpha) -> float:
    """Power of the two-sided test to detect an absolute ``effect`` with the persons so far."""
    se = math.sqrt(var1 / n1 + var0 / n0)
    if se == 0:
        return 1.0
    z = stats.norm.ppf(1 - alpha / 2)
    shift = abs(effect) / se
    return float(stats.norm.cdf(shift - z) + stats.norm.cdf(-shift - z))


# --- the analysis of a table -----------------------------------------------------------------

RESULT_COLUMNS: tuple[str, ...] = tuple(EXPERIMENT_RESULTS.columns)
WITHHELD_WHEN_BLOCKED: tuple[str, ...] = (
    "absolute_lift",
    "absolute_lift_ci_low",
    "absolute_lift_ci_high",
    "relative_lift",
    "relative_lift_ci_low",
    "relative_lift_ci_high",
    "p_value",
    "p_value_adjusted",
    "cuped_absolute_lift",
    "cuped_ci_low",
    "cuped_ci_high",
    "cuped_p_value",
    "cuped_p_value_adjusted",
)


def _days_elapsed(spec: ExperimentSpec, as_of: datetime) -> float:
    if spec.start_at is None:
        return math.nan
    end = min(as_of, spec.end_at) if spec.end_at is not None else as_of
    return max((end - spec.start_at).total_seconds() / 86400.0, 0.0)


def analyze_experiment(
    persons: pd.DataFrame,
    spec: ExperimentSpec,
    as_of: datetime,
    config: ExperimentConfig | None = None,
    withhold_blocked: bool = True,
) -> pd.DataFrame:
    """The result rows of one experiment (columns ``RESULT_COLUMNS``) from its exposed persons
    (columns variant, ``<metric>`` and ``pre_<metric>`` for each metric analysed)."""
    config = config or ExperimentConfig()
    names = [name for name, _ in spec.variants]
    weights = [weight for _, weight in spec.variants]
    counts = [int((persons["variant"] == name).sum()) for name in names]
    total = sum(counts)
    srm_p = srm_p_value(counts, weights)
    blocked = srm_p < config.srm_p_threshold
    reached = min(counts) >= spec.planned_persons_per_variant if counts else False
    elapsed = _days_elapsed(spec, as_of)
    rows: list[dict] = []
    for metric in spec.metrics:
        y_all = persons[metric].to_numpy(dtype=float)
        pre_column = PRE_PREFIX + metric
        if pre_column in persons:
            adjusted_all, _, reduction = cuped_adjust(y_all, persons[pre_column].to_numpy(float))
        else:
            adjusted_all, reduction = y_all.copy(), 0.0
        by_variant = {
            name: (
                y_all[(persons["variant"] == name).to_numpy()],
                adjusted_all[(persons["variant"] == name).to_numpy()],
            )
            for name in names
        }
        y0, a0 = by_variant[spec.control]
        n0 = len(y0)
        mean0 = float(y0.mean()) if n0 else math.nan
        var0 = float(y0.var(ddof=1)) if n0 > 1 else math.nan
        avar0 = float(a0.var(ddof=1)) if n0 > 1 else math.nan
        metric_rows = []
        for name, weight, count in zip(names, weights, counts, strict=True):
            y, adjusted = by_variant[name]
            n = len(y)
            mean = float(y.mean()) if n else math.nan
            var = float(y.var(ddof=1)) if n > 1 else math.nan
            row = {
                "experiment_key": spec.key,
                "metric": metric,
                "is_primary_metric": metric == spec.primary_metric,
                "variant": name,
                "is_control": name == spec.control,
                "persons": n,
                "expected_share": weight / sum(weights),
                "observed_share": count / total if total else math.nan,
                "mean": mean,
                "variance": var,
                "control_mean": mean0,
                "cuped_variance_reduction": reduction,
                "correction": config.correction,
                "srm_p_value": srm_p,
                "is_srm_blocked": blocked,
                "planned_persons_per_variant": spec.planned_persons_per_variant,
                "has_reached_planned_size": reached,
                "minimum_detectable_effect": spec.minimum_detectable_effect,
                "as_of": as_of,
            }
            comparable = name != spec.control and n > 1 and n0 > 1
            if comparable:
                if metric in BINARY_METRICS:
                    plain = two_proportion_test(y.sum(), n, y0.sum(), n0, config.alpha)
                    row["test_method"] = "two-proportion z-test"
                else:
                    plain = welch_test(mean, var, n, mean0, var0, n0, config.alpha)
                    row["test_method"] = "Welch t-test"
                cuped = welch_test(
                    float(adjusted.mean()), float(adjusted.var(ddof=1)), n,
                    float(a0.mean()), avar0, n0, config.alpha,
                )  # fmt: skip
                effect = spec.minimum_detectable_effect * mean0
                var_used1 = float(adjusted.var(ddof=1)) if config.use_cuped else var
                var_used0 = avar0 if config.use_cuped else var0
                needed = persons_needed(var_used1, var_used0, effect, config.alpha, config.power)
                missing = max(needed - n, needed - n0, 0.0)
                rate = min(n, n0) / elapsed if elapsed and elapsed > 0 else math.nan
                row.update(
                    absolute_lift=plain.difference,
                    absolute_lift_ci_low=plain.ci_low,
                    absolute_lift_ci_high=plain.ci_high,
                    relative_lift=plain.relative,
                    relative_lift_ci_low=plain.relative_ci_low,
                    relative_lift_ci_high=plain.relative_ci_high,
                    p_value=plain.p_value,
                    cuped_absolute_lift=cuped.difference,
                    cuped_ci_low=cuped.ci_low,
                    cuped_ci_high=cuped.ci_high,
                    cuped_p_value=cuped.p_value,
                    power_at_mde=power_now(var_used1, n, var_used0, n0, effect, config.alpha),
                    persons_needed_for_mde=needed if math.isfinite(needed) else math.nan,
                    days_to_mde=(
                        0.0 if missing == 0 else missing / rate if rate and rate > 0 else math.nan
                    ),
                )
            metric_rows.append(row)
        rows += metric_rows
    # corrected p-values per family: the primary metric's comparisons (one per treatment
    # variant), and every secondary metric's comparisons together
    for family in (
        [r for r in rows if r["is_primary_metric"]],
        [r for r in rows if not r["is_primary_metric"]],
    ):
        comparisons = [r for r in family if "p_value" in r and not math.isnan(r["p_value"])]
        for column in ("p_value", "cuped_p_value"):
            adjusted_p = adjust_p_values([r[column] for r in comparisons], config.correction)
            for r, value in zip(comparisons, adjusted_p, strict=True):
                r[f"{column}_adjusted"] = value
    for r in rows:
        decisive = r.get("cuped_p_value_adjusted" if config.use_cuped else "p_value_adjusted")
        if r["is_control"]:
            r["status"] = "blocked_srm" if blocked else "control"
            r["is_significant"] = False
        elif blocked:
            r["status"], r["is_significant"] = "blocked_srm", False
        elif decisive is None or math.isnan(decisive):
            r["status"], r["is_significant"] = "insufficient_data", False
        elif not reached:
            r["status"], r["is_significant"] = "collecting", False
        else:
            r["is_significant"] = bool(decisive < config.alpha)
            r["status"] = "significant" if r["is_significant"] else "not_significant"
        if blocked and withhold_blocked:
            for column in WITHHELD_WHEN_BLOCKED:
                r[column] = math.nan
    return pd.DataFrame(rows).reindex(columns=list(RESULT_COLUMNS))


def analyze_experiments(
    persons: pd.DataFrame,
    specs: Sequence[ExperimentSpec],
    as_of: datetime,
    config: ExperimentConfig | None = None,
    withhold_blocked: bool = True,
) -> pd.DataFrame:
    """Every experiment's result rows (``analyze_experiment``); experiments without exposed
    persons are left out."""
    config = config or ExperimentConfig()
    frames = []
    for spec in specs:
        subset = persons[persons["experiment_key"] == spec.key]
        if len(subset):
            frames.append(analyze_experiment(subset, spec, as_of, config, withhold_blocked))
    if not frames:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    return pd.concat(frames, ignore_index=True)
