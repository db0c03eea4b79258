"""Feature selection and the one preprocessing pipeline shared by training and scoring.

``select_features`` decides, from a table's dtypes and values, which columns are features and
records why every other column was dropped. ``prepare_frame`` coerces any table (warehouse
DECIMALs, pandas nullable dtypes, missing columns) to the exact columns and dtypes the pipeline
expects. ``build_preprocessor`` returns the scikit-learn ``Pipeline``; the fitted pipeline is
stored with the model, so scoring runs the very same transformation.

Scaling of heavy-tailed features: non-negative skewed columns (counts, money, durations) get
``log1p`` first, which turns a long right tail into a roughly symmetric one (10,000 events
become 9.2), then every numeric column is standardised and clipped at ``clip_z``. Rejected:
``RobustScaler`` alone -- most behavioural counts are zero-inflated, their interquartile range
is 0, and scikit-learn then leaves them unscaled, so they carry arbitrary weight in distances;
``QuantileTransformer`` -- it maps the mass of tied zeros to one middle quantile, bends distances
non-linearly and makes centroids unreadable. Nulls are imputed with the median and, because "no
orders" is itself a behaviour, flagged by a missing-indicator column.
"""

from __future__ import annotations

import datetime as dt
import logging
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml.config import FeatureConfig, PreprocessingConfig

log = logging.getLogger(__name__)

MISSING_CATEGORY = "__missing__"
_TYPE_SAMPLE = 1_000
_SKEW_SAMPLE = 100_000
TRANSFORM_CHUNK_ROWS = 250_000


class NoFeaturesError(ValueError):
    """No column of the table is usable as a feature."""


@dataclass(frozen=True)
class FeatureSet:
    """The features a model uses, by treatment, and why every other column was left out."""

    numeric_log: tuple[str, ...] = ()
    """Non-negative skewed numeric columns: log1p, then standardised."""
    numeric: tuple[str, ...] = ()
    """Other numeric and boolean columns: standardised."""
    categorical: tuple[str, ...] = ()
    """String columns: one-hot encoded."""
    dropped: dict[str, str] = field(default_factory=dict)
    """Column -> reason it is not a feature."""

    @property
    def numeric_columns(self) -> tuple[str, ...]:
        return self.numeric_log + self.numeric

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric_log + self.numeric + self.categorical

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric_log": list(self.numeric_log),
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "dropped": dict(self.dropped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSet:
        return cls(
            numeric_log=tuple(data.get("numeric_log", ())),
            numeric=tuple(data.get("numeric", ())),
            categorical=tuple(data.get("categorical", ())),
            dropped=dict(data.get("dropped", {})),
        )


def _value_kind(series: pd.Series) -> str:
    """'numeric', 'categorical', 'time' or 'other' for an object column, from its values."""
    values = series.dropna()
    if len(values) > _TYPE_SAMPLE:
        values = values.iloc[:_TYPE_SAMPLE]
    kinds = set()
    for value in values:
        if isinstance(value, bool | np.bool_):
            kinds.add("numeric")
        elif isinstance(value, dt.date | dt.datetime | pd.Timestamp | np.datetime64):
            kinds.add("time")
        elif isinstance(value, numbers.Number | Decimal):
            kinds.add("numeric")
        elif isinstance(value, str):
            kinds.add("categorical")
        else:
            kinds.add("other")
    if not kinds:
        return "categorical"
    return kinds.pop() if len(kinds) == 1 else "other"


def column_kind(series: pd.Series) -> str:
    """'numeric', 'categorical', 'time' or 'other', from the dtype (object: from the values)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "time"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return _value_kind(series)
    return "other"


def to_float(series: pd.Series) -> np.ndarray:
    """A float64 array with NaN for nulls, from any numeric, boolean, Decimal or nullable dtype."""
    if pd.api.types.is_object_dtype(series.dtype):
        series = pd.to_numeric(series.map(_object_to_float), errors="coerce")
    elif isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        series = series.astype("Float64")
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _object_to_float(value: Any) -> float:
    if value is None or value is pd.NA:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def to_category(series: pd.Series) -> np.ndarray:
    """An object array of strings with NaN for nulls."""
    mask = series.isna().to_numpy()
    values = series.astype(object).to_numpy(dtype=object)
    out = np.array([str(v) for v in values], dtype=object) if len(values) else values
    out[mask] = np.nan
    return out


def _is_skewed(values: np.ndarray, threshold: float) -> bool:
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.min() < 0 or finite.max() <= 1:
        return False
    if finite.size > _SKEW_SAMPLE:
        finite = np.random.default_rng(0).choice(finite, _SKEW_SAMPLE, replace=False)
    skew = pd.Series(finite).skew()
    return bool(np.isfinite(skew) and skew > threshold)


def _name_reason(name: str, config: FeatureConfig, extra_excluded: Sequence[str]) -> str | None:
    if name in config.id_columns or name.endswith("_id"):
        return "identifier"
    if name in config.time_columns or name.endswith("_at"):
        return "timestamp"
    if name in extra_excluded:
        return "target or key column"
    if name in config.exclude:
        return "excluded by config"
    if config.include and name not in config.include:
        return "not in include list"
    return None


def select_features(
    frame: pd.DataFrame,
    config: FeatureConfig | None = None,
    *,
    exclude: Sequence[str] = (),
) -> FeatureSet:
    """Choose the feature columns of ``frame`` by dtype and values and record why others drop.

    ``exclude`` adds columns to leave out for this call (a label column, say). Never raises for
    an entirely null or missing column; raises ``NoFeaturesError`` if nothing is left.
    """
    config = config or FeatureConfig()
    dropped: dict[str, str] = {}
    numeric_log: list[str] = []
    numeric: list[str] = []
    categorical: list[str] = []
    for name in config.include:
        if name not in frame.columns:
            dropped[name] = "missing from table"
    for name in frame.columns:
        name = str(name)
        reason = _name_reason(name, config, exclude)
        series = frame[name]
        if reason is None and not series.notna().any():
            reason = "entirely null"
        kind = column_kind(series) if reason is None else ""
        if reason is None and kind == "time":
            reason = "timestamp"
        elif reason is None and kind == "other":
            reason = f"unsupported dtype {series.dtype}"
        elif reason is None and kind == "categorical" and not config.use_categoricals:
            reason = "categorical (disabled by config)"
        if reason is None:
            if kind == "numeric":
                values = to_float(series)
                finite = values[np.isfinite(values)]
                if finite.size == 0 or finite.min() == finite.max():
                    reason = "constant"
                elif _is_skewed(values, config.log_skew_threshold):
                    numeric_log.append(name)
                else:
                    numeric.append(name)
            else:
                distinct = series.dropna().astype(str).nunique()
                if distinct <= 1:
                    reason = "constant"
                elif distinct > config.max_category_cardinality:
                    reason = f"{distinct} distinct values (identifier-like)"
                else:
                    categorical.append(name)
        if reason is not None:
            dropped[name] = reason
    features = FeatureSet(tuple(numeric_log), tuple(numeric), tuple(categorical), dropped)
    if not features.columns:
        raise NoFeaturesError(
            f"no usable feature among {len(frame.columns)} columns; dropped: {dropped}"
        )
    log.info(
        "selected %d features (%d log-scaled, %d numeric, %d categorical), dropped %d",
        len(features.columns),
        len(numeric_log),
        len(numeric),
        len(categorical),
        len(dropped),
    )
    return features


def prepare_frame(frame: pd.DataFrame, features: FeatureSet) -> pd.DataFrame:
    """Exactly the feature columns, numeric as float64 (NaN nulls) and categorical as object
    strings; a column missing from ``frame`` comes back entirely null."""
    data: dict[str, np.ndarray] = {}
    for name in features.numeric_columns:
        if name in frame.columns:
            data[name] = to_float(frame[name])
        else:
            data[name] = np.full(len(frame), np.nan)
    for name in features.categorical:
        if name in frame.columns:
            data[name] = to_category(frame[name])
        else:
            data[name] = np.full(len(frame), np.nan, dtype=object)
    return pd.DataFrame(data, index=frame.index, columns=list(features.columns))


def log1p_nonnegative(values: np.ndarray) -> np.ndarray:
    """log1p of values clipped at 0 (a negative value at scoring time must not become NaN)."""
    return np.log1p(np.clip(values, 0, None))


def clip_values(values: np.ndarray, limit: float) -> np.ndarray:
    return np.clip(values, -limit, limit)


def build_preprocessor(
    features: FeatureSet,
    config: PreprocessingConfig | None = None,
    *,
    pca_components: int | float | None = None,
    random_state: int = 0,
) -> Pipeline:
    """The unfitted preprocessing ``Pipeline`` for ``features`` (input: ``prepare_frame``)."""
    config = config or PreprocessingConfig()
    median = SimpleImputer(strategy="median", keep_empty_features=True)
    transformers: list[tuple[str, Any, list[str]]] = []
    if features.numeric_log:
        log_steps = Pipeline(
            [
                ("impute", median),
                ("log1p", FunctionTransformer(log1p_nonnegative, feature_names_out="one-to-one")),
                ("scale", StandardScaler()),
            ]
        )
        transformers.append(("log", log_steps, list(features.numeric_log)))
    if features.numeric:
        num_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        transformers.append(("num", num_steps, list(features.numeric)))
    if config.add_missing_indicators and features.numeric_columns:
        indicator = MissingIndicator(features="missing-only", error_on_new=False)
        transformers.append(("missing", indicator, list(features.numeric_columns)))
    if features.categorical:
        cat_steps = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(
                        strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True
                    ),
                ),
                (
                    "onehot",
                    OneHotEncoder(
                        handle_unknown="ignore",
                        min_frequency=config.min_category_frequency,
                        max_categories=config.max_categories,
                        sparse_output=False,
                    ),
                ),
            ]
        )
        transformers.append(("cat", cat_steps, list(features.categorical)))
    steps: list[tuple[str, Any]] = [
        ("columns", ColumnTransformer(transformers, sparse_threshold=0.0))
    ]
    if config.clip_z is not None:
        clip = FunctionTransformer(
            clip_values, kw_args={"limit": config.clip_z}, feature_names_out="one-to-one"
        )
        steps.append(("clip", clip))
    if pca_components is not None:
        steps.append(("pca", PCA(n_components=pca_components, random_state=random_state)))
    return Pipeline(steps)


def sample_indices(n_rows: int, size: int, random_state: int) -> np.ndarray:
    """Sorted positions of a uniform sample of at most ``size`` of ``n_rows`` rows."""
    if n_rows <= size:
        return np.arange(n_rows)
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_rows, size=size, replace=False))


def fit_preprocessor(
    prepared: pd.DataFrame,
    features: FeatureSet,
    config: PreprocessingConfig | None = None,
    *,
    pca_components: int | float | None = None,
    random_state: int = 0,
) -> Pipeline:
    """``build_preprocessor`` fitted on at most ``config.fit_sample_size`` rows of ``prepared``."""
    config = config or PreprocessingConfig()
    pipeline = build_preprocessor(
        features, config, pca_components=pca_components, random_state=random_state
    )
    rows = sample_indices(len(prepared), config.fit_sample_size, random_state)
    pipeline.fit(prepared.iloc[rows])
    return pipeline


def transform(
    pipeline: Pipeline,
    prepared: pd.DataFrame,
    *,
    dtype: type = np.float32,
    chunk_rows: int = TRANSFORM_CHUNK_ROWS,
) -> np.ndarray:
    """``pipeline.transform`` in row chunks into one preallocated ``dtype`` matrix (bounded
    memory on a million rows)."""
    n_rows = len(prepared)
    if n_rows == 0:
        return np.empty((0, len(pipeline.get_feature_names_out())), dtype=dtype)
    first = np.asarray(pipeline.transform(prepared.iloc[:chunk_rows]), dtype=dtype)
    if n_rows <= chunk_rows:
        return first
    out = np.empty((n_rows, first.shape[1]), dtype=dtype)
    out[: len(first)] = first
    for start in range(chunk_rows, n_rows, chunk_rows):
        stop = min(start + chunk_rows, n_rows)
        out[start:stop] = pipeline.transform(prepared.iloc[start:stop])
    return out


def readable_feature_names(pipeline: Pipeline, features: FeatureSet) -> list[str]:
    """Names of the columns the ``columns`` step outputs (before any PCA), for people:
    ``session_count_7d``, ``lifetime_spend is missing``, ``country=DE``, ``country=(other)``."""
    raw = pipeline.named_steps["columns"].get_feature_names_out()
    by_length = sorted(features.categorical, key=len, reverse=True)
    names: list[str] = []
    for full in raw:
        branch, _, rest = str(full).partition("__")
        if branch == "missing":
            names.append(f"{rest.removeprefix('missingindicator_')} is missing")
        elif branch == "cat":
            column = next((c for c in by_length if rest.startswith(f"{c}_")), None)
            if column is None:
                names.append(rest)
                continue
            value = rest[len(column) + 1 :]
            value = {"infrequent_sklearn": "(other)", MISSING_CATEGORY: "(missing)"}.get(
                value, value
            )
            names.append(f"{column}={value}")
        else:
            names.append(rest)
    return names
