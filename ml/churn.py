"""Churn: time-based training set, BTYD baselines, supervised candidates, calibration, scoring.

Input: churn snapshots, one row per (person_id, snapshot_at) with the features as of that
snapshot and ``churned`` (1/0/True/False; null where the horizon has not elapsed yet, i.e. the
scoring snapshot). Training is strictly time-based: the latest labelled snapshot date is a
held-out test set (``ChurnConfig.test_snapshots``; skipped when history is too short), the one
before it validates, all earlier labelled snapshots train; people appear in several, but never
with a later date's row in an earlier role.

Candidates, all measured on the same validation and test rows (``evaluate``):

- baselines: BG/NBD and MBG/NBD (``ml.btyd``) fitted on the order history of the latest
  training snapshot (the training cutoff), scoring P(no order within the horizon); a plain
  logistic regression on the order features (``logistic_regression_orders``). Never chosen.
- supervised (same preprocessing pipeline, ``ml.preprocessing``): a logistic regression and a
  HistGradientBoostingClassifier with early stopping, both also given the BG/NBD expected
  orders and P(alive) (``BTYD_FEATURES``). The better validation ROC-AUC wins.

The winner is calibrated on the validation snapshot (Platt by default, ``ProbabilityCalibrator``)
and its calibrated scores are measured on the test snapshot (``test_metrics["calibrated"]``).

Refit (``ChurnConfig.refit_on_all_labelled``, default off): the chosen model may be refit with
the same hyper-parameters on train + validation; the calibration then still comes from the
unrefitted model's validation scores, and the test metrics of the refit model are reported as
``<model>_refit``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline

from ml import btyd
from ml.btyd import BtydParams
from ml.config import CalibrationMethod, ChurnConfig, ChurnModelType, ClvConfig, DriftConfig
from ml.drift import baselines_to_dict, build_baselines
from ml.preprocessing import (
    TRANSFORM_CHUNK_ROWS,
    FeatureSet,
    NoFeaturesError,
    build_preprocessor,
    prepare_frame,
    sample_indices,
    select_features,
    to_float,
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
    test: pd.DataFrame | None = None
    """The held-out test rows (``ChurnConfig.test_snapshots`` latest labelled dates): never
    trained on, never used to choose or calibrate. None when history is too short."""
    test_snapshot_dates: tuple[pd.Timestamp, ...] = ()

    def window(self) -> dict[str, Any]:
        return {
            "train_snapshot_dates": [d.isoformat() for d in self.train_snapshot_dates],
            "validation_snapshot_date": self.validation_snapshot_date.isoformat(),
            "test_snapshot_dates": [d.isoformat() for d in self.test_snapshot_dates],
            "purged_snapshot_dates": [d.isoformat() for d in self.purged_snapshot_dates],
            "horizon_days": self.horizon_days,
            "train_rows": len(self.train),
            "validation_rows": len(self.validation),
            "test_rows": 0 if self.test is None else len(self.test),
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
    """Split labelled snapshots by time: test = the latest ``config.test_snapshots`` labelled
    dates (when at least two dates remain before them), validation = the latest labelled date
    before those, train = every earlier one. Raises ``InsufficientHistoryError`` when that
    cannot work."""
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
    test_dates: list[pd.Timestamp] = []
    if config.test_snapshots and len(dates) >= config.test_snapshots + 2:
        test_dates = [pd.Timestamp(d) for d in dates[-config.test_snapshots :]]
        dates = dates[: -config.test_snapshots]
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
    try:
        _check_rows(train, "training", config)
        _check_rows(validation, f"validation ({validation_date.date()})", config)
    except InsufficientHistoryError as exc:
        if not test_dates:
            raise
        # short history: training and validating matter more than a held-out test
        log.warning("no held-out test set (%s): validating on the latest labelled snapshot", exc)
        return build_training_set(snapshots, replace(config, test_snapshots=0))
    test = None
    if test_dates:
        test = labelled.loc[snapshot.isin(test_dates)].sort_values(order, kind="stable")
        test = test.reset_index(drop=True)
        try:
            _check_rows(test, "test", config)
        except InsufficientHistoryError as exc:  # the model can still be trained and validated
            log.warning("no held-out test set: %s", exc)
            test = None
    return TrainingSet(
        train.reset_index(drop=True),
        validation.reset_index(drop=True),
        tuple(earlier),
        validation_date,
        tuple(purged),
        horizon_days,
        test,
        tuple(test_dates),
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
        "mean_predicted": float(p.mean()),
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


BTYD_FEATURES: tuple[str, ...] = ("btyd_expected_orders", "btyd_p_alive")
"""The supervised features ``add_btyd_features`` derives from the fitted BG/NBD model."""
ORDERS_BASELINE = "logistic_regression_orders"
CALIBRATED = "calibrated"


def btyd_inputs(
    frame: pd.DataFrame, config: ChurnConfig | ClvConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(x, t_x, T) in days of every row, from the order count, days since the last order and
    days since the first activity (the birth); None when a column is missing. A row with
    orders but no last-order day counts as no orders."""
    if isinstance(config, ClvConfig):
        names = (config.orders_column, config.recency_column, config.age_column)
    else:
        names = (config.btyd_orders_column, config.btyd_recency_column, config.btyd_age_column)
    if any(name not in frame.columns for name in names):
        return None
    x = np.nan_to_num(to_float(frame[names[0]]), nan=0.0)
    since_last = to_float(frame[names[1]])
    age = np.clip(np.nan_to_num(to_float(frame[names[2]]), nan=0.0), 0.0, None)
    has_order = (x > 0) & np.isfinite(since_last)
    x = np.where(has_order, x, 0.0)
    t_x = np.where(has_order, np.clip(age - np.nan_to_num(since_last), 0.0, None), 0.0)
    return x, t_x, np.maximum(age, t_x)


def add_btyd_features(
    frame: pd.DataFrame, params: BtydParams, horizon_days: float, config: ChurnConfig
) -> pd.DataFrame:
    """``frame`` with ``BTYD_FEATURES`` computed from ``params`` (unchanged without inputs)."""
    inputs = btyd_inputs(frame, config)
    if inputs is None:
        return frame
    return frame.assign(
        btyd_expected_orders=btyd.expected_purchases(params, horizon_days, *inputs),
        btyd_p_alive=btyd.probability_alive(params, *inputs),
    )


@dataclass
class ProbabilityCalibrator:
    """Maps raw model probabilities to calibrated ones: Platt scaling (a logistic regression on
    the raw log-odds; keeps the ranking) or isotonic regression (may tie neighbours)."""

    method: CalibrationMethod
    estimator: Any = None

    def fit(self, probability: np.ndarray, labels: np.ndarray) -> ProbabilityCalibrator:
        if self.method == "isotonic":
            self.estimator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self.estimator.fit(probability, labels)
        elif self.method == "platt":
            self.estimator = LogisticRegression(C=1e6, max_iter=1_000)
            self.estimator.fit(_logit(probability)[:, None], labels)
        return self

    def predict(self, probability: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.asarray(self.estimator.predict(probability), dtype=np.float64)
        if self.method == "platt":
            return self.estimator.predict_proba(_logit(probability)[:, None])[:, 1]
        return probability


def _logit(probability: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probability, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class ChurnModel:
    """A fitted churn model and everything the registry records about it."""

    pipeline: Pipeline
    features: FeatureSet
    model_type: str
    metrics: dict[str, float]
    """Validation metrics of the chosen model (``evaluate``), before calibration."""
    candidate_metrics: dict[str, dict[str, float]]
    """Validation metrics of every candidate: the supervised models and the baselines."""
    calibration: list[dict[str, float]]
    training_window: dict[str, Any]
    drift_baseline: dict[str, Any]
    """``ml.drift`` baselines (JSON form); ``ChurnConfig.drift_baseline`` says of which rows."""
    config: dict[str, Any] = field(default_factory=dict)
    refit_on_all_labelled: bool = False
    version: str | None = None
    """Set by the registry."""
    btyd_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every fitted BTYD baseline (``BtydParams.to_dict``), by name; ``bg_nbd`` also makes the
    ``BTYD_FEATURES`` of the rows the pipeline sees, when they are among its features."""
    calibrator: ProbabilityCalibrator | None = None
    test_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Held-out test metrics of every candidate and of the calibrated model (``calibrated``)."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle models saved before a field existed with that field's default."""
        for item in fields(self):
            if item.name not in state:
                if item.default is not MISSING:
                    state[item.name] = item.default
                elif item.default_factory is not MISSING:
                    state[item.name] = item.default_factory()
        self.__dict__.update(state)

    def derive_features(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the features the model derives itself (``BTYD_FEATURES``, from its
        fitted BG/NBD); the scored tables never hold them."""
        if "bg_nbd" in self.btyd_params and set(BTYD_FEATURES) & set(self.features.columns):
            horizon = self.config.get("horizon_days") or 0
            return add_btyd_features(
                frame,
                BtydParams.from_dict(self.btyd_params["bg_nbd"]),
                float(horizon),
                ChurnConfig(
                    **{
                        k: v
                        for k, v in self.config.items()
                        if k.startswith("btyd_") and k.endswith("_column")
                    }
                ),
            )
        return frame

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The pipeline's probability, before calibration."""
        return _predict(self.pipeline, self.derive_features(frame), self.features)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated churn probability per row of ``frame`` (missing feature columns count as
        null)."""
        raw = self.predict_raw(frame)
        return raw if self.calibrator is None else self.calibrator.predict(raw)

    def describe(self) -> dict[str, Any]:
        """JSON-safe description for registry metadata."""
        return {
            "model_type": self.model_type,
            "features": self.features.to_dict(),
            "metrics": dict(self.metrics),
            "candidate_metrics": {k: dict(v) for k, v in self.candidate_metrics.items()},
            "test_metrics": {k: dict(v) for k, v in self.test_metrics.items()},
            "calibration": list(self.calibration),
            "calibration_method": None if self.calibrator is None else self.calibrator.method,
            "btyd_params": {k: dict(v) for k, v in self.btyd_params.items()},
            "training_window": dict(self.training_window),
            "drift_baseline": dict(self.drift_baseline),
            "config": dict(self.config),
            "refit_on_all_labelled": self.refit_on_all_labelled,
        }


@dataclass(frozen=True)
class ChurnTrainingResult:
    model: ChurnModel
    candidates: pd.DataFrame
    """candidate, kind (supervised / baseline / calibrated), validation metrics (roc_auc,
    pr_auc, brier, lift_top_decile, calibration_error, mean_predicted, base_rate, rows), the
    same on the test snapshot (``test_`` prefix), chosen."""
    calibration: pd.DataFrame
    """The calibrated model's deciles on the test snapshot (validation when there is none)."""
    training_set: TrainingSet
    validation_labels: np.ndarray
    """0/1 churn label of each validation row evaluated (all of ``training_set.validation``
    up to ``ChurnConfig.max_evaluation_rows``, a uniform sample beyond)."""
    validation_probability: np.ndarray
    """The chosen model's raw churn probability for each validation row (before any refit
    and calibration)."""
    evaluation_name: str = "validation"
    """Where ``evaluation_labels`` come from: "test" (held out) or "validation"."""
    evaluation_labels: np.ndarray | None = None
    evaluation_scores: dict[str, np.ndarray] = field(default_factory=dict)
    """Every candidate's churn score on the evaluation rows (for the ROC plot), and the
    calibrated model's (``calibrated``)."""
    raw_calibration: pd.DataFrame | None = None
    """The chosen model's deciles before calibration, on the same rows as ``calibration``."""


def _candidate_row(
    name: str, kind: str, valid: dict[str, float], test: dict[str, float] | None
) -> dict[str, Any]:
    row: dict[str, Any] = {"candidate": name, "kind": kind, **valid}
    for key in ("roc_auc", "pr_auc", "brier", "calibration_error", "mean_predicted", "base_rate"):
        row[f"test_{key}"] = test[key] if test else float("nan")
    return row


def train_churn_model(
    snapshots: pd.DataFrame,
    config: ChurnConfig | None = None,
    drift_config: DriftConfig | None = None,
) -> ChurnTrainingResult:
    """Split by time, fit the BTYD baselines at the training cutoff, fit every supervised
    candidate (with the BTYD features), keep the best validation ROC-AUC, calibrate it on the
    validation snapshot, measure everything on the held-out test snapshot, optionally refit
    (see module docstring) and return the model with its metrics and drift baseline."""
    config = config or ChurnConfig()
    data = build_training_set(snapshots, config)
    config = replace(config, horizon_days=data.horizon_days)  # the metadata names the data's
    horizon = float(data.horizon_days or 0)
    cutoff = data.train_snapshot_dates[-1]
    cutoff_rows = data.train.loc[data.train[config.snapshot_column] == cutoff]
    cutoff_rows = cutoff_rows.iloc[
        sample_indices(len(cutoff_rows), config.btyd_fit_sample_size, config.random_state)
    ]
    btyd_params: dict[str, BtydParams] = {}
    cutoff_inputs = btyd_inputs(cutoff_rows, config)
    if cutoff_inputs is not None and horizon > 0:
        for name in config.btyd_models:
            btyd_params[name] = btyd.fit(name, *cutoff_inputs)
    validation = data.validation.iloc[
        sample_indices(len(data.validation), config.max_evaluation_rows, config.random_state)
    ].reset_index(drop=True)
    test = data.test
    if test is not None:
        test = test.iloc[
            sample_indices(len(test), config.max_evaluation_rows, config.random_state)
        ].reset_index(drop=True)
    evaluation_rows = {"validation": len(validation), "test": 0 if test is None else len(test)}
    validation_observed, test_observed = validation, test
    train = data.train
    if config.btyd_features and "bg_nbd" in btyd_params:
        params = btyd_params["bg_nbd"]
        train, validation = (
            add_btyd_features(f, params, horizon, config) for f in (train, validation)
        )
        if test is not None:
            test = add_btyd_features(test, params, horizon, config)
    excluded = (
        config.label_column,
        config.snapshot_column,
        config.id_column,
        config.horizon_column,
    )
    features = select_features(train, config.features, exclude=excluded)
    y_valid = validation[config.label_column].to_numpy()
    y_test = None if test is None else test[config.label_column].to_numpy()

    fitted: dict[str, Pipeline] = {}
    valid_scores: dict[str, np.ndarray] = {}
    test_scores: dict[str, np.ndarray] = {}
    kinds: dict[str, str] = {}
    for model_type in config.models:
        pipeline = _fit(model_type, train, features, config)
        fitted[model_type] = pipeline
        valid_scores[model_type] = _predict(pipeline, validation, features)
        if test is not None:
            test_scores[model_type] = _predict(pipeline, test, features)
        kinds[model_type] = "supervised"
    order_columns = [c for c in config.order_baseline_features if c in train.columns]
    order_features = None
    if order_columns:
        try:
            order_features = select_features(
                train, replace(config.features, include=tuple(order_columns)), exclude=excluded
            )
        except NoFeaturesError:  # e.g. constant: no baseline
            log.info("no logistic_regression_orders baseline: no usable order feature")
        if order_features is not None:
            pipeline = _fit("logistic_regression", train, order_features, config)
            valid_scores[ORDERS_BASELINE] = _predict(pipeline, validation, order_features)
            if test is not None:
                test_scores[ORDERS_BASELINE] = _predict(pipeline, test, order_features)
            kinds[ORDERS_BASELINE] = "baseline"
    for name, params in btyd_params.items():
        inputs = btyd_inputs(validation_observed, config)
        valid_scores[name] = btyd.probability_no_purchase(params, horizon, *inputs)
        if test_observed is not None:
            test_scores[name] = btyd.probability_no_purchase(
                params, horizon, *btyd_inputs(test_observed, config)
            )
        kinds[name] = "baseline"
    metrics = {name: evaluate(y_valid, score) for name, score in valid_scores.items()}
    test_metrics = {name: evaluate(y_test, score) for name, score in test_scores.items()}
    for name in metrics:
        log.info("churn %s: validation %s", name, metrics[name])

    chosen = max(config.models, key=lambda m: metrics[m]["roc_auc"])  # ties: the earlier one
    pipeline = fitted[chosen]
    calibrator = None
    if config.calibration != "none":
        calibrator = ProbabilityCalibrator(config.calibration).fit(valid_scores[chosen], y_valid)
    final_rows = train
    if config.refit_on_all_labelled:
        full_validation = data.validation
        if config.btyd_features and "bg_nbd" in btyd_params:
            full_validation = add_btyd_features(
                full_validation, btyd_params["bg_nbd"], horizon, config
            )
        final_rows = pd.concat([train, full_validation], ignore_index=True)
        estimator = clone(pipeline.named_steps["model"])
        if isinstance(estimator, HistGradientBoostingClassifier):
            n_iter = int(pipeline.named_steps["model"].n_iter_)
            estimator.set_params(max_iter=n_iter, early_stopping=False)
        pipeline = _fit(chosen, final_rows, features, config, estimator)
        if test is not None:
            test_scores[chosen + "_refit"] = _predict(pipeline, test, features)
            test_metrics[chosen + "_refit"] = evaluate(y_test, test_scores[chosen + "_refit"])
    if test is not None:
        final_raw = test_scores.get(chosen + "_refit", test_scores[chosen])
        evaluation_name, labels_eval = "test", y_test
    else:
        final_raw = valid_scores[chosen]  # in-sample for the calibrator: flagged as such
        evaluation_name, labels_eval = "validation", y_valid
    calibrated = final_raw if calibrator is None else calibrator.predict(final_raw)
    calibrated_metrics = evaluate(labels_eval, calibrated)
    if test is not None:
        test_metrics[CALIBRATED] = calibrated_metrics
    metrics_valid_calibrated = evaluate(
        y_valid,
        valid_scores[chosen] if calibrator is None else calibrator.predict(valid_scores[chosen]),
    )
    calibration = calibration_table(labels_eval, calibrated)
    raw_calibration = calibration_table(labels_eval, final_raw)

    drift_rows = (
        latest_snapshot(snapshots, config)
        if config.drift_baseline == "scoring_snapshot"
        else final_rows
    )
    observed = replace(  # the derived BTYD features follow from the observed ones
        features,
        numeric_log=tuple(c for c in features.numeric_log if c not in BTYD_FEATURES),
        numeric=tuple(c for c in features.numeric if c not in BTYD_FEATURES),
    )
    baseline = build_baselines(
        drift_rows, observed, drift_config or DriftConfig(), random_state=config.random_state
    )
    window = data.window() | {
        "rows_used_for_final_fit": min(len(final_rows), config.max_train_rows),
        "btyd_fit_snapshot_date": cutoff.isoformat() if btyd_params else None,
        "evaluated_on": evaluation_name,
        "drift_baseline_rows": len(drift_rows),
        "validation_rows_evaluated": evaluation_rows["validation"],
        "test_rows_evaluated": evaluation_rows["test"],
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
        btyd_params={name: params.to_dict() for name, params in btyd_params.items()},
        calibrator=calibrator,
        test_metrics=test_metrics,
    )
    rows = [
        _candidate_row(name, kinds[name], metrics[name], test_metrics.get(name))
        for name in valid_scores
    ]
    rows.append(
        _candidate_row(
            f"{chosen} ({CALIBRATED}, {config.calibration})",
            CALIBRATED,
            metrics_valid_calibrated,
            test_metrics.get(CALIBRATED),
        )
    )
    candidates = pd.DataFrame(rows)
    candidates["chosen"] = candidates["candidate"] == chosen
    log.info("churn model: %s, validation ROC-AUC %.4f", chosen, metrics[chosen]["roc_auc"])
    evaluation_scores = dict(test_scores if test is not None else valid_scores)
    evaluation_scores[CALIBRATED] = calibrated
    return ChurnTrainingResult(
        model,
        candidates,
        calibration,
        data,
        np.asarray(y_valid, dtype=np.int64),
        valid_scores[chosen],
        evaluation_name,
        np.asarray(labels_eval, dtype=np.int64),
        evaluation_scores,
        raw_calibration,
    )


def risk_bands(probability: np.ndarray, config: ChurnConfig | None = None) -> np.ndarray:
    """Band label per probability: a band starts at its lower edge (inclusive)."""
    config = config or ChurnConfig()
    positions = np.searchsorted(np.asarray(config.risk_band_edges), probability, side="right")
    return np.asarray(config.risk_band_labels, dtype=object)[positions]


def at_risk_threshold(probability: np.ndarray, config: ChurnConfig | None = None) -> float:
    """The churn probability from which a scored person is at risk (``ChurnConfig.at_risk_rule``):
    ``threshold``: ``risk_threshold``; ``top_share``: the probability of the person ranked
    ceil(``at_risk_top_share`` x persons) by descending probability, so that share (plus any
    ties at the boundary) is at risk."""
    config = config or ChurnConfig()
    p = np.asarray(probability, dtype=np.float64)
    if config.at_risk_rule == "threshold" or not len(p):
        return float(config.risk_threshold)
    rank = max(1, math.ceil(config.at_risk_top_share * len(p)))
    return float(np.sort(p)[::-1][rank - 1])


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
    derived = model.derive_features(frame)
    missing = [name for name in model.features.columns if name not in derived.columns]
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
            "is_at_risk": probability >= at_risk_threshold(probability, config),
            "model_version": model.version or UNREGISTERED_VERSION,
            "as_of": pd.Timestamp(as_of),
        }
    )
    return scores[list(CHURN_SCORE_COLUMNS)]  # the declared columns, in the declared order
