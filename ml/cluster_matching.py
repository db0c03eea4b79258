"""Stable cluster ids across runs: match this run's clusters to the previous run's.

Both sets of centroids are compared in the previous run's feature space: the current people are
transformed with the previous run's fitted pipeline and averaged per new cluster, so a refitted
scaler cannot shift the comparison. The Hungarian algorithm pairs old and new clusters with the
smallest total distance; a pair is kept only when the distance is within
``match_distance_ratio`` times the old cluster's RMS radius. Kept clusters keep the old id;
every other new cluster gets a fresh id above every id ever issued (``next_id``), so an id is
never reused for a different group of people.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn.pipeline import Pipeline

from ml.preprocessing import FeatureSet, prepare_frame, transform

log = logging.getLogger(__name__)

MATCH_ROWS = 50_000
_MIN_CUTOFF = 1e-9


@dataclass(frozen=True)
class PreviousClusters:
    """What a run needs of the previous run to keep its ids (a slice of ``ClusterState``)."""

    pipeline: Pipeline
    features: FeatureSet
    centroids: np.ndarray
    cluster_ids: tuple[int, ...]
    radii: np.ndarray
    next_id: int


@dataclass(frozen=True)
class IdAssignment:
    cluster_ids: tuple[int, ...]
    """Id of each new cluster, in the new clusters' order."""
    matches: pd.DataFrame
    """cluster_id, previous_cluster_id (null: new), centroid_distance, cutoff, status."""
    retired_ids: tuple[int, ...]
    """Previous ids that no new cluster inherited."""
    next_id: int


def _centroids_in_previous_space(
    frame: pd.DataFrame,
    labels: np.ndarray,
    n_clusters: int,
    previous: PreviousClusters,
    random_state: int,
) -> np.ndarray:
    rng = np.random.default_rng(random_state)
    per_cluster = max(1, MATCH_ROWS // max(n_clusters, 1))
    chosen: list[np.ndarray] = []
    for cluster in range(n_clusters):
        members = np.flatnonzero(labels == cluster)
        if len(members) > per_cluster:
            members = np.sort(rng.choice(members, per_cluster, replace=False))
        chosen.append(members)
    rows = np.concatenate(chosen)
    matrix = transform(
        previous.pipeline, prepare_frame(frame.iloc[rows], previous.features), dtype=np.float64
    )
    sample_labels = labels[rows]
    return np.vstack([matrix[sample_labels == c].mean(axis=0) for c in range(n_clusters)])


def match_cluster_ids(
    frame: pd.DataFrame,
    labels: np.ndarray,
    n_clusters: int,
    previous: PreviousClusters | None,
    *,
    distance_ratio: float,
    random_state: int = 0,
) -> IdAssignment:
    """Ids for clusters ``0..n_clusters-1`` of ``labels`` (one per row of ``frame``)."""
    if previous is None or len(previous.cluster_ids) == 0:
        ids = tuple(range(n_clusters))
        matches = pd.DataFrame(
            {
                "cluster_id": list(ids),
                "previous_cluster_id": pd.array([None] * n_clusters, dtype="Int64"),
                "centroid_distance": np.nan,
                "cutoff": np.nan,
                "status": "new",
            }
        )
        return IdAssignment(ids, matches, (), n_clusters)

    new_centroids = _centroids_in_previous_space(frame, labels, n_clusters, previous, random_state)
    distances = cdist(previous.centroids, new_centroids)
    old_rows, new_cols = linear_sum_assignment(distances)
    cutoffs = np.maximum(distance_ratio * np.asarray(previous.radii, dtype=float), _MIN_CUTOFF)
    inherited: dict[int, tuple[int, float, float]] = {}
    for old, new in zip(old_rows, new_cols, strict=True):
        if distances[old, new] <= cutoffs[old]:
            inherited[int(new)] = (
                previous.cluster_ids[old],
                float(distances[old, new]),
                float(cutoffs[old]),
            )
    next_id = int(previous.next_id)
    ids: list[int] = []
    rows: list[dict[str, object]] = []
    for new in range(n_clusters):
        if new in inherited:
            old_id, distance, cutoff = inherited[new]
            ids.append(old_id)
            rows.append(
                {
                    "cluster_id": old_id,
                    "previous_cluster_id": old_id,
                    "centroid_distance": distance,
                    "cutoff": cutoff,
                    "status": "kept",
                }
            )
        else:
            nearest = int(np.argmin(distances[:, new]))
            ids.append(next_id)
            rows.append(
                {
                    "cluster_id": next_id,
                    "previous_cluster_id": None,
                    "centroid_distance": float(distances[nearest, new]),
                    "cutoff": float(cutoffs[nearest]),
                    "status": "new",
                }
            )
            next_id += 1
    retired = tuple(sorted(set(previous.cluster_ids) - set(ids)))
    matches = pd.DataFrame(rows)
    matches["previous_cluster_id"] = matches["previous_cluster_id"].astype("Int64")
    log.info(
        "cluster ids: %d kept, %d new, %d retired",
        len(inherited),
        n_clusters - len(inherited),
        len(retired),
    )
    return IdAssignment(tuple(ids), matches, retired, next_id)


def ordered_by_size(labels: np.ndarray, n_clusters: int) -> tuple[np.ndarray, int]:
    """Relabel clusters 0.. by size (largest first, ties by old label), dropping empty ones."""
    sizes = np.bincount(labels, minlength=n_clusters)
    order = [c for c in sorted(range(n_clusters), key=lambda c: (-sizes[c], c)) if sizes[c] > 0]
    mapping = np.full(n_clusters, -1, dtype=np.int64)
    mapping[order] = np.arange(len(order))
    return mapping[labels], len(order)


def ids_to_labels(ids: Sequence[int], ordinal: np.ndarray) -> np.ndarray:
    return np.asarray(ids, dtype=np.int64)[ordinal]
