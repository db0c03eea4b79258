"""Every tunable of the ml package, in one place: frozen dataclasses with documented defaults.

The Dagster assets build these (from defaults or run config) and pass them to the ml functions;
nothing in ``ml/`` reads the environment or hard-codes a threshold elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ClusteringAlgorithm = Literal["kmeans", "agglomerative", "dbscan", "hdbscan"]

DEFAULT_ID_COLUMNS: tuple[str, ...] = (
    "person_id",
    "customer_id",
    "anonymous_id",
    "user_id",
    "session_id",
    "order_id",
    "event_id",
)
"""Identifier columns, never features (any other column ending in ``_id`` is dropped too)."""

DEFAULT_TIME_COLUMNS: tuple[str, ...] = ("as_of", "snapshot_at", "snapshot_date", "snapshot_number")
"""Time columns, never features (any datetime column or column ending in ``_at`` is too)."""


@dataclass(frozen=True)
class FeatureConfig:
    """Which columns of a table become model features (see ``ml.preprocessing.select_features``).

    Features are chosen by dtype: numbers and booleans are numeric, strings are categorical.
    Identifier, time and label columns, columns missing from the table, entirely null, constant
    or (for strings) nearly unique columns are dropped, and the reason is recorded.
    """

    include: tuple[str, ...] = ()
    """Only these columns are candidates (empty: every column)."""
    exclude: tuple[str, ...] = ()
    """Never use these columns."""
    id_columns: tuple[str, ...] = DEFAULT_ID_COLUMNS
    time_columns: tuple[str, ...] = DEFAULT_TIME_COLUMNS
    use_categoricals: bool = True
    """One-hot encode string columns; False keeps numeric features only."""
    max_category_cardinality: int = 200
    """A string column with more distinct values than this is treated as an identifier."""
    log_skew_threshold: float = 1.0
    """A non-negative numeric column whose skewness exceeds this (and whose maximum exceeds 1,
    so shares and rates are left alone) is log1p-transformed before scaling."""


@dataclass(frozen=True)
class PreprocessingConfig:
    """How selected features are turned into a numeric matrix (``ml.preprocessing``)."""

    add_missing_indicators: bool = True
    """Add a 0/1 column per numeric feature that has nulls ("no orders" is information)."""
    clip_z: float | None = 5.0
    """After standardisation, clip every value to [-clip_z, clip_z] so a handful of extreme
    people cannot drag a centroid or dominate a linear model (None: no clipping)."""
    min_category_frequency: float = 0.01
    """Categories rarer than this share are grouped into one "infrequent" column."""
    max_categories: int = 20
    """At most this many one-hot columns per categorical feature (the rest: "infrequent")."""
    fit_sample_size: int = 200_000
    """Imputation medians, scales and categories are learnt on at most this many rows."""


# Behaviour mix rather than volume: on the generated sample these let silhouette find the nine
# planted archetypes (k=9, ARI 0.33, bench/ml_quality.py), where all numeric features give k=2.
CLUSTERING_FEATURES: tuple[str, ...] = (
    "days_since_last_seen",
    "tenure_days",
    "session_count_30d",
    "content_page_share",
    "abandoned_carts_per_session",
    "conversion_rate",
    "price_filter_share",
    "discounted_order_share",
    "lifetime_spend",
    "completed_orders",
)
"""The columns of marts.person_features the nightly clustering uses (launchpad: ``features``)."""


@dataclass(frozen=True)
class ClusteringConfig:
    """Behavioural clustering of ``person_features`` (``ml.clustering.fit_clusters``)."""

    algorithm: ClusteringAlgorithm = "kmeans"
    k_min: int = 2
    k_max: int = 10
    """k is chosen in [k_min, k_max] by the best silhouette (ties: the smaller k). Not used by
    dbscan/hdbscan, which find their own number of clusters."""
    selection_sample_size: int = 50_000
    """Candidate k-means/agglomerative models for each k are fitted on at most this many rows."""
    silhouette_sample_size: int = 10_000
    """Silhouette and Davies-Bouldin are computed on at most this many rows (silhouette is
    quadratic in the rows)."""
    minibatch_threshold: int = 200_000
    """Above this many rows the final k-means fit uses MiniBatchKMeans."""
    minibatch_size: int = 8_192
    n_init: int = 4
    """k-means restarts per candidate k (on the selection sample)."""
    fit_sample_size: int = 10_000
    """Agglomerative/DBSCAN/HDBSCAN are fitted on at most this many rows and extended to
    everyone by a k-nearest-neighbours vote. Ward linkage keeps an n*(n-1)/2 distance matrix:
    10,000 rows need 0.4 GB, 20,000 rows 1.6 GB."""
    extension_neighbors: int = 15
    dbscan_eps: float | None = None
    """None: the 90th percentile of each sample point's distance to its
    ``density_min_samples``-th neighbour."""
    density_min_samples: int = 10
    hdbscan_min_cluster_size: int | None = None
    """None: ``min_cluster_share`` of the fit sample (at least 5)."""
    use_pca: bool = False
    pca_components: int | float = 0.9
    """An int is a number of components; a float in (0, 1) the share of variance to keep."""
    min_cluster_share: float = 0.02
    """Clusters smaller than this share of people are flagged ``is_small`` in the profile."""
    match_distance_ratio: float = 1.0
    """A new cluster inherits a previous cluster's id when their centroids (both in the previous
    run's feature space) are at most this many times the previous cluster's RMS radius apart."""
    profile_top_features: int = 5
    """Distinguishing features listed per cluster (the first two also name it)."""
    projection_sample_size: int = 5_000
    """Rows in the 2-D PCA projection returned for plotting."""
    random_state: int = 0
    features: FeatureConfig = field(default_factory=FeatureConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)

    def __post_init__(self) -> None:
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(f"need 2 <= k_min <= k_max, got k_min={self.k_min} k_max={self.k_max}")
        if self.algorithm not in ("kmeans", "agglomerative", "dbscan", "hdbscan"):
            raise ValueError(f"unknown clustering algorithm {self.algorithm!r}")


ChurnModelType = Literal["logistic_regression", "hist_gradient_boosting"]
BtydModelType = Literal["bg_nbd", "mbg_nbd"]
CalibrationMethod = Literal["isotonic", "platt", "none"]
AtRiskRule = Literal["top_share", "threshold"]

ORDER_BASELINE_FEATURES: tuple[str, ...] = (
    "completed_orders",
    "completed_orders_90d",
    "days_since_last_order",
    "days_since_first_activity",
    "lifetime_spend",
    "spend_90d",
)
"""The plain order-history features of the ``logistic_regression_orders`` baseline (counts,
recency, tenure, spend: what a BTYD model sees, without sessions or content)."""


@dataclass(frozen=True)
class ChurnConfig:
    """Churn training, model choice, promotion and scoring (``ml.churn``, ``ml.registry``)."""

    horizon_days: int | None = None
    """A person is churned at a snapshot when they are inactive for this many days after it.
    The label is computed upstream, with dbt's var ``churn_horizon_days`` (its one definition),
    and every snapshot row carries it in ``horizon_column``: training reads it from there,
    bounds purging with it and records it in the model's metadata. Set this only for snapshots
    without that column; a value that contradicts the column is an error."""
    horizon_column: str = "churn_horizon_days"
    label_column: str = "churned"
    snapshot_column: str = "snapshot_at"
    id_column: str = "person_id"
    models: tuple[ChurnModelType, ...] = ("logistic_regression", "hist_gradient_boosting")
    """Candidate models; the best validation ROC-AUC wins (ties: the earlier one)."""
    purge_overlapping_horizons: bool = False
    """True: drop training snapshots whose label horizon reaches past the validation snapshot
    (``snapshot_at + horizon_days > validation snapshot``), a strict backtest that needs
    more history. False: every earlier labelled snapshot trains."""
    refit_on_all_labelled: bool = False
    """After choosing the model on the validation snapshot, refit it with the same
    hyper-parameters on train + validation, so the model that scores has seen more recent
    behaviour. Off by default: the calibration is fitted to the unrefitted model's validation
    scores, and the held-out test metrics then describe exactly the model that scores (with a
    refit they are measured on the refit model too, reported as ``<model>_refit``)."""
    max_train_rows: int = 400_000
    """Training rows are sampled down to this many (ROC-AUC saturates long before; keeps a
    1M-person nightly retrain within minutes on 2 cores)."""
    min_train_rows: int = 100
    min_validation_rows: int = 50
    min_class_rows: int = 5
    """Each of train and validation needs at least this many churned and retained rows."""
    hgb_max_iter: int = 300
    hgb_learning_rate: float = 0.1
    hgb_max_leaf_nodes: int = 31
    hgb_l2_regularization: float = 1.0
    logistic_c: float = 1.0
    risk_threshold: float = 0.5
    """``is_at_risk`` is churn_probability >= this."""
    risk_band_edges: tuple[float, ...] = (0.25, 0.5)
    """Lower bounds of every band but the first, ascending."""
    risk_band_labels: tuple[str, ...] = ("low", "medium", "high")
    promotion_tolerance: float = 0.01
    """A candidate replaces the current model when its validation ROC-AUC is at least the
    current model's minus this."""
    promotion_metric: str = "roc_auc"
    random_state: int = 0
    features: FeatureConfig = field(default_factory=FeatureConfig)
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    test_snapshots: int = 1
    """The latest this many labelled snapshot dates are a held-out test set: never trained on,
    never used to choose or calibrate; with fewer than ``test_snapshots + 2`` labelled dates
    there is no test set (the metadata says so)."""
    btyd_models: tuple[BtydModelType, ...] = ("bg_nbd", "mbg_nbd")
    """Buy-till-you-die baselines (``ml.btyd``), fitted on the order history at the training
    cutoff (the latest training snapshot) and evaluated beside the supervised models; their
    churn score is P(no order within the horizon). Never chosen: they are the bar to beat."""
    btyd_features: bool = True
    """Add the BG/NBD expected orders in the horizon and P(alive) as supervised features."""
    btyd_orders_column: str = "completed_orders"
    btyd_recency_column: str = "days_since_last_order"
    btyd_age_column: str = "days_since_first_activity"
    """Order count, days since the last order and days since the first activity (the person's
    birth) of each snapshot row: the BTYD models' (x, T - t_x, T), in days."""
    max_evaluation_rows: int = 250_000
    """Validation and test snapshots are sampled down to this many rows each before every
    candidate is scored and measured on them (the same rows for all; ROC-AUC's standard error
    at 250,000 rows is about 0.001)."""
    btyd_fit_sample_size: int = 100_000
    """The BTYD baselines are fitted on at most this many persons of the cutoff snapshot (four
    parameters: the estimates are stable long before; an unsampled fit costs ~18 s per model
    at 1M persons with day-level recency)."""
    order_baseline_features: tuple[str, ...] = ORDER_BASELINE_FEATURES
    """Features of the ``logistic_regression_orders`` baseline (those present are used)."""
    calibration: CalibrationMethod = "platt"
    """Calibrate the chosen model's probabilities on the validation snapshot (isotonic
    regression or Platt scaling), so that mean predicted churn matches the observed rate. Platt
    keeps the ranking (no ties, the same ROC-AUC, a clean top-decile cut); isotonic may tie."""
    at_risk_rule: AtRiskRule = "top_share"
    """How ``is_at_risk`` is decided: ``top_share``: the ``at_risk_top_share`` of scored persons
    with the highest churn probability (a campaign-sized group, default the top decile);
    ``threshold``: churn_probability >= ``risk_threshold``."""
    at_risk_top_share: float = 0.1
    drift_baseline: Literal["scoring_snapshot", "training_rows"] = "scoring_snapshot"
    """What the churn feature drift check compares the scored snapshot with: the scoring
    snapshot at training time (like with like: the same population rule at the same offset, so
    an unchanged rerun shows no drift), or the rows the model learnt from (older snapshots:
    time-since features such as tenure drift there by construction)."""

    def __post_init__(self) -> None:
        if not 0 < self.at_risk_top_share <= 1:
            raise ValueError("at_risk_top_share must be in (0, 1]")
        if self.test_snapshots < 0:
            raise ValueError("test_snapshots must be >= 0")
        if len(self.risk_band_labels) != len(self.risk_band_edges) + 1:
            raise ValueError("risk_band_labels needs exactly one more entry than risk_band_edges")
        if list(self.risk_band_edges) != sorted(self.risk_band_edges):
            raise ValueError("risk_band_edges must be ascending")
        if not self.models:
            raise ValueError("at least one churn model type is needed")


@dataclass(frozen=True)
class ClvConfig:
    """Customer lifetime value (``ml.clv``): BG/NBD expected orders x Gamma-Gamma order value."""

    horizon_days: int = 90
    """Value over this many days after as_of. The backtest needs a snapshot this many days
    before the latest one (a multiple of dbt's churn_snapshot_interval_days)."""
    top_share: float = 0.1
    """``is_top_value``: the persons with the highest CLV, this share of them."""
    fit_sample_size: int = 100_000
    """BG/NBD and Gamma-Gamma are fitted on at most this many persons (then applied to all)."""
    random_state: int = 0
    orders_column: str = "completed_orders"
    recency_column: str = "days_since_last_order"
    age_column: str = "days_since_first_activity"
    spend_column: str = "lifetime_spend"
    snapshot_column: str = "snapshot_at"
    id_column: str = "person_id"

    def __post_init__(self) -> None:
        if self.horizon_days <= 0 or not 0 < self.top_share <= 1:
            raise ValueError("need horizon_days > 0 and 0 < top_share <= 1")


@dataclass(frozen=True)
class DriftConfig:
    """Population Stability Index thresholds and binning (``ml.drift``)."""

    warn: float = 0.1
    """PSI above this: status "warn"."""
    retrain: float = 0.25
    """PSI above this: status "retrain"."""
    bins: int = 10
    """Numeric features are cut at the baseline's quantiles into at most this many bins."""
    epsilon: float = 1e-4
    """Empty bins count as this share, so the logarithm stays finite."""
    max_categories: int = 20
    """Categorical baselines keep this many most frequent values; the rest are "other"."""
    baseline_sample_size: int = 200_000
    """Baselines are computed on at most this many rows."""

    def __post_init__(self) -> None:
        if not 0 <= self.warn <= self.retrain:
            raise ValueError("need 0 <= warn <= retrain")


@dataclass(frozen=True)
class ExperimentConfig:
    """How experiments are analysed (``ml.experiments.analyze_experiments``; README
    "Experiments")."""

    alpha: float = 0.05
    """Two-sided significance level; confidence intervals are at 1 - alpha (95 %)."""
    power: float = 0.8
    """Power the minimum detectable effect is planned for (persons and days still needed)."""
    srm_p_threshold: float = 0.001
    """A sample-ratio-mismatch chi-square p-value below this blocks the experiment's results."""
    correction: Literal["holm", "bonferroni"] = "holm"
    """Multiple-variant correction of the p-values across an experiment's treatment variants
    (per metric); significance uses the corrected p-value."""
    use_cuped: bool = True
    """Significance from the CUPED-adjusted comparison (pre-exposure period of the same metric)
    instead of the plain one; both are reported."""


RecommendationModelType = Literal["item_item", "svd"]


@dataclass(frozen=True)
class RecommendationConfig:
    """Recommendation models, evaluation, promotion and scoring (``ml.recommendations``).

    What counts as an interaction and how it decays with age are dbt's (seed
    recommendation_event_weights, vars recommendation_half_life_days and
    recommendation_holdout_days); this is what the models do with the weighted interactions.
    """

    models: tuple[RecommendationModelType, ...] = ("item_item", "svd")
    """Candidate personalised models; the best backtest NDCG@10 wins (ties: the earlier one).
    Two popularity baselines (overall, per segment) are always evaluated next to them."""
    n_recommendations: int = 10
    """Recommendations per person (and the k of every @k metric)."""
    neighbours: int = 50
    """Most similar products kept per product (item_item scoring and item_similarities)."""
    published_neighbours: int = 10
    """Similar products per product in item_similarities."""
    svd_components: int = 48
    """Latent factors of the truncated SVD (capped below the catalogue size)."""
    svd_products_per_component: int = 25
    """... and at most one factor per this many products (a small catalogue overfits with many
    factors: on the 100k-event sample, 200 products, 8 factors beat 16 and 32 on NDCG@10)."""
    svd_iterations: int = 5
    """Power iterations of the randomized SVD."""
    min_person_interactions: int = 2
    """Persons with fewer distinct products than this are cold: they get their segment's
    popular products."""
    min_item_persons: int = 2
    """Products with fewer interacting persons than this are new: their similar products are
    content neighbours (same category, nearest price band, most popular first)."""
    popular_share: float = 0.1
    """The most popular products making up this share of the catalogue count as "popular" in
    the popular-share metric."""
    similarity_sample_persons: int = 200_000
    """Item-item similarities are computed on at most this many persons (sampled)."""
    scoring_chunk_persons: int = 4_096
    """Persons scored per block (a block holds persons x products floats)."""
    promotion_tolerance: float = 0.01
    """A candidate replaces the current model when its backtest NDCG@10 is at least the current
    model's minus this."""
    promotion_metric: str = "ndcg_at_10"
    random_state: int = 0

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("at least one recommendation model type is needed")
        unknown = set(self.models) - {"item_item", "svd"}
        if unknown:
            raise ValueError(f"unknown recommendation model types {sorted(unknown)}")
        if self.n_recommendations < 1 or self.neighbours < 1:
            raise ValueError("n_recommendations and neighbours must be positive")
