"""Population Stability Index (PSI) of features and of segment/cluster shares.

PSI = sum over bins of (actual - expected) * ln(actual / expected), with shares of rows per bin;
an empty bin counts as ``epsilon`` so the logarithm stays finite. Numeric features are cut at
the baseline's quantiles (observed values, ``inverted_cdf``, so counts keep whole-number edges;
duplicate edges from ties collapse, so a constant column has one bin
``<= value`` and one ``> value``); bins are right-closed, the outer ones open-ended, and nulls
are a bin of their own. Categorical features keep the baseline's most frequent values, an
"other" bin (also for values never seen in the baseline) and a null bin.

A baseline (``FeatureBaseline``) holds only edges, categories and shares: it is JSON, stored
in the model's registry metadata, so drift is computed at scoring time without training data.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from ml.config import DriftConfig
from ml.preprocessing import FeatureSet, sample_indices, to_category, to_float

log = logging.getLogger(__name__)

DriftStatus = Literal["ok", "warn", "retrain"]
_SEVERITY: dict[str, int] = {"ok": 0, "warn": 1, "retrain": 2}


@dataclass(frozen=True)
class FeatureBaseline:
    """Bins of one feature and the baseline's share of rows in each."""

    feature: str
    kind: Literal["numeric", "categorical"]
    proportions: tuple[float, ...]
    """One share per bin; the last bin is nulls (categorical: "other", then nulls)."""
    edges: tuple[float, ...] = ()
    """Numeric: inner bin edges; bins are (-inf, e0], (e0, e1], ..., (e_last, inf), null."""
    categories: tuple[str, ...] = ()
    """Categorical: the values with a bin of their own."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "proportions": list(self.proportions),
            "edges": list(self.edges),
            "categories": list(self.categories),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureBaseline:
        return cls(
            feature=data["feature"],
            kind=data["kind"],
            proportions=tuple(float(p) for p in data["proportions"]),
            edges=tuple(float(e) for e in data.get("edges", ())),
            categories=tuple(str(c) for c in data.get("categories", ())),
        )


@dataclass(frozen=True)
class DriftReport:
    features: pd.DataFrame
    """feature, kind, psi, status, note; worst first."""
    recommendation: DriftStatus
    """The worst feature status: "retrain" if any feature is above the retrain threshold."""
    max_psi: float

    def summary(self) -> dict[str, Any]:
        counts = self.features["status"].value_counts()
        return {
            "recommendation": self.recommendation,
            "max_psi": self.max_psi,
            "features_ok": int(counts.get("ok", 0)),
            "features_warn": int(counts.get("warn", 0)),
            "features_retrain": int(counts.get("retrain", 0)),
        }


def psi(expected: Any, actual: Any, epsilon: float = DriftConfig.epsilon) -> float:
    """PSI of two share vectors over the same bins (zero shares count as ``epsilon``)."""
    e = np.maximum(np.asarray(expected, dtype=float), epsilon)
    a = np.maximum(np.asarray(actual, dtype=float), epsilon)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def classify_psi(value: float, config: DriftConfig | None = None) -> DriftStatus:
    """'retrain' above ``config.retrain``, 'warn' above ``config.warn``, else 'ok'."""
    config = config or DriftConfig()
    if value > config.retrain:
        return "retrain"
    if value > config.warn:
        return "warn"
    return "ok"


def share_psi(
    previous: Mapping[Hashable, float],
    current: Mapping[Hashable, float],
    epsilon: float = DriftConfig.epsilon,
) -> float:
    """PSI between two runs' segment or cluster shares; a segment present in only one run
    counts as ``epsilon`` in the other."""
    keys = sorted(set(previous) | set(current), key=str)
    return psi([previous.get(k, 0.0) for k in keys], [current.get(k, 0.0) for k in keys], epsilon)


def _shares(counts: np.ndarray, total: int) -> tuple[float, ...]:
    return tuple(float(c) / total if total else 0.0 for c in counts)


def numeric_baseline(name: str, series: pd.Series, bins: int) -> FeatureBaseline:
    values = to_float(series)
    finite = values[~np.isnan(values)]
    edges: tuple[float, ...] = ()
    if finite.size:
        inner = np.linspace(0, 1, bins + 1)[1:-1]
        quantiles = np.quantile(finite, inner, method="inverted_cdf") if inner.size else finite[:1]
        edges = tuple(float(e) for e in np.unique(quantiles))
    counts = _numeric_counts(FeatureBaseline(name, "numeric", (), edges=edges), values)
    return FeatureBaseline(name, "numeric", _shares(counts, len(values)), edges=edges)


def _numeric_counts(baseline: FeatureBaseline, values: np.ndarray) -> np.ndarray:
    edges = np.asarray(baseline.edges, dtype=float)
    nulls = np.isnan(values)
    bins = np.searchsorted(edges, values[~nulls], side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype(float)
    return np.append(counts, float(nulls.sum()))


def categorical_baseline(name: str, series: pd.Series, max_categories: int) -> FeatureBaseline:
    values = pd.Series(to_category(series), dtype=object)
    top = values.dropna().value_counts().sort_index(kind="stable")
    top = top.sort_values(ascending=False, kind="stable").head(max_categories)
    baseline = FeatureBaseline(name, "categorical", (), categories=tuple(str(c) for c in top.index))
    counts = _categorical_counts(baseline, values)
    return FeatureBaseline(
        name, "categorical", _shares(counts, len(values)), categories=baseline.categories
    )


def _categorical_counts(baseline: FeatureBaseline, values: pd.Series) -> np.ndarray:
    other = len(baseline.categories)
    codes = pd.Index(baseline.categories, dtype=object).get_indexer(values).astype(np.int64)
    codes[codes < 0] = other
    codes[values.isna().to_numpy()] = other + 1
    return np.bincount(codes, minlength=other + 2).astype(float)


def bin_shares(baseline: FeatureBaseline, series: pd.Series) -> np.ndarray:
    """Shares of ``series`` in ``baseline``'s bins."""
    if baseline.kind == "numeric":
        counts = _numeric_counts(baseline, to_float(series))
    else:
        counts = _categorical_counts(baseline, pd.Series(to_category(series), dtype=object))
    total = counts.sum()
    return counts / total if total else counts


def build_baselines(
    frame: pd.DataFrame,
    features: FeatureSet,
    config: DriftConfig | None = None,
    *,
    random_state: int = 0,
) -> dict[str, FeatureBaseline]:
    """Baselines of every feature of ``features`` present in ``frame`` (on a bounded sample)."""
    config = config or DriftConfig()
    rows = sample_indices(len(frame), config.baseline_sample_size, random_state)
    sample = frame.iloc[rows]
    baselines: dict[str, FeatureBaseline] = {}
    for name in features.numeric_columns:
        if name in sample.columns:
            baselines[name] = numeric_baseline(name, sample[name], config.bins)
    for name in features.categorical:
        if name in sample.columns:
            baselines[name] = categorical_baseline(name, sample[name], config.max_categories)
    return baselines


def baselines_to_dict(baselines: Mapping[str, FeatureBaseline]) -> dict[str, Any]:
    return {name: b.to_dict() for name, b in baselines.items()}


def baselines_from_dict(data: Mapping[str, Any]) -> dict[str, FeatureBaseline]:
    return {name: FeatureBaseline.from_dict(b) for name, b in data.items()}


def feature_drift(
    baselines: Mapping[str, FeatureBaseline] | Mapping[str, Any],
    frame: pd.DataFrame,
    config: DriftConfig | None = None,
) -> DriftReport:
    """PSI and status of every baseline feature in ``frame`` and an overall recommendation.

    ``baselines`` may be ``FeatureBaseline`` objects or their ``to_dict`` form (registry JSON).
    A feature missing from ``frame`` is compared as entirely null (and noted).
    """
    config = config or DriftConfig()
    rows = []
    for name, baseline in baselines.items():
        if not isinstance(baseline, FeatureBaseline):
            baseline = FeatureBaseline.from_dict(baseline)
        missing = name not in frame.columns
        series = pd.Series(np.nan, index=frame.index) if missing else frame[name]
        value = psi(baseline.proportions, bin_shares(baseline, series), config.epsilon)
        rows.append(
            {
                "feature": name,
                "kind": baseline.kind,
                "psi": value,
                "status": classify_psi(value, config),
                "note": "missing from table" if missing else "",
            }
        )
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi", "status", "note"])
    table = table.sort_values(["psi", "feature"], ascending=[False, True], kind="stable")
    table = table.reset_index(drop=True)
    worst = max(table["status"], key=_SEVERITY.__getitem__, default="ok")
    max_psi = float(table["psi"].max()) if len(table) else 0.0
    log.info("feature drift: %s (max PSI %.3f over %d features)", worst, max_psi, len(table))
    return DriftReport(table, worst, max_psi)
