"""Clustering: k recovery, stable ids across runs, profiles, every algorithm path, plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from ml.clustering import ClusterState, assign_clusters, fit_clusters
from ml.config import ClusteringConfig, FeatureConfig
from ml.plots import clustering_pngs

FAST = ClusteringConfig(k_min=2, k_max=7, n_init=2)


def _labels_by_person(result) -> pd.Series:
    return result.membership.set_index("person_id")["cluster_id"]


def _ids_of_planted(result, frame: pd.DataFrame, planted: np.ndarray) -> dict[int, int]:
    """planted blob -> the cluster id most of its people got."""
    labels = _labels_by_person(result).loc[frame["person_id"]].to_numpy()
    return {
        int(blob): int(pd.Series(labels[planted == blob]).mode().iloc[0])
        for blob in np.unique(planted)
    }


def test_recovers_four_planted_clusters(blobs, centers):
    frame, planted = blobs(centers[:4], [300, 300, 300, 300])

    result = fit_clusters(frame)  # default k range 2..10

    assert result.k == 4
    assert list(result.selection_curve["k"]) == list(range(2, 11))
    best = result.selection_curve.loc[result.selection_curve["silhouette"].idxmax(), "k"]
    assert best == 4
    labels = _labels_by_person(result).loc[frame["person_id"]].to_numpy()
    assert adjusted_rand_score(planted, labels) > 0.9
    assert result.silhouette > 0.5
    assert np.isfinite(result.davies_bouldin)
    # elbow: inertia falls steeply up to k=4 and then flattens
    inertia = result.selection_curve.set_index("k")["inertia"]
    assert inertia[3] - inertia[4] > 2 * (inertia[4] - inertia[5])
    assert len(result.membership) == len(frame)
    assert result.membership["person_id"].is_unique
    assert (result.membership["distance_to_centroid"] >= 0).all()
    assert result.profiles["share"].sum() == pytest.approx(1.0)
    assert sorted(result.profiles["cluster_id"]) == [0, 1, 2, 3]
    assert result.features.columns == ("feature_0", "feature_1", "feature_2", "feature_3")
    assert result.features.dropped == {"person_id": "identifier", "as_of": "timestamp"}


def test_identical_rerun_keeps_ids_and_labels(blobs, centers):
    frame, _ = blobs(centers[:4], [200, 250, 300, 150])
    first = fit_clusters(frame, FAST)

    # same data, rows in another order: identical result
    shuffled = frame.sample(frac=1.0, random_state=3)
    second = fit_clusters(shuffled, FAST, previous_state=first.state)

    pd.testing.assert_series_equal(
        _labels_by_person(first).sort_index(), _labels_by_person(second).sort_index()
    )
    assert list(second.id_matches["status"]) == ["kept"] * 4
    assert second.retired_cluster_ids == ()
    assert second.state.next_id == first.state.next_id == 4
    assert second.share_psi == pytest.approx(0.0, abs=1e-12)


def test_removed_cluster_retires_its_id_and_others_keep_theirs(blobs, centers):
    frame, planted = blobs(centers[:4], [200, 250, 300, 150])
    first = fit_clusters(frame, FAST)
    before = _ids_of_planted(first, frame, planted)

    # blob 1 disappears; the other three drift a little and get new people
    later, later_planted = blobs(centers[[0, 2, 3]] + 0.3, [220, 280, 170], seed=5)
    second = fit_clusters(later, FAST, previous_state=first.state)
    after = _ids_of_planted(second, later, later_planted)

    assert second.k == 3
    assert after == {0: before[0], 1: before[2], 2: before[3]}
    assert second.retired_cluster_ids == (before[1],)
    assert set(second.id_matches["status"]) == {"kept"}
    assert second.share_psi is not None and second.share_psi > 0.25  # a whole segment vanished


def test_added_cluster_gets_a_fresh_id_never_used_before(blobs, centers):
    frame, planted = blobs(centers[:4], [200, 250, 300, 150])
    first = fit_clusters(frame, FAST)
    before = _ids_of_planted(first, frame, planted)

    grown, grown_planted = blobs(centers, [200, 250, 300, 150, 220], seed=6)
    second = fit_clusters(grown, FAST, previous_state=first.state)
    after = _ids_of_planted(second, grown, grown_planted)

    assert second.k == 5
    assert all(after[blob] == before[blob] for blob in range(4))
    assert after[4] == 4  # first id above every id ever issued
    assert second.state.next_id == 5
    new = second.id_matches.loc[second.id_matches["status"] == "new", "cluster_id"]
    assert list(new) == [4]

    # blob 4 goes away (id 4 retired) and comes back: it must not get id 4 again
    third = fit_clusters(frame, FAST, previous_state=second.state)
    assert third.retired_cluster_ids == (4,)
    fourth = fit_clusters(grown, FAST, previous_state=third.state)
    assert _ids_of_planted(fourth, grown, grown_planted)[4] == 5


def test_small_clusters_are_flagged(blobs):
    two_d = np.array([[0.0, 0.0], [12.0, 0.0], [0.0, 12.0]])
    frame, planted = blobs(two_d, [600, 380, 12])  # 12 of 992 people = 1.2 %
    config = ClusteringConfig(k_min=3, k_max=3, min_cluster_share=0.02)

    result = fit_clusters(frame, config)

    small_id = _ids_of_planted(result, frame, planted)[2]
    flagged = result.profiles.set_index("cluster_id")["is_small"]
    assert flagged[small_id]
    assert flagged.sum() == 1
    assert result.summary()["small_clusters"] == [small_id]


def test_profiles_name_clusters_by_their_distinguishing_features():
    rng = np.random.default_rng(0)
    n = 600
    heavy = np.arange(n) < 200  # a third of people are heavy recent users
    frame = pd.DataFrame(
        {
            "person_id": [f"p{i}" for i in range(n)],
            "session_count_7d": np.where(heavy, rng.poisson(20, n), rng.poisson(1, n)),
            "recency_days": np.where(heavy, rng.integers(0, 3, n), rng.integers(30, 90, n)),
            "country": rng.choice(["DE", "FR"], n),
        }
    )
    frame["session_count_7d_web"] = frame[
        "session_count_7d"
    ]  # a duplicate must not name a cluster twice
    result = fit_clusters(frame, ClusteringConfig(k_min=2, k_max=2))

    heavy_id = int(result.membership.set_index("person_id").loc["p0", "cluster_id"])
    profile = result.profiles.set_index("cluster_id").loc[heavy_id]
    assert set(profile["name"].split(", ")) == {"high session_count_7d", "low recency_days"}
    assert "high session_count_7d (+" in profile["top_features"]
    assert "session_count_7d_web" not in profile["top_features"]
    other = result.profiles.set_index("cluster_id").drop(index=heavy_id).iloc[0]
    assert set(other["name"].split(", ")) == {"low session_count_7d", "high recency_days"}
    assert profile["share"] == pytest.approx(200 / 600)


@pytest.mark.parametrize("algorithm", ["agglomerative", "dbscan", "hdbscan"])
def test_sample_fitted_algorithms_extend_labels_to_everyone(blobs, centers, algorithm):
    frame, planted = blobs(centers[:4], [500, 400, 350, 250])
    config = ClusteringConfig(algorithm=algorithm, k_min=2, k_max=6, fit_sample_size=300)

    result = fit_clusters(frame, config)

    assert len(result.membership) == len(frame)
    assert result.membership["cluster_id"].notna().all()
    assert (result.membership["cluster_id"] >= 0).all()
    labels = _labels_by_person(result).loc[frame["person_id"]].to_numpy()
    assert result.k == 4
    assert adjusted_rand_score(planted, labels) > 0.9
    if algorithm != "agglomerative":
        assert result.noise_share is not None and 0 <= result.noise_share < 0.2


def test_minibatch_path_above_threshold(blobs, centers):
    frame, planted = blobs(centers[:4], [500, 500, 500, 500])
    config = ClusteringConfig(
        k_min=3, k_max=5, minibatch_threshold=1_000, selection_sample_size=800, minibatch_size=256
    )

    result = fit_clusters(frame, config)

    assert result.estimator == "MiniBatchKMeans"
    labels = _labels_by_person(result).loc[frame["person_id"]].to_numpy()
    assert adjusted_rand_score(planted, labels) > 0.9
    rerun = fit_clusters(frame, config, previous_state=result.state)
    assert (rerun.membership["cluster_id"] == result.membership["cluster_id"]).all()


def test_pca_option_and_projection(blobs, centers):
    frame, planted = blobs(centers[:4], [200, 200, 200, 200])
    config = ClusteringConfig(
        k_min=2, k_max=6, use_pca=True, pca_components=3, projection_sample_size=100
    )

    result = fit_clusters(frame, config)

    assert result.state.centroids.shape == (4, 3)
    labels = _labels_by_person(result).loc[frame["person_id"]].to_numpy()
    assert adjusted_rand_score(planted, labels) > 0.9
    assert list(result.projection.columns) == ["person_id", "cluster_id", "pc1", "pc2"]
    assert len(result.projection) == 100
    assert result.projection["pc1"].std() > 1.0
    # profiles still speak in original feature names, not components
    assert "feature_" in result.profiles["top_features"].iloc[0]


def test_state_round_trip_and_assignment_of_new_people(tmp_path, blobs, centers):
    frame, _ = blobs(centers[:4], [200, 200, 200, 200])
    result = fit_clusters(frame, FAST)
    path = tmp_path / "state" / "clusters.joblib"

    result.state.save(path)
    loaded = ClusterState.load(path)

    assert loaded.cluster_ids == result.state.cluster_ids
    assert list(tmp_path.joinpath("state").iterdir()) == [path]  # no temporary file left
    assigned = assign_clusters(frame, loaded)
    merged = assigned.merge(result.membership, on="person_id", suffixes=("", "_fit"))
    assert (merged["cluster_id"] == merged["cluster_id_fit"]).all()
    np.testing.assert_allclose(
        merged["distance_to_centroid"], merged["distance_to_centroid_fit"], rtol=1e-3, atol=1e-3
    )


def test_feature_config_include_and_exclude(blobs, centers):
    frame, _ = blobs(centers[:4], [100, 100, 100, 100])
    config = ClusteringConfig(
        k_min=2, k_max=4, features=FeatureConfig(exclude=("feature_3",), include=())
    )
    result = fit_clusters(frame, config)
    assert "feature_3" not in result.features.columns
    assert result.features.dropped["feature_3"] == "excluded by config"


def test_plots_render_png(blobs, centers):
    frame, _ = blobs(centers[:4], [100, 100, 100, 100])
    result = fit_clusters(frame, FAST)

    pngs = clustering_pngs(result)

    assert set(pngs) == {"selection_curve", "projection"}
    for png in pngs.values():
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(png) > 5_000


def test_too_few_people_is_a_clear_error():
    frame = pd.DataFrame({"person_id": ["a", "b"], "x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="too few"):
        fit_clusters(frame)


def test_person_features_table_with_awkward_dtypes_and_empty_crm_columns(person_table):
    table = person_table(400)
    # events-only deployment: every CRM-derived column is null, some are absent altogether
    crm = ["customer_id", "is_customer", "recency_days", "order_count", "lifetime_spend", "country"]
    events_only = table.assign(**{c: None for c in crm}).drop(columns=["loyalty_tier"])

    for frame in (table, events_only):
        result = fit_clusters(frame, ClusteringConfig(k_min=2, k_max=4, n_init=1))

        assert len(result.membership) == len(frame)
        assert result.profiles["size"].sum() == len(frame)
        assert result.profiles["name"].is_unique
        assert result.profiles["name"].str.len().gt(0).all()
        assert "person_id" not in result.features.columns
    assert result.features.dropped["order_count"] == "entirely null"
    assert "country" not in result.features.columns
    assert "event_count_30d" in result.features.columns
