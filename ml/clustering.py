"""Behavioural clustering of people: choose k, fit, keep cluster ids stable, profile clusters.

``fit_clusters(person_features, config, previous_state)`` is the one entry point. It

1. sorts people by id (so the result does not depend on the order the warehouse returns rows),
   selects features, fits the shared preprocessing pipeline (``ml.preprocessing``);
2. k-means (default): fits a KMeans per k in [k_min, k_max] on a bounded sample, scores each by
   silhouette and Davies-Bouldin on a smaller sample and records inertia (the elbow curve), takes
   the best silhouette, then refits on everyone from that model's centroids (MiniBatchKMeans
   above ``minibatch_threshold`` rows). Agglomerative (Ward, k chosen the same way), DBSCAN and
   HDBSCAN are fitted on a sample and extended to everyone by a k-nearest-neighbours vote
   (DBSCAN/HDBSCAN noise points are assigned to the nearest cluster that way too);
3. gives clusters stable ids (``ml.cluster_matching``) and profiles them
   (``ml.cluster_profiles``).

Everything random takes ``config.random_state``: a rerun on unchanged data gives identical
labels and ids.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.cluster import DBSCAN, HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.metrics import davies_bouldin_score, pairwise_distances, silhouette_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import Pipeline

from ml.cluster_matching import (
    PreviousClusters,
    ids_to_labels,
    match_cluster_ids,
    ordered_by_size,
)
from ml.cluster_profiles import group_means, profile_clusters
from ml.config import ClusteringConfig
from ml.drift import share_psi
from ml.preprocessing import (
    FeatureSet,
    fit_preprocessor,
    prepare_frame,
    readable_feature_names,
    sample_indices,
    select_features,
    transform,
)
from ml.serialization import atomic_write_bytes

log = logging.getLogger(__name__)

ID_COLUMN = "person_id"
STATE_FORMAT = 1


@dataclass(frozen=True)
class ClusterState:
    """What the next run needs: the fitted pipeline, centroids in its output space, ids, the
    highest id ever issued, and shares (for share drift). Persist with ``to_bytes``/``save``."""

    algorithm: str
    features: FeatureSet
    pipeline: Pipeline
    centroids: np.ndarray
    cluster_ids: tuple[int, ...]
    radii: np.ndarray
    """Root-mean-square distance of each cluster's members to its centroid."""
    shares: dict[int, float]
    next_id: int
    """Ids below this have been issued at some point; new clusters get ids from here."""
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    format_version: int = STATE_FORMAT

    def previous_clusters(self) -> PreviousClusters:
        return PreviousClusters(
            self.pipeline,
            self.features,
            self.centroids,
            self.cluster_ids,
            self.radii,
            self.next_id,
        )

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        joblib.dump(self, buffer, compress=3)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ClusterState:
        state = joblib.load(io.BytesIO(data))
        if not isinstance(state, cls):
            raise TypeError(f"not a ClusterState: {type(state).__name__}")
        return state

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, then rename)."""
        atomic_write_bytes(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> ClusterState:
        return cls.from_bytes(Path(path).read_bytes())


@dataclass(frozen=True)
class ClusteringResult:
    membership: pd.DataFrame
    """person_id, cluster_id, distance_to_centroid: one row per person."""
    profiles: pd.DataFrame
    """cluster_id, name, size, share, is_small, top_features, mean_distance_to_centroid."""
    selection_curve: pd.DataFrame
    """k, silhouette, inertia, davies_bouldin per candidate k (on the selection sample)."""
    k: int
    silhouette: float
    """Of the final labels, on the silhouette sample (NaN with one cluster)."""
    davies_bouldin: float
    projection: pd.DataFrame
    """person_id, cluster_id, pc1, pc2: a sample projected on 2 principal components."""
    id_matches: pd.DataFrame
    """cluster_id, previous_cluster_id, centroid_distance, cutoff, status ('kept'/'new')."""
    retired_cluster_ids: tuple[int, ...]
    share_psi: float | None
    """PSI of cluster shares against the previous run (None on a first run)."""
    estimator: str
    """What produced the labels: KMeans, MiniBatchKMeans, AgglomerativeWard, DBSCAN, HDBSCAN."""
    noise_share: float | None
    """DBSCAN/HDBSCAN: share of the fit sample labelled noise (then assigned by neighbours)."""
    state: ClusterState

    @property
    def features(self) -> FeatureSet:
        return self.state.features

    def summary(self) -> dict[str, Any]:
        """JSON-safe numbers for run metadata."""
        return {
            "algorithm": self.state.algorithm,
            "estimator": self.estimator,
            "persons": len(self.membership),
            "k": self.k,
            "silhouette": _json_float(self.silhouette),
            "davies_bouldin": _json_float(self.davies_bouldin),
            "share_psi": _json_float(self.share_psi),
            "noise_share": _json_float(self.noise_share),
            "features": list(self.features.columns),
            "dropped_features": dict(self.features.dropped),
            "cluster_sizes": {
                int(r.cluster_id): int(r.size) for r in self.profiles.itertuples(index=False)
            },
            "small_clusters": [
                int(c) for c in self.profiles.loc[self.profiles.is_small, "cluster_id"]
            ],
            "new_clusters": [
                int(c) for c in self.id_matches.loc[self.id_matches.status == "new", "cluster_id"]
            ],
            "retired_clusters": list(self.retired_cluster_ids),
        }


def _json_float(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


@dataclass(frozen=True)
class _Labels:
    labels: np.ndarray
    n_clusters: int
    curve: pd.DataFrame
    estimator: str
    noise_share: float | None = None


def _pairwise(matrix: np.ndarray) -> np.ndarray:
    """Euclidean distances of the silhouette sample, computed once for every candidate k
    (10,000 rows: 0.4 GB as float32; the distances dominate a silhouette's cost)."""
    return pairwise_distances(np.asarray(matrix, dtype=np.float64)).astype(np.float32)


def _quality(
    matrix: np.ndarray, labels: np.ndarray, distances: np.ndarray | None = None
) -> tuple[float, float]:
    """(silhouette, Davies-Bouldin), NaN when undefined (one cluster, one point per cluster).
    ``distances``: ``_pairwise(matrix)``, when several labelings of one sample are scored."""
    distinct = len(np.unique(labels))
    if not 2 <= distinct <= len(labels) - 1:
        return float("nan"), float("nan")
    if distances is None:
        distances = _pairwise(matrix)
    silhouette = silhouette_score(distances, labels, metric="precomputed")
    return float(silhouette), float(davies_bouldin_score(matrix, labels))


def _within_ss(matrix: np.ndarray, labels: np.ndarray) -> float:
    n_groups = int(labels.max()) + 1
    centroids = group_means(matrix, labels, n_groups)
    return float(((matrix - centroids[labels]) ** 2).sum(dtype=np.float64))


def _best_k(curve: pd.DataFrame) -> int:
    scores = curve["silhouette"].fillna(-np.inf).to_numpy()
    return int(curve["k"].iloc[int(np.argmax(scores))])  # argmax: the first (smallest k) tie


def _k_range(config: ClusteringConfig, n_rows: int) -> range:
    k_max = min(config.k_max, n_rows - 1)
    if k_max < config.k_min:
        raise ValueError(f"{n_rows} rows are too few for k_min={config.k_min} clusters")
    return range(config.k_min, k_max + 1)


def _fit_kmeans(matrix: np.ndarray, config: ClusteringConfig) -> _Labels:
    rs = config.random_state
    selection_rows = sample_indices(len(matrix), config.selection_sample_size, rs)
    sample = matrix[selection_rows]
    quality_rows = sample_indices(len(sample), config.silhouette_sample_size, rs + 1)
    distances = _pairwise(sample[quality_rows])
    rows, models = [], {}
    for k in _k_range(config, len(sample)):
        model = KMeans(n_clusters=k, n_init=config.n_init, random_state=rs).fit(sample)
        silhouette, db = _quality(sample[quality_rows], model.labels_[quality_rows], distances)
        rows.append(
            {"k": k, "silhouette": silhouette, "inertia": model.inertia_, "davies_bouldin": db}
        )
        models[k] = model
        log.info("k=%d silhouette=%.4f davies_bouldin=%.4f", k, silhouette, db)
    curve = pd.DataFrame(rows)
    k = _best_k(curve)
    if len(sample) == len(matrix):
        return _Labels(models[k].labels_.astype(np.int64), k, curve, "KMeans")
    centers = models[k].cluster_centers_
    if len(matrix) > config.minibatch_threshold:
        final: KMeans | MiniBatchKMeans = MiniBatchKMeans(
            n_clusters=k,
            init=centers,
            n_init=1,
            batch_size=config.minibatch_size,
            random_state=rs,
        )
        estimator = "MiniBatchKMeans"
    else:
        final = KMeans(n_clusters=k, init=centers, n_init=1, random_state=rs)
        estimator = "KMeans"
    final.fit(matrix)
    return _Labels(final.predict(matrix).astype(np.int64), k, curve, estimator)


def _extend(
    matrix: np.ndarray,
    fit_rows: np.ndarray,
    fit_labels: np.ndarray,
    config: ClusteringConfig,
) -> np.ndarray:
    """Labels for every row: the fitted label for fit rows that have one (not noise), a
    k-nearest-neighbours vote of the fit rows' labels for all others."""
    labelled = fit_labels >= 0
    if labelled.sum() == 0:
        return np.zeros(len(matrix), dtype=np.int64)
    labels = np.empty(len(matrix), dtype=np.int64)
    rest = np.ones(len(matrix), dtype=bool)
    rest[fit_rows[labelled]] = False
    labels[fit_rows[labelled]] = fit_labels[labelled]
    if rest.any():
        neighbours = min(config.extension_neighbors, int(labelled.sum()))
        knn = KNeighborsClassifier(n_neighbors=neighbours)
        knn.fit(matrix[fit_rows[labelled]], fit_labels[labelled])
        labels[rest] = knn.predict(matrix[rest])
    return labels


def _fit_agglomerative(matrix: np.ndarray, config: ClusteringConfig) -> _Labels:
    rs = config.random_state
    fit_rows = sample_indices(len(matrix), config.fit_sample_size, rs)
    sample = matrix[fit_rows].astype(np.float64)
    quality_rows = sample_indices(len(sample), config.silhouette_sample_size, rs + 1)
    tree = linkage(sample, method="ward")
    distances = _pairwise(sample[quality_rows])
    rows, labelings = [], {}
    for k in _k_range(config, len(sample)):
        labels = fcluster(tree, t=k, criterion="maxclust").astype(np.int64) - 1
        silhouette, db = _quality(sample[quality_rows], labels[quality_rows], distances)
        inertia = _within_ss(sample, labels)
        rows.append({"k": k, "silhouette": silhouette, "inertia": inertia, "davies_bouldin": db})
        labelings[k] = labels
    curve = pd.DataFrame(rows)
    k = _best_k(curve)
    labels = _extend(matrix, fit_rows, labelings[k], config)
    return _Labels(labels, int(labels.max()) + 1, curve, "AgglomerativeWard")


def _fit_density(matrix: np.ndarray, config: ClusteringConfig) -> _Labels:
    rs = config.random_state
    fit_rows = sample_indices(len(matrix), config.fit_sample_size, rs)
    sample = matrix[fit_rows].astype(np.float64)
    min_samples = min(config.density_min_samples, len(sample) - 1)
    if config.algorithm == "dbscan":
        eps = config.dbscan_eps
        if eps is None:
            distances, _ = NearestNeighbors(n_neighbors=min_samples).fit(sample).kneighbors(sample)
            eps = max(float(np.quantile(distances[:, -1], 0.9)), 1e-9)
        fitted = DBSCAN(eps=eps, min_samples=min_samples).fit(sample)
        estimator = "DBSCAN"
    else:
        min_size = config.hdbscan_min_cluster_size or max(
            5, int(config.min_cluster_share * len(sample))
        )
        fitted = HDBSCAN(min_cluster_size=min_size, min_samples=min_samples, copy=True)
        fitted.fit(sample)
        estimator = "HDBSCAN"
    fit_labels = fitted.labels_.astype(np.int64)
    noise_share = float((fit_labels < 0).mean())
    found = len(np.unique(fit_labels[fit_labels >= 0]))
    if found < 2:
        log.warning(
            "%s found %d cluster(s) on the sample: everyone in one cluster", estimator, found
        )
    labels = _extend(matrix, fit_rows, fit_labels, config)
    quality_rows = sample_indices(len(sample), config.silhouette_sample_size, rs + 1)
    labelled = fit_labels[quality_rows] >= 0
    silhouette, db = _quality(sample[quality_rows][labelled], fit_labels[quality_rows][labelled])
    inertia = _within_ss(sample, labels[fit_rows])
    curve = pd.DataFrame(
        [
            {
                "k": int(labels.max()) + 1,
                "silhouette": silhouette,
                "inertia": inertia,
                "davies_bouldin": db,
            }
        ]
    )
    return _Labels(labels, int(labels.max()) + 1, curve, estimator, noise_share)


_FITTERS: dict[str, Callable[[np.ndarray, ClusteringConfig], _Labels]] = {
    "kmeans": _fit_kmeans,
    "agglomerative": _fit_agglomerative,
    "dbscan": _fit_density,
    "hdbscan": _fit_density,
}


def _projection(
    matrix: np.ndarray, person_ids: pd.Series, cluster_labels: np.ndarray, config: ClusteringConfig
) -> pd.DataFrame:
    rows = sample_indices(len(matrix), config.projection_sample_size, config.random_state + 2)
    sample = matrix[rows].astype(np.float64)
    components = min(2, sample.shape[1], len(sample))
    coords = np.zeros((len(sample), 2))
    if components >= 1 and len(sample) > 1:
        coords[:, :components] = PCA(
            n_components=components, random_state=config.random_state
        ).fit_transform(sample)
    return pd.DataFrame(
        {
            ID_COLUMN: person_ids.iloc[rows].to_numpy(),
            "cluster_id": cluster_labels[rows],
            "pc1": coords[:, 0],
            "pc2": coords[:, 1],
        }
    )


def fit_clusters(
    person_features: pd.DataFrame,
    config: ClusteringConfig | None = None,
    previous_state: ClusterState | None = None,
    *,
    id_column: str = ID_COLUMN,
) -> ClusteringResult:
    """Cluster everyone in ``person_features`` (one row per person) and profile the clusters.

    Pass the previous run's ``result.state`` as ``previous_state`` to keep cluster ids stable.
    """
    config = config or ClusteringConfig()
    if id_column not in person_features.columns:
        raise ValueError(f"person_features has no {id_column!r} column")
    if len(person_features) < config.k_min + 1:
        raise ValueError(f"{len(person_features)} people are too few to cluster")
    frame = person_features.sort_values(id_column, kind="stable").reset_index(drop=True)
    features = select_features(frame, config.features)
    prepared = prepare_frame(frame, features)
    pipeline = fit_preprocessor(
        prepared,
        features,
        config.preprocessing,
        pca_components=config.pca_components if config.use_pca else None,
        random_state=config.random_state,
    )
    matrix = transform(pipeline, prepared)
    fitted = _FITTERS[config.algorithm](matrix, config)
    ordinal, n_clusters = ordered_by_size(fitted.labels, fitted.n_clusters)

    assignment = match_cluster_ids(
        frame,
        ordinal,
        n_clusters,
        previous_state.previous_clusters() if previous_state else None,
        distance_ratio=config.match_distance_ratio,
        random_state=config.random_state,
    )
    cluster_labels = ids_to_labels(assignment.cluster_ids, ordinal)

    centroids = group_means(matrix, ordinal, n_clusters)
    distances = np.sqrt(((matrix - centroids[ordinal].astype(matrix.dtype)) ** 2).sum(axis=1))
    distances = distances.astype(np.float64)
    radii = np.sqrt(group_means((distances**2)[:, None], ordinal, n_clusters)[:, 0])

    feature_matrix = transform(pipeline[:-1], prepared) if config.use_pca else matrix
    profiles = profile_clusters(
        feature_matrix,
        readable_feature_names(pipeline, features),
        ordinal,
        assignment.cluster_ids,
        prepared[list(features.numeric_columns)],
        distances,
        top_features=config.profile_top_features,
        min_cluster_share=config.min_cluster_share,
    )
    del feature_matrix

    quality_rows = sample_indices(
        len(matrix), config.silhouette_sample_size, config.random_state + 1
    )
    silhouette, davies_bouldin = _quality(matrix[quality_rows], ordinal[quality_rows])
    shares = {int(r.cluster_id): float(r.share) for r in profiles.itertuples(index=False)}
    state = ClusterState(
        algorithm=config.algorithm,
        features=features,
        pipeline=pipeline,
        centroids=centroids,
        cluster_ids=assignment.cluster_ids,
        radii=radii,
        shares=shares,
        next_id=assignment.next_id,
    )
    membership = pd.DataFrame(
        {
            id_column: frame[id_column].to_numpy(),
            "cluster_id": cluster_labels,
            "distance_to_centroid": distances,
        }
    )
    result = ClusteringResult(
        membership=membership,
        profiles=profiles.sort_values("cluster_id", kind="stable").reset_index(drop=True),
        selection_curve=fitted.curve,
        k=n_clusters,
        silhouette=silhouette,
        davies_bouldin=davies_bouldin,
        projection=_projection(matrix, frame[id_column], cluster_labels, config),
        id_matches=assignment.matches.sort_values("cluster_id").reset_index(drop=True),
        retired_cluster_ids=assignment.retired_ids,
        share_psi=share_psi(previous_state.shares, shares) if previous_state else None,
        estimator=fitted.estimator,
        noise_share=fitted.noise_share,
        state=state,
    )
    log.info(
        "clustered %d people into %d clusters with %s (silhouette %.3f)",
        len(frame),
        n_clusters,
        fitted.estimator,
        silhouette,
    )
    return result


def assign_clusters(
    person_features: pd.DataFrame, state: ClusterState, *, id_column: str = ID_COLUMN
) -> pd.DataFrame:
    """person_id, cluster_id, distance_to_centroid for people not in the last fit (or a
    cheap re-assignment between refits): the nearest of ``state``'s centroids."""
    prepared = prepare_frame(person_features, state.features)
    matrix = transform(state.pipeline, prepared, dtype=np.float64)
    squared = (
        (matrix**2).sum(axis=1)[:, None]
        - 2 * matrix @ state.centroids.T
        + (state.centroids**2).sum(axis=1)[None, :]
    )
    nearest = np.argmin(squared, axis=1)
    return pd.DataFrame(
        {
            id_column: person_features[id_column].to_numpy(),
            "cluster_id": np.asarray(state.cluster_ids, dtype=np.int64)[nearest],
            "distance_to_centroid": np.sqrt(
                np.maximum(squared[np.arange(len(matrix)), nearest], 0)
            ),
        }
    )
