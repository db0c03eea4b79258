"""Feature selection and the shared preprocessing pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.config import FeatureConfig, PreprocessingConfig
from ml.preprocessing import (
    NoFeaturesError,
    fit_preprocessor,
    prepare_frame,
    readable_feature_names,
    select_features,
    transform,
)


def test_selects_by_dtype_and_drops_ids_timestamps_empty_and_constant_columns(person_table):
    features = select_features(person_table())

    assert set(features.numeric_log) == {"order_count", "lifetime_spend", "event_count_30d"}
    assert set(features.numeric) == {
        "is_customer",
        "anonymous_id_count",
        "recency_days",
        "bounce_rate",
    }
    assert features.categorical == ("country",)
    assert features.dropped == {
        "person_id": "identifier",
        "customer_id": "identifier",
        "signup_at": "timestamp",
        "last_seen_at": "timestamp",
        "as_of": "timestamp",
        "loyalty_tier": "entirely null",
        "top_category_bought": "entirely null",
        "avg_price_bought": "entirely null",
        "tenure_days": "constant",
    }


def test_include_exclude_and_missing_included_columns(person_table):
    config = FeatureConfig(
        include=("order_count", "bounce_rate", "country", "not_there"), exclude=("country",)
    )
    features = select_features(person_table(), config)

    assert features.columns == ("order_count", "bounce_rate")
    assert features.dropped["not_there"] == "missing from table"
    assert features.dropped["country"] == "excluded by config"
    assert features.dropped["event_count_30d"] == "not in include list"


def test_high_cardinality_strings_are_not_features():
    frame = pd.DataFrame({"session_key": [f"s{i}" for i in range(500)], "x": np.arange(500.0)})
    features = select_features(frame, FeatureConfig(max_category_cardinality=100))
    assert features.columns == ("x",)
    assert "identifier-like" in features.dropped["session_key"]


def test_pipeline_survives_null_missing_and_unseen_values_at_scoring_time(person_table):
    train = person_table()
    features = select_features(train)
    pipeline = fit_preprocessor(prepare_frame(train, features), features)
    trained = transform(pipeline, prepare_frame(train, features))
    assert np.isfinite(trained).all()

    # events-only deployment at scoring: CRM columns gone, an unseen country, a negative count
    scoring = person_table(50, seed=1).drop(
        columns=["order_count", "lifetime_spend", "recency_days", "is_customer"]
    )
    scoring.loc[0, "country"] = "XX"
    scoring.loc[1, "event_count_30d"] = -3
    scored = transform(pipeline, prepare_frame(scoring, features))

    assert scored.shape == (50, trained.shape[1])
    assert np.isfinite(scored).all()
    names = readable_feature_names(pipeline, features)
    country_columns = [i for i, name in enumerate(names) if name.startswith("country=")]
    assert scored[0, country_columns].sum() == 0  # unknown category: no one-hot column set
    assert "lifetime_spend is missing" in names
    assert "order_count is missing" not in names  # no nulls in training, no indicator


def test_log_then_standardise_tames_heavy_tails():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"event_count": np.append(rng.poisson(3, 999), 1_000_000)})
    features = select_features(frame)
    pipeline = fit_preprocessor(
        prepare_frame(frame, features), features, PreprocessingConfig(clip_z=None)
    )
    values = transform(pipeline, prepare_frame(frame, features))[:, 0]

    assert features.numeric_log == ("event_count",)
    raw = frame["event_count"].to_numpy(dtype=float)
    raw_z = (raw - raw.mean()) / raw.std()
    # plain standardisation squashes everyone but the outlier onto one point ...
    assert raw_z[:-1].std() < 0.001
    # ... log1p first keeps ordinary people spread out, and the outlier less extreme
    assert values[:-1].std() > 0.5
    assert values[-1] < raw_z[-1]

    clipped = fit_preprocessor(
        prepare_frame(frame, features), features, PreprocessingConfig(clip_z=3.0)
    )
    assert transform(clipped, prepare_frame(frame, features)).max() == pytest.approx(3.0)


def test_rare_categories_are_grouped():
    frame = pd.DataFrame(
        {"country": ["DE"] * 500 + ["FR"] * 495 + ["LU"] * 5, "x": np.arange(1000.0)}
    )
    features = select_features(frame)
    pipeline = fit_preprocessor(
        prepare_frame(frame, features), features, PreprocessingConfig(min_category_frequency=0.01)
    )
    names = readable_feature_names(pipeline, features)
    assert [n for n in names if n.startswith("country=")] == [
        "country=DE",
        "country=FR",
        "country=(other)",
    ]


def test_all_null_or_id_only_table_raises_a_clear_error():
    frame = pd.DataFrame(
        {"person_id": ["a", "b"], "order_count": [None, None], "as_of": pd.Timestamp("2026-01-01")}
    )
    with pytest.raises(NoFeaturesError, match="no usable feature"):
        select_features(frame)
