"""Machine learning (group ``ml``): thin assets around the pure-Python ``ml`` package.

They read the person-level marts from the warehouse, call ``ml`` and write the results back to
the ``ml`` schema, which BI tools get through serving/published_segments:

- ``ml/person_clusters``: behavioural clusters (nightly): ml.person_clusters, ml.cluster_profiles;
  the fitted state is kept in the models folder so cluster ids stay stable across runs;
- ``ml/churn_model``: trains on marts.churn_snapshots, registers a version and promotes it when it
  is not worse than the current one (nightly);
- ``ml/churn_scores``: scores marts.churn_scoring_snapshot (snapshot 0, as_of) with the current
  model (nightly and sensor runs): ml.churn_scores, read back by dbt for the churn_at_risk
  segment;
- ``ml/customer_lifetime_values``: BG/NBD x Gamma-Gamma CLV of the scoring snapshot's persons,
  with its backtest on marts.churn_snapshots: ml.customer_lifetime_values.

Drift checks (severity WARN): churn features against the current model's baseline (the
scoring snapshot at training time: like with like),
cluster shares and segment shares against the previous run.

The ``ml`` modules that compute (scikit-learn, scipy, pandas, matplotlib) are imported by the
asset or check that calls them: loading the code location, which every run and CLI call does,
imports only ``ml.config`` and ``ml.schemas`` (tests/test_startup.py).
"""

import json
from typing import TYPE_CHECKING

import dagster as dg
from pydantic import Field

from ml.config import (
    CLUSTERING_FEATURES,
    ClusteringConfig,
    ClvConfig,
    DriftConfig,
    FeatureConfig,
)
from ml.schemas import (
    CHURN_SCORE_COLUMNS,
    CHURN_SCORES_TABLE,
    CLV_COLUMNS,
    CLV_TABLE,
    create_table_sql,
)
from orchestration.metadata import OWNER, markdown_frame, png_metadata, tidy_metadata
from orchestration.resources import ModelStoreResource, WarehouseResource
from warehouse.connection import table_exists

if TYPE_CHECKING:
    import pandas as pd

GROUP = "ml"
PERSON_FEATURES = dg.AssetKey(["marts", "person_features"])
CHURN_SNAPSHOTS = dg.AssetKey(["marts", "churn_snapshots"])
CHURN_SCORING_SNAPSHOT = dg.AssetKey(["marts", "churn_scoring_snapshot"])
SEGMENT_HISTORY = dg.AssetKey(["marts", "segment_membership_history"])
PERSON_CLUSTERS = dg.AssetKey(["ml", "person_clusters"])
CHURN_MODEL = dg.AssetKey(["ml", "churn_model"])
CHURN_SCORES = dg.AssetKey(["ml", "churn_scores"])
CUSTOMER_LIFETIME_VALUES = dg.AssetKey(["ml", "customer_lifetime_values"])


class ClusteringRunConfig(dg.Config):
    algorithm: str = Field(
        default=ClusteringConfig.algorithm,
        description="kmeans (default), agglomerative, dbscan or hdbscan.",
    )
    k_min: int = Field(default=ClusteringConfig.k_min, description="Smallest k tried.")
    k_max: int = Field(default=ClusteringConfig.k_max, description="Largest k tried.")
    use_pca: bool = Field(default=ClusteringConfig.use_pca, description="PCA before clustering.")
    min_cluster_share: float = Field(
        default=ClusteringConfig.min_cluster_share,
        description="Clusters below this share of persons are reported as small.",
    )
    features: list[str] = Field(
        default=list(CLUSTERING_FEATURES),
        description="Columns of marts.person_features to cluster on (empty: every usable one).",
    )

    def to_ml(self) -> ClusteringConfig:
        return ClusteringConfig(
            algorithm=self.algorithm,  # type: ignore[arg-type]  # validated by ClusteringConfig
            k_min=self.k_min,
            k_max=self.k_max,
            use_pca=self.use_pca,
            min_cluster_share=self.min_cluster_share,
            features=FeatureConfig(
                include=tuple(self.features), use_categoricals=not self.features
            ),
        )


def _read(warehouse: WarehouseResource, sql: str) -> "pd.DataFrame":
    with warehouse.connect(read_only=True) as con:
        return con.execute(sql).df()


def _replace_table(warehouse: WarehouseResource, table: str, frame: "pd.DataFrame") -> None:
    with warehouse.connect() as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS ml")
        con.register("frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM frame")


def _plot(context: dg.AssetExecutionContext, name: str, title: str, png: bytes) -> dg.MetadataValue:
    return png_metadata(context.instance, context.run.run_id, context.asset_key, name, title, png)


@dg.asset(
    key=PERSON_CLUSTERS,
    deps=[PERSON_FEATURES],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "sklearn", "duckdb"},
    description=(
        "Behavioural clusters of everyone in marts.person_features (ml.clustering): k chosen "
        "by silhouette with the elbow curve reported; ids stay stable across runs (new "
        "clusters are matched to the previous run's). Writes ml.person_clusters (person, "
        "cluster, distance) and ml.cluster_profiles (size, share, distinguishing features, "
        "name, small-cluster flag)."
    ),
)
def person_clusters(
    context: dg.AssetExecutionContext,
    config: ClusteringRunConfig,
    warehouse: WarehouseResource,
    models: ModelStoreResource,
) -> dg.MaterializeResult:
    from ml.clustering import ClusterState, fit_clusters
    from ml.plots import clustering_pngs

    features = _read(warehouse, "SELECT * FROM marts.person_features")
    if features.empty:
        raise dg.Failure("marts.person_features is empty: there is nobody to cluster")
    state_path = models.clustering_state_path
    previous = ClusterState.load(state_path) if state_path.exists() else None
    result = fit_clusters(features, config.to_ml(), previous)
    result.state.save(state_path)

    names = result.profiles.set_index("cluster_id")["name"]
    membership = result.membership.assign(
        cluster_name=result.membership["cluster_id"].map(names),
        as_of=features["as_of"].max(),
    )
    profiles = result.profiles.assign(as_of=features["as_of"].max())
    profiles["top_features"] = profiles["top_features"].map(
        lambda value: value if isinstance(value, str) else json.dumps(list(value))
    )
    _replace_table(warehouse, "ml.person_clusters", membership)
    _replace_table(warehouse, "ml.cluster_profiles", profiles)

    summary = result.summary()
    context.log.info(
        "clusters: k=%s silhouette=%s davies_bouldin=%s",
        result.k,
        summary["silhouette"],
        summary["davies_bouldin"],
    )
    pngs = clustering_pngs(result)
    return dg.MaterializeResult(
        metadata=tidy_metadata(
            {
                "dagster/row_count": len(membership),
                "k": result.k,
                "silhouette": summary["silhouette"],
                "davies_bouldin": summary["davies_bouldin"],
                "share_psi_vs_previous_run": summary["share_psi"],
                "estimator": result.estimator,
                "small_clusters": summary["small_clusters"],
                "new_clusters": summary["new_clusters"],
                "retired_clusters": summary["retired_clusters"],
                "profiles": markdown_frame(
                    result.profiles[["cluster_id", "name", "size", "share", "is_small"]]
                ),
                "selection_curve": markdown_frame(result.selection_curve),
                "selection_plot": _plot(
                    context, "selection_plot", "silhouette and elbow by k", pngs["selection_curve"]
                ),
                "projection_plot": _plot(
                    context, "projection_plot", "clusters, 2-D projection", pngs["projection"]
                ),
                "features": summary["features"],
            }
        )
    )


@dg.asset(
    key=CHURN_MODEL,
    deps=[CHURN_SNAPSHOTS],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "sklearn"},
    description=(
        "Trains the churn model on the labelled snapshots of marts.churn_snapshots (ml.churn): "
        "train on the earlier snapshots, select on the next, report on the latest labelled one "
        "(held out); a logistic regression and a gradient-boosted model with the BG/NBD "
        "quantities as features, side by side with BG/NBD, MBG/NBD and a logistic regression "
        "on order features; the better validation ROC-AUC wins and is calibrated (Platt). The "
        "winner is registered as a new version in the model store and replaces the current "
        "model only if it is not worse beyond the tolerance (the decision and its reason are "
        "recorded). With too little history it trains nothing and says why."
    ),
)
def churn_model(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    models: ModelStoreResource,
) -> dg.MaterializeResult:
    from ml.churn import InsufficientHistoryError, at_risk_threshold, train_churn_model
    from ml.plots import reliability_png, roc_curves_png, score_histogram_png

    snapshots = _read(warehouse, "SELECT * FROM marts.churn_snapshots")
    config = models.churn_config()
    try:
        result = train_churn_model(snapshots, config, DriftConfig())
    except InsufficientHistoryError as exc:
        context.log.warning("no churn model trained: %s", exc)
        return dg.MaterializeResult(
            metadata={"trained": False, "reason": str(exc), "current_model": _current(models)}
        )
    registry = models.registry()
    model = registry.register(result.model)
    decision = registry.promote(model, tolerance=config.promotion_tolerance)
    metrics = result.model.metrics
    labels, probability = result.validation_labels, result.validation_probability
    where = result.evaluation_name
    scores = result.evaluation_scores
    test = result.model.test_metrics
    calibrated = test.get("calibrated", {})
    return dg.MaterializeResult(
        metadata=tidy_metadata(
            {
                "trained": True,
                "model_version": model.version,
                "model_type": result.model.model_type,
                "promoted": decision.promoted,
                "promotion_reason": decision.reason,
                "current_model": registry.current_version(),
                "validation_roc_auc": metrics["roc_auc"],
                "validation_pr_auc": metrics["pr_auc"],
                "validation_brier": metrics["brier"],
                "validation_lift_top_decile": metrics["lift_top_decile"],
                "test_roc_auc": calibrated.get("roc_auc"),
                "test_mean_predicted": calibrated.get("mean_predicted"),
                "test_observed_rate": calibrated.get("base_rate"),
                "test_calibration_error": calibrated.get("calibration_error"),
                "candidates": markdown_frame(result.candidates.round(4)),
                "btyd_params": dg.MetadataValue.json(_json_safe(result.model.btyd_params)),
                "calibration": markdown_frame(result.calibration),
                "training_window": dg.MetadataValue.json(_json_safe(result.model.training_window)),
                "features": list(result.model.features.columns),
                "roc_curve": _plot(
                    context,
                    "roc_curve",
                    f"ROC curves, candidates and baselines ({where} snapshot)",
                    roc_curves_png(result.evaluation_labels, scores, where),
                ),
                "calibration_plot": _plot(
                    context,
                    "calibration_plot",
                    f"calibration, raw and calibrated (reliability diagram, {where} snapshot)",
                    reliability_png(result.raw_calibration, result.calibration, where),
                ),
                "score_histogram": _plot(
                    context,
                    "score_histogram",
                    "churn scores by outcome",
                    score_histogram_png(
                        labels, probability, at_risk_threshold(probability, config)
                    ),
                ),
            }
        )
    )


def _current(models: ModelStoreResource) -> str:
    return models.registry().current_version() or "none"


def _json_safe(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


@dg.asset(
    key=CHURN_SCORES,
    deps=[CHURN_SCORING_SNAPSHOT, CHURN_MODEL],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "sklearn", "duckdb"},
    description=(
        "Churn probability, risk band and at-risk flag for every person of the scoring snapshot "
        "(as_of), made by the current model of the model store, which each row names. Writes "
        "ml.churn_scores (the dbt source of the churn_at_risk segment); empty, with the reason "
        "in the metadata, until a first model exists."
    ),
)
def churn_scores(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    models: ModelStoreResource,
) -> dg.MaterializeResult:
    import pandas as pd

    from ml.churn import at_risk_threshold, score_churn
    from ml.registry import NoCurrentModelError

    config = models.churn_config()
    try:
        model = models.registry().load_current()
    except NoCurrentModelError as exc:
        context.log.warning("no churn scores: %s", exc)
        scores = pd.DataFrame()
        reason = str(exc)
    else:
        snapshot = _read(warehouse, "SELECT * FROM marts.churn_scoring_snapshot")
        scores = score_churn(model, snapshot, config)
        reason = ""
    with warehouse.connect() as con:  # the table is ours: its columns are ml.schemas'
        con.execute("BEGIN")
        con.execute(create_table_sql(CHURN_SCORES_TABLE, CHURN_SCORE_COLUMNS))
        if not scores.empty:
            con.register("scores", scores)
            con.execute(f"INSERT INTO {CHURN_SCORES_TABLE} BY NAME SELECT * FROM scores")
        con.execute("COMMIT")
    metadata: dict[str, object] = {"dagster/row_count": len(scores)}
    if scores.empty:
        metadata["reason"] = reason
    else:
        metadata |= {
            "model_version": str(scores["model_version"].iloc[0]),
            "at_risk_rule": (
                f"top {config.at_risk_top_share:.0%} of scored persons"
                if config.at_risk_rule == "top_share"
                else f"churn_probability >= {config.risk_threshold}"
            ),
            "at_risk_threshold": at_risk_threshold(scores["churn_probability"].to_numpy(), config),
            "mean_churn_probability": float(scores["churn_probability"].mean()),
            "at_risk": int(scores["is_at_risk"].sum()),
            "at_risk_share": float(scores["is_at_risk"].mean()),
            "risk_bands": markdown_frame(
                scores["risk_band"].value_counts().rename_axis("risk_band").reset_index()
            ),
        }
    return dg.MaterializeResult(metadata=tidy_metadata(metadata))


@dg.asset(
    key=CUSTOMER_LIFETIME_VALUES,
    deps=[CHURN_SCORING_SNAPSHOT, CHURN_SNAPSHOTS],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "scipy", "duckdb"},
    description=(
        "Customer lifetime value of every person of the scoring snapshot (ml.clv): a BG/NBD "
        "model of their completed orders times a Gamma-Gamma model of order value, both fitted "
        "on the snapshot, over ClvConfig.horizon_days; the top 10% flagged is_top_value. "
        "Writes ml.customer_lifetime_values with the models' version. The metadata holds the "
        "backtest on marts.churn_snapshots (fitted one horizon before the latest snapshot, "
        "compared with the spend made since): MAE, correlation, top-decile capture."
    ),
)
def customer_lifetime_values(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    import pandas as pd

    from ml.clv import InsufficientClvHistoryError, backtest_clv, fit_clv, score_clv

    config = ClvConfig()
    snapshot = _read(warehouse, "SELECT * FROM marts.churn_scoring_snapshot")
    metadata: dict[str, object] = {}
    try:
        model = fit_clv(snapshot, config)
        values = score_clv(model, snapshot, config)
    except InsufficientClvHistoryError as exc:
        context.log.warning("no customer lifetime values: %s", exc)
        values, metadata["reason"] = pd.DataFrame(), str(exc)
    else:
        metadata |= {
            "model_version": model.version,
            "models": dg.MetadataValue.json(_json_safe(model.describe())),
            "total_clv": float(values["clv"].sum()),
            "top_value_share_of_clv": float(
                values.loc[values["is_top_value"], "clv"].sum() / max(values["clv"].sum(), 1e-9)
            ),
        }
    try:
        history = _read(warehouse, "SELECT * FROM marts.churn_snapshots")
        metadata["backtest"] = dg.MetadataValue.json(_json_safe(backtest_clv(history, config)))
    except InsufficientClvHistoryError as exc:
        metadata["backtest"] = f"not computed: {exc}"
    with warehouse.connect() as con:  # the table is ours: its columns are ml.schemas'
        con.execute("BEGIN")
        con.execute(create_table_sql(CLV_TABLE, CLV_COLUMNS))
        if not values.empty:
            con.register("clv_values", values)
            con.execute(f"INSERT INTO {CLV_TABLE} BY NAME SELECT * FROM clv_values")
        con.execute("COMMIT")
    return dg.MaterializeResult(
        metadata=tidy_metadata({"dagster/row_count": len(values), **metadata})
    )


def _drift_result(
    psi_value: float | None,
    what: str,
    table: "pd.DataFrame | None" = None,
    **extra: object,
) -> dg.AssetCheckResult:
    from ml.drift import classify_psi

    drift = DriftConfig()
    if psi_value is None:
        return dg.AssetCheckResult(
            passed=True, metadata={"note": f"no previous {what} to compare with"}
        )
    status = classify_psi(psi_value, drift)
    metadata: dict[str, object] = {
        "psi": psi_value,
        "status": status,
        "recommendation": "retrain" if status == "retrain" else "none",
        "thresholds": f"warn > {drift.warn}, retrain > {drift.retrain}",
        **extra,
    }
    if table is not None:
        metadata["details"] = markdown_frame(table)
    return dg.AssetCheckResult(
        passed=status == "ok", severity=dg.AssetCheckSeverity.WARN, metadata=tidy_metadata(metadata)
    )


@dg.asset_check(
    asset=CHURN_SCORES,
    name="churn_feature_drift",
    description=(
        "Population Stability Index of every churn model feature in the scored snapshot "
        "against the current model's training baseline; a warning above 0.1, a retraining "
        "recommendation above 0.25."
    ),
)
def churn_feature_drift(
    warehouse: WarehouseResource, models: ModelStoreResource
) -> dg.AssetCheckResult:
    from ml.drift import feature_drift

    registry = models.registry()
    version = registry.current_version()
    if version is None:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no current churn model"})
    snapshot = _read(warehouse, "SELECT * FROM marts.churn_scoring_snapshot")
    report = feature_drift(registry.metadata(version)["drift_baseline"], snapshot, DriftConfig())
    return _drift_result(report.max_psi, "baseline", report.features, model_version=version)


@dg.asset_check(
    asset=PERSON_CLUSTERS,
    name="cluster_share_drift",
    description=(
        "PSI of the cluster shares against the previous clustering run (clusters matched by "
        "id); a warning above 0.1, a retraining recommendation above 0.25."
    ),
)
def cluster_share_drift(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    event = context.instance.get_latest_materialization_event(PERSON_CLUSTERS)
    value = event.asset_materialization.metadata.get("share_psi_vs_previous_run") if event else None
    return _drift_result(None if value is None else value.value, "clustering run")


@dg.asset_check(
    asset=SEGMENT_HISTORY,
    name="segment_share_drift",
    description=(
        "PSI of the share of memberships per segment now against the previous run's as_of, "
        "from the membership history; a warning above 0.1, a retraining recommendation above "
        "0.25."
    ),
)
def segment_share_drift(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    from ml.drift import share_psi

    shares = _read(
        warehouse,
        """
        WITH runs AS (
            SELECT DISTINCT entered_at AS as_of FROM marts.segment_membership_history
            UNION SELECT DISTINCT left_at FROM marts.segment_membership_history
            WHERE left_at IS NOT NULL
        ),
        previous AS (
            SELECT as_of FROM runs ORDER BY as_of DESC LIMIT 1 OFFSET 1
        )
        SELECT
            segment_key,
            count(*) FILTER (WHERE is_current) AS current_members,
            count(*) FILTER (
                WHERE entered_at <= previous.as_of
                  AND (left_at IS NULL OR left_at > previous.as_of)
            ) AS previous_members
        FROM marts.segment_membership_history, previous
        GROUP BY segment_key
        ORDER BY segment_key
        """,
    )
    if shares.empty or shares["previous_members"].sum() == 0:
        return _drift_result(None, "run")
    for column in ("current_members", "previous_members"):
        shares[column.replace("members", "share")] = shares[column] / shares[column].sum()
    value = share_psi(
        dict(zip(shares.segment_key, shares.previous_share, strict=True)),
        dict(zip(shares.segment_key, shares.current_share, strict=True)),
    )
    return _drift_result(value, "run", shares)


WITHDRAWALS_REMOVED = dg.AssetKey(["ml", "person_clusters_withdrawals_removed"])


@dg.asset(
    key=WITHDRAWALS_REMOVED,
    deps=[PERSON_FEATURES, PERSON_CLUSTERS],
    group_name=GROUP,
    owners=[OWNER],
    kinds={"python", "duckdb"},
    description=(
        "Removes from ml.person_clusters every person who is no longer profiled (not in "
        "marts.person_features: analytics consent withdrawn since the last clustering). Sensor "
        "runs do not re-cluster, so without this a withdrawal would wait for the nightly run; "
        "churn scores, segments and the churn training snapshots are recomputed from "
        "person_features in every run."
    ),
)
def person_clusters_withdrawals_removed(warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        removed = 0
        if table_exists(con, "ml", "person_clusters"):
            (removed,) = con.execute(
                "DELETE FROM ml.person_clusters "
                "WHERE person_id NOT IN (SELECT person_id FROM marts.person_features)"
            ).fetchone()
    return dg.MaterializeResult(metadata={"rows_removed": removed})


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[
            person_clusters,
            churn_model,
            churn_scores,
            customer_lifetime_values,
            person_clusters_withdrawals_removed,
        ],
        asset_checks=[churn_feature_drift, cluster_share_drift, segment_share_drift],
    )
