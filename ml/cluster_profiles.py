"""Per-cluster profiles: size, share, the features that set a cluster apart, a readable name.

A feature distinguishes a cluster by its standardised mean difference: (cluster mean -
population mean) / population standard deviation, computed on the preprocessed columns (log1p
and standardised numbers, one-hot categories, missing indicators), i.e. the space the clusters
were found in. A feature nearly collinear (|r| > 0.9) with one already listed is skipped, so
``session_count`` and ``event_count`` do not both name a cluster. Numeric features are described as
"high"/"low" with the cluster's and the population's mean in original units; 0/1 columns (a
category, "x is missing") as "often"/"rarely".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse

CORRELATION_ROWS = 20_000
REDUNDANT_CORRELATION = 0.9


def group_means(matrix: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """Row means of ``matrix`` per label 0..n_groups-1 (float64), via one sparse product."""
    n_rows = len(labels)
    membership = sparse.csr_matrix(
        (np.ones(n_rows), (labels, np.arange(n_rows))), shape=(n_groups, n_rows)
    )
    sums = np.asarray(membership @ matrix, dtype=np.float64)
    counts = np.bincount(labels, minlength=n_groups).astype(np.float64)
    return sums / np.maximum(counts, 1.0)[:, None]


def _describe(
    name: str,
    smd: float,
    raw_means: pd.Series | None,
    population_raw_mean: float | None,
) -> tuple[str, str]:
    binary = "=" in name or name.endswith(" is missing")
    word = ("often" if smd > 0 else "rarely") if binary else ("high" if smd > 0 else "low")
    label = f"{word} {name}"
    detail = f"{label} ({smd:+.2f} sd"
    if raw_means is not None and population_raw_mean is not None:
        cluster_mean = raw_means.get(name)
        if cluster_mean is not None and np.isfinite(cluster_mean):
            detail += f"; mean {cluster_mean:.3g} vs {population_raw_mean:.3g}"
    return label, detail + ")"


def profile_clusters(
    matrix: np.ndarray,
    feature_names: Sequence[str],
    ordinal_labels: np.ndarray,
    cluster_ids: Sequence[int],
    raw_numeric: pd.DataFrame,
    distances: np.ndarray,
    *,
    top_features: int,
    min_cluster_share: float,
) -> pd.DataFrame:
    """One row per cluster (in ``cluster_ids`` order): cluster_id, name, size, share, is_small,
    top_features, mean_distance_to_centroid.

    ``matrix`` is the preprocessed (pre-PCA) matrix whose columns are ``feature_names``;
    ``raw_numeric`` the numeric features in original units (for readable means).
    """
    n_clusters = len(cluster_ids)
    n_rows = len(ordinal_labels)
    means = group_means(matrix, ordinal_labels, n_clusters)
    population_mean = np.asarray(matrix.mean(axis=0, dtype=np.float64))
    population_std = np.asarray(matrix.std(axis=0, dtype=np.float64))
    usable = population_std > 1e-12
    smd = np.zeros_like(means)
    smd[:, usable] = (means[:, usable] - population_mean[usable]) / population_std[usable]
    raw_cluster_means = raw_numeric.groupby(ordinal_labels).mean() if len(raw_numeric) else None
    raw_population = raw_numeric.mean() if len(raw_numeric.columns) else pd.Series(dtype=float)
    sizes = np.bincount(ordinal_labels, minlength=n_clusters)
    mean_distance = group_means(distances[:, None], ordinal_labels, n_clusters)[:, 0]
    correlation = _correlation(matrix, usable)
    rows = []
    for cluster in range(n_clusters):
        order = [i for i in np.argsort(-np.abs(smd[cluster]), kind="stable") if usable[i]]
        labels: list[str] = []
        details: list[str] = []
        for i in _distinct(order, correlation, top_features):
            name = feature_names[i]
            raw = (
                raw_cluster_means.loc[cluster]
                if raw_cluster_means is not None and cluster in raw_cluster_means.index
                else None
            )
            population = raw_population.get(name) if name in raw_population.index else None
            label, detail = _describe(name, float(smd[cluster, i]), raw, population)
            labels.append(label)
            details.append(detail)
        share = sizes[cluster] / n_rows if n_rows else 0.0
        rows.append(
            {
                "cluster_id": int(cluster_ids[cluster]),
                "labels": labels,
                "size": int(sizes[cluster]),
                "share": float(share),
                "is_small": bool(share < min_cluster_share),
                "top_features": "; ".join(details),
                "mean_distance_to_centroid": float(mean_distance[cluster]),
            }
        )
    names = _unique_names([row.pop("labels") for row in rows], [r["cluster_id"] for r in rows])
    profiles = pd.DataFrame(rows)
    profiles.insert(1, "name", names)
    return profiles


def _correlation(matrix: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Absolute feature correlations on a bounded row sample (0 for constant columns)."""
    rows = np.random.default_rng(0).permutation(len(matrix))[:CORRELATION_ROWS]
    sample = np.asarray(matrix[np.sort(rows)], dtype=np.float64)
    out = np.zeros((matrix.shape[1], matrix.shape[1]))
    varying = usable & (sample.std(axis=0) > 1e-12)
    if varying.sum() > 1:
        out[np.ix_(varying, varying)] = np.abs(np.corrcoef(sample[:, varying], rowvar=False))
    return out


def _distinct(order: Sequence[int], correlation: np.ndarray, limit: int) -> list[int]:
    """The first ``limit`` features of ``order``, skipping near-duplicates (|r| > 0.9) of a
    feature already listed, e.g. ``event_count`` after ``session_count``."""
    chosen: list[int] = []
    for i in order:
        if len(chosen) == limit:
            break
        if all(correlation[i, j] <= REDUNDANT_CORRELATION for j in chosen):
            chosen.append(i)
    return chosen


def _unique_names(labels: list[list[str]], cluster_ids: list[int]) -> list[str]:
    """'high a, low b' from the top two labels; more labels (then the id) until unique."""
    names = [", ".join(lab[:2]) or "average" for lab in labels]
    for extra in range(3, 6):
        duplicated = {n for n in names if names.count(n) > 1}
        if not duplicated:
            return names
        names = [
            ", ".join(lab[:extra]) if n in duplicated else n
            for n, lab in zip(names, labels, strict=True)
        ]
    duplicated = {n for n in names if names.count(n) > 1}
    return [
        f"{n} #{cid}" if n in duplicated else n for n, cid in zip(names, cluster_ids, strict=True)
    ]
