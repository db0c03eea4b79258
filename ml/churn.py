"""Churn: time-based training set, two candidate models, validation metrics, scoring.

Input: churn snapshots, one row per (person_id, snapshot_at) with the features as of that
snapshot and ``churned`` (1/0/True/False; null where the horizon has not elapsed yet, i.e. the
scoring snapshot). Training is strictly time-based: the latest labelled snapshot date validates,
all earlier labelled snapshots train; people appear in both, but never with a validation-date
row in training.

Candidates (same preprocessing pipeline, ``ml.preprocessing``): a logistic regression baseline
and a HistGradientBoostingClassifier with early stopping. The better validation ROC-AUC wins.

Refit decision (``ChurnConfig.refit_on_all_labelled``, default on): the chosen model is refit
with the same hyper-parameters (for boosting, the number of trees early stopping found) on
train + validation, because churn behaviour drifts and the validation snapshot is the most
recent labelled behaviour there is. The metrics reported and used for promotion are those
measured on the validation snapshot before the refit; the refit model has no held-out score of
its own, which is the price for scoring with the freshest data.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from ml.config import ChurnConfig, ChurnModelType, DriftConfig
from ml.drift import baselines_to_dict, build_baselines
from ml.preprocessing import (
    TRANSFORM_CHUNK_ROWS,
    FeatureSet,
    build_preprocessor,
    prepare_frame,
    sample_indices,
    select_features,
)
from ml.schemas import CHURN_SCORE_COLUMNS

log = logging.getLogger(__name__)

UNREGISTERED_VERSION = "unregistered"
CALIBRATION_BINS = 10


class InsufficientHistoryError(ValueError):
    """The snapshots cannot support a time-based train/validation split yet."""


@dataclass(frozen=True)
class TrainingSet:
    train: pd.DataFrame
    validation: pd.DataFrame
    train_snapshot_dates: tuple[pd.Timestamp, ...]
    validation_snapshot_date: pd.Timestamp
    purged_snapshot_dates: tuple[pd.Timestamp, ...] = ()
    """Labelled dates left out because their horizon overlaps the validation date."""
    horizon_days: int | None = None
    """The label's horizon (``label_horizon_days``)."""

    def window(self) -> dict[str, Any]:
        return {
            "train_snapshot_dates": [d.isoformat() for d in self.train_snapshot_dates],
            "validation_snapshot_date": self.validation_snapshot_date.isoformat(),
            "purged_snapshot_dates": [d.isoformat() for d in self.purged_snapshot_dates],
            "horizon_days": self.horizon_days,
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
        }


def _label_values(series: pd.Series) -> np.ndarray:
    """0/1 float labels with NaN for null; anything else is an error."""
    if pd.api.types.is_object_dtype(series.dtype):
        series = series.map(lambda v: np.nan if v is None or v is pd.NA else float(v))
    elif isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        series = series.astype("Float64")
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    known = values[~np.isnan(values)]
    if not np.isin(known, (0.0, 1.0)).all():
        raise ValueError(f"labels must be 0/1 or booleans, got {sorted(set(known))[:5]}")
    return values


def _snapshot_times(frame: pd.DataFrame, config: ChurnConfig) -> pd.Series:
    if config.snapshot_column not in frame.columns:
        raise ValueError(f"snapshots have no {config.snapshot_column!r} column")
    return pd.to_datetime(frame[config.snapshot_column])


def label_horizon_days(snapshots: pd.DataFrame, config: ChurnConfig | None = None) -> int | None:
    """The horizon the labels of ``snapshots`` were computed with: the one value of their
    ``horizon_column`` (dbt's var churn_horizon_days), else ``config.horizon_days`` (None when
    neither says). A column with several values, or one that contradicts a configured horizon,
    is an error: the horizon has one definition, upstream."""
    config = config or ChurnConfig()
    if config.horizon_column not in snapshots.columns:
        return config.horizon_days
    values = sorted({int(v) for v in snapshots[config.horizon_column].dropna().unique()})
    if len(values) > 1:
        raise ValueError(f"snapshots mix label horizons {values} ({config.horizon_column})")
    if not values:
        return config.horizon_days
    if config.horizon_days is not None and config.horizon_days != values[0]:
        raise ValueError(
            f"ChurnConfig.horizon_days={config.horizon_days} contradicts the snapshots' "
            f"{config.horizon_column}={values[0]}: the horizon is set upstream (dbt var "
            "churn_horizon_days); leave horizon_days unset"
        )
    return values[0]


def build_training_set(snapshots: pd.DataFrame, config: ChurnConfig | None = None) -> TrainingSet:
    """Split labelled snapshots by time: validation = the latest labelled snapshot date,
    train = every earlier one. Raises ``InsufficientHistoryError`` when that cannot work."""
    config = config or ChurnConfig()
    horizon_days = label_horizon_days(snapshots, config)
    if config.label_column not in snapshots.columns:
        raise InsufficientHistoryError(
            f"snapshots have no {config.label_column!r} column: nothing is labelled yet"
        )
    times = _snapshot_times(snapshots, config)
    labels = _label_values(snapshots[config.label_column])
    labelled = snapshots.loc[~np.isnan(labels)].assign(
        **{config.label_column: labels[~np.isnan(labels)].astype(np.int64)},
        **{config.snapshot_column: times[~np.isnan(labels)]},
    )
    dates = sorted(labelled[config.snapshot_column].unique())
    if len(dates) < 2:
        raise InsufficientHistoryError(
            f"{len(dates)} labelled snapshot date(s): a time-based split needs at least 2 "
            f"(a snapshot is labelled once its {horizon_days}-day horizon has passed); "
            "keep collecting snapshots or backfill them"
        )
    validation_date = pd.Timestamp(dates[-1])
    earlier = [pd.Timestamp(d) for d in dates[:-1]]
    purged: list[pd.Timestamp] = []
    if config.purge_overlapping_horizons:
        if horizon_days is None:
            raise ValueError(
                f"purging overlapping horizons needs the label horizon: the snapshots have no "
                f"{config.horizon_column!r} column and ChurnConfig.horizon_days is unset"
            )
        horizon = pd.Timedelta(days=horizon_days)
        purged = [d for d in earlier if d + horizon > validation_date]
        earlier = [d for d in earlier if d + horizon <= validation_date]
        if not earlier:
            raise InsufficientHistoryError(
                f"every earlier snapshot's {horizon_days}-day horizon overlaps the "
                f"validation snapshot {validation_date.date()}: need snapshots older than "
                f"{(validation_date - horizon).date()} or purge_overlapping_horizons=False"
            )
    order = [config.snapshot_column, config.id_column]
    snapshot = labelled[config.snapshot_column]
    train = labelled.loc[snapshot.isin(earlier)].sort_values(order, kind="stable")
    validation = labelled.loc[snapshot == validation_date].sort_values(order, kind="stable")
    _check_rows(train, "training", config)
    _check_rows(validation, f"validation ({validation_date.date()})", config)
    return TrainingSet(
        train.reset_index(drop=True),
        validation.reset_index(drop=True),
        tuple(earlier),
        validation_date,
        tuple(purged),
        horizon_days,
    )


def _check_rows(frame: pd.DataFrame, what: str, config: ChurnConfig) -> None:
    minimum = config.min_train_rows if what == "training" else config.min_validation_rows
    if len(frame) < minimum:
        raise InsufficientHistoryError(
            f"{len(frame)} {what} rows, fewer than the {minimum} needed (min_*_rows in ChurnConfig)"
        )
    positives = int(frame[config.label_column].sum())
    negatives = len(frame) - positives
    if min(positives, negatives) < config.min_class_rows:
        raise InsufficientHistoryError(
            f"{what} rows have {positives} churned and {negatives} retained people; each class "
            f"needs at least {config.min_class_rows} to train and measure a model"
        )


def latest_snapshot(snapshots: pd.DataFrame, config: ChurnConfig | None = None) -> pd.DataFrame:
    """The rows of the latest snapshot date: the people to score."""
    config = config or ChurnConfig()
    times = _snapshot_times(snapshots, config)
    return snapshots.loc[times == times.max()].reset_index(drop=True)


def evaluate(y_true: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """ROC-AUC, PR-AUC (average precision), Brier score, top-decile lift, base rate and the
    expected calibration error over probability deciles."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probability, dtype=np.float64)
    base_rate = float(y.mean())
    top = np.argsort(-p, kind="stable")[: max(1, math.ceil(0.1 * len(p)))]
    calibration = calibration_table(y, p)
    ece = float(
        (
            calibration["rows"]
            * (calibration["mean_predicted"] - calibration["observed_rate"]).abs()
        ).sum()
        / len(y)
    )
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "lift_top_decile": float(y[top].mean() / base_rate) if base_rate else float("nan"),
        "base_rate": base_rate,
        "calibration_error": ece,
        "rows": float(len(y)),
    }


def calibration_table(y_true: np.ndarray, probability: np.ndarray) -> pd.DataFrame:
    """Equal-count deciles of predicted probability: bin, rows, mean_predicted, observed_rate."""
    p = np.asarray(probability, dtype=np.float64)
    ranks = pd.Series(p).rank(method="first").to_numpy()
    bins = np.ceil(ranks * CALIBRATION_BINS / len(p)).astype(np.int64)
    table = (
        pd.DataFrame({"bin": bins, "predicted": p, "observed": np.asarray(y_true, dtype=float)})
        .groupby("bin")
        .agg(
            rows=("predicted", "size"),
            mean_predicted=("predicted", "mean"),
            observed_rate=("observed", "mean"),
        )
        .reset_index()
    )
    return table


def _estimator(model_type: ChurnModelType, config: ChurnConfig) -> Any:
    if model_type == "logistic_regression":
        return LogisticRegression(C=config.logistic_c, max_iter=1_000)
    return HistGradientBoostingClassifier(
        max_iter=config.hgb_max_iter,
        learning_rate=config.hgb_learning_rate,
        max_leaf_nodes=config.hgb_max_leaf_nodes,
        l2_regularization=config.hgb_l2_regularization,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=10,
        random_state=config.random_state,
    )


def _fit(
    model_type: ChurnModelType,
    frame: pd.DataFrame,
    features: FeatureSet,
    config: ChurnConfig,
    estimator: Any | None = None,
) -> Pipeline:
    rows = sample_indices(len(frame), config.max_train_rows, config.random_state)
    sample = frame.iloc[rows]
    pipeline = Pipeline(
        [
            ("preprocess", build_preprocessor(features, config.preprocessing)),
            ("model", estimator if estimator is not None else _estimator(model_type, config)),
        ]
    )
    pipeline.fit(prepare_frame(sample, features), sample[config.label_column].to_numpy())
    return pipeline


def _predict(pipeline: Pipeline, frame: pd.DataFrame, features: FeatureSet) -> np.ndarray:
    out = np.empty(len(frame), dtype=np.float64)
    for start in range(0, len(frame), TRANSFORM_CHUNK_ROWS):
        chunk = frame.iloc[start : start + TRANSFORM_CHUNK_ROWS]
        out[start : start + len(chunk)] = pipeline.predict_proba(prepare_frame(chunk, features))[
            :, 1
        ]
    return out


@dataclass(frozen=True)
class ChurnModel:
    """A fitted churn model and everything the registry records about it."""

    pipeline: Pipeline
    features: FeatureSet
    model_type: str
    metrics: dict[str, float]
    """Validation metrics of the chosen model (``evaluate``)."""
    candidate_metrics: dict[str, dict[str, float]]
    calibration: list[dict[str, float]]
    training_window: dict[str, Any]
    drift_baseline: dict[str, Any]
    """``ml.drift`` baselines (JSON form) of the rows the final model learnt from."""
    config: dict[str, Any] = field(default_factory=dict)
    refit_on_all_labelled: bool = True
    version: str | None = None
    """Set by the registry."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability per row of ``frame`` (missing feature columns count as null)."""
        return _predict(self.pipeline, frame, self.features)

    def describe(self) -> dict[str, Any]:
        """JSON-safe description for registry metadata."""
        return {
            "model_type": self.model_type,
            "features": self.features.to_dict(),
            "metrics": dict(self.metrics),
            "candidate_metrics": {k: dict(v) for k, v in self.candidate_metrics.items()},
            "calibration": list(self.calibration),
            "training_window": dict(self.training_window),
            "drift_baseline": dict(self.drift_baseline),
            "config": dict(self.config),
            "refit_on_all_labelled": self.refit_on_all_labelled,
        }


@dataclass(frozen=True)
class ChurnTrainingResult:
    model: ChurnModel
    candidates: pd.DataFrame
    """model_type, roc_auc, pr_auc, brier, lift_top_decile, ..., chosen."""
    calibration: pd.DataFrame
    """The chosen model's validation calibration deciles."""
    training_set: TrainingSet
    validation_labels: np.ndarray
    """0/1 churn label of each row of ``training_set.validation``."""
    validation_probability: np.ndarray
    """The chosen model's churn probability for each validation row (before any refit): what
    the validation metrics, the ROC curve and the score histogram are computed from."""


def train_churn_model(
    snapshots: pd.DataFrame,
    config: ChurnConfig | None = None,
    drift_config: DriftConfig | None = None,
) -> ChurnTrainingResult:
    """Split by time, fit every candidate, keep the best validation ROC-AUC, refit (see module
    docstring) and return the model with its metrics and drift baseline."""
    config = config or ChurnConfig()
    data = build_training_set(snapshots, config)
    config = replace(config, horizon_days=data.horizon_days)  # the metadata names the data's
    features = select_features(
        data.train,
        config.features,
        exclude=(
            config.label_column,
            config.snapshot_column,
            config.id_column,
            config.horizon_column,
        ),
    )
    y_valid = data.validation[config.label_column].to_numpy()
    fitted: dict[str, Pipeline] = {}
    metrics: dict[str, dict[str, float]] = {}
    probabilities: dict[str, np.ndarray] = {}
    for model_type in config.models:
        pipeline = _fit(model_type, data.train, features, config)
        probability = _predict(pipeline, data.validation, features)
        fitted[model_type], probabilities[model_type] = pipeline, probability
        metrics[model_type] = evaluate(y_valid, probability)
        log.info("churn %s: validation %s", model_type, metrics[model_type])
    chosen = max(config.models, key=lambda m: metrics[m]["roc_auc"])  # ties: the earlier one
    pipeline = fitted[chosen]
    final_rows = data.train
    if config.refit_on_all_labelled:
        final_rows = pd.concat([data.train, data.validation], ignore_index=True)
        estimator = clone(pipeline.named_steps["model"])
        if isinstance(estimator, HistGradientBoostingClassifier):
            n_iter = int(pipeline.named_steps["model"].n_iter_)
            estimator.set_params(max_iter=n_iter, early_stopping=False)
        pipeline = _fit(chosen, final_rows, features, config, estimator)
    calibration = calibration_table(y_valid, probabilities[chosen])
    baseline = build_baselines(
        final_rows, features, drift_config or DriftConfig(), random_state=config.random_state
    )
    window = data.window() | {
        "rows_used_for_final_fit": min(len(final_rows), config.max_train_rows)
    }
    model = ChurnModel(
        pipeline=pipeline,
        features=features,
        model_type=chosen,
        metrics=metrics[chosen],
        candidate_metrics=metrics,
        calibration=calibration.to_dict(orient="records"),
        training_window=window,
        drift_baseline=baselines_to_dict(baseline),
        config=asdict(config),
        refit_on_all_labelled=config.refit_on_all_labelled,
    )
    candidates = pd.DataFrame([{"model_type": m, **metrics[m]} for m in config.models])
    candidates["chosen"] = candidates["model_type"] == chosen
    log.info("churn model: %s, validation ROC-AUC %.4f", chosen, metrics[chosen]["roc_auc"])
    return ChurnTrainingResult(
        model,
        candidates,
        calibration,
        data,
        np.asarray(y_valid, dtype=np.int64),
        probabilities[chosen],
    )


def risk_bands(probability: np.ndarray, config: ChurnConfig | None = None) -> np.ndarray:
    """Band label per probability: a band starts at its lower edge (inclusive)."""
    config = config or ChurnConfig()
    positions = np.searchsorted(np.asarray(config.risk_band_edges), probability, side="right")
    return np.asarray(config.risk_band_labels, dtype=object)[positions]


def score_churn(
    model: ChurnModel,
    frame: pd.DataFrame,
    config: ChurnConfig | None = None,
    *,
    as_of: pd.Timestamp | str | None = None,
) -> pd.DataFrame:
    """One row per row of ``frame`` with the columns of ``ml.schemas.CHURN_SCORE_COLUMNS`` (in
    that order): person_id, churn_probability, risk_band, is_at_risk, model_version, as_of.

    ``as_of`` defaults to the latest ``snapshot_at`` (else ``as_of`` column) of ``frame``.
    """
    config = config or ChurnConfig()
    if as_of is None:
        for column in (config.snapshot_column, "as_of"):
            if column in frame.columns and frame[column].notna().any():
                as_of = pd.to_datetime(frame[column]).max()
                break
        else:
            raise ValueError(f"pass as_of: frame has no {config.snapshot_column!r} or 'as_of'")
    missing = [name for name in model.features.columns if name not in frame.columns]
    if missing:  # scored as null; a model trained before a rename of its features
        log.warning(
            "churn model %s was trained on columns the scored table does not have: %s; they "
            "count as null, which weakens the scores. If they were renamed (an upgrade), run "
            "the full_build job once: it retrains the model on the current columns",
            model.version or UNREGISTERED_VERSION,
            ", ".join(missing),
        )
    probability = model.predict_proba(frame)
    scores = pd.DataFrame(
        {
            "person_id": frame[config.id_column].to_numpy(),
            "churn_probability": probability,
            "risk_band": pd.Series(risk_bands(probability, config), dtype="str"),
            "is_at_risk": probability >= config.risk_threshold,
            "model_version": model.version or UNREGISTERED_VERSION,
            "as_of": pd.Timestamp(as_of),
        }
    )
    return scores[list(CHURN_SCORE_COLUMNS)]  # the declared columns, in the declared order
