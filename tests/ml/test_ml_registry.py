"""File-based model registry: versions, metadata, guarded promotion, loading for scoring."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
import sklearn

from ml.churn import latest_snapshot, score_churn, train_churn_model
from ml.config import ChurnConfig
from ml.drift import feature_drift
from ml.registry import ModelRegistry, NoCurrentModelError

CONFIG = ChurnConfig(models=("logistic_regression",), test_snapshots=0)


@pytest.fixture(scope="module")
def trained(snapshots):
    data = snapshots(n_persons=300)
    return data, train_churn_model(data, CONFIG).model


def with_auc(model, roc_auc: float):
    return dataclasses.replace(model, metrics={**model.metrics, "roc_auc": roc_auc})


def at(second: int) -> datetime:
    return datetime(2026, 11, 1, 2, 0, second, tzinfo=UTC)


def test_register_writes_model_and_metadata(tmp_path, trained):
    _, model = trained
    registry = ModelRegistry(tmp_path / "churn")

    registered = registry.register(model, created_at=at(0))

    assert registered.version.startswith("20261101T020000Z-")
    assert len(registered.version.split("-")[1]) == 8
    assert registry.versions() == [registered.version]
    meta = registry.metadata(registered.version)
    assert meta["version"] == registered.version
    assert meta["created_at"] == "2026-11-01T02:00:00+00:00"
    assert meta["libraries"]["scikit-learn"] == sklearn.__version__
    assert set(meta["libraries"]) >= {"python", "pandas", "numpy", "scikit-learn"}
    assert meta["features"]["numeric_log"] == list(model.features.numeric_log)
    assert meta["training_window"]["validation_snapshot_date"] == "2026-08-01T00:00:00+00:00"
    assert meta["metrics"]["roc_auc"] == pytest.approx(model.metrics["roc_auc"])
    assert meta["promotion"] is None
    assert set(meta["drift_baseline"]) == set(model.features.columns)
    # nothing half-written lying around, nothing promoted yet
    leftovers = [
        p.name
        for p in (tmp_path / "churn").rglob("*")
        if p.name.startswith(".") and p.name != ".lock"
    ]
    assert leftovers == []
    assert registry.current_version() is None
    with pytest.raises(NoCurrentModelError):
        registry.load_current()
    # registering the identical model at the same instant is idempotent
    assert registry.register(model, created_at=at(0)).version == registered.version
    assert len(registry.versions()) == 1


def test_promotion_respects_the_tolerance_and_records_why(tmp_path, trained):
    _, model = trained
    registry = ModelRegistry(tmp_path)
    first = registry.register(with_auc(model, 0.80), created_at=at(1))
    slightly_worse = registry.register(with_auc(model, 0.795), created_at=at(2))
    much_worse = registry.register(with_auc(model, 0.70), created_at=at(3))

    decision = registry.promote(first.version, tolerance=0.01)
    assert decision.promoted and decision.reason == "no current model"
    assert registry.current_version() == first.version

    decision = registry.promote(slightly_worse, tolerance=0.01)  # 0.795 >= 0.80 - 0.01
    assert decision.promoted
    assert decision.previous == first.version
    assert "0.7950 >= current 0.8000 - tolerance 0.01" in decision.reason
    assert registry.current_version() == slightly_worse.version

    decision = registry.promote(much_worse, tolerance=0.01)  # 0.70 < 0.795 - 0.01
    assert not decision.promoted
    assert "keeping " + slightly_worse.version in decision.reason
    assert registry.current_version() == slightly_worse.version

    refused = registry.metadata(much_worse.version)["promotion"]
    assert refused["promoted"] is False
    assert refused["reason"] == decision.reason
    assert refused["current_value"] == pytest.approx(0.795)
    log = registry.decisions()
    assert [d["promoted"] for d in log] == [True, True, False]
    assert [d["candidate"] for d in log] == [
        first.version,
        slightly_worse.version,
        much_worse.version,
    ]
    json.loads((tmp_path / "current.json").read_text())  # valid JSON pointer

    # a wider tolerance lets it through; so does force
    assert registry.promote(much_worse, tolerance=0.2).promoted
    assert registry.current_version() == much_worse.version


def test_forced_promotion_and_unregistered_models(tmp_path, trained):
    _, model = trained
    registry = ModelRegistry(tmp_path)
    good = registry.register(with_auc(model, 0.9), created_at=at(4))
    bad = registry.register(with_auc(model, 0.5), created_at=at(5))
    registry.promote(good)
    decision = registry.promote(bad, force=True)
    assert decision.promoted and decision.reason == "forced promotion"
    with pytest.raises(ValueError, match="register the model"):
        registry.promote(model)


def test_load_current_scores_with_the_promoted_version(tmp_path, trained):
    data, model = trained
    registry = ModelRegistry(tmp_path)
    kept = registry.register(with_auc(model, 0.85), created_at=at(6))
    registry.promote(kept)
    registry.promote(registry.register(with_auc(model, 0.5), created_at=at(7)))  # refused

    current = registry.load_current()
    scoring = latest_snapshot(data)
    scores = score_churn(current, scoring)

    assert current.version == kept.version
    assert (scores["model_version"] == kept.version).all()
    # same fitted pipeline as before saving
    before = score_churn(model, scoring)
    assert (scores["churn_probability"] == before["churn_probability"]).all()
    # drift at scoring time needs nothing but the registry metadata
    report = feature_drift(registry.metadata(kept.version)["drift_baseline"], scoring)
    assert set(report.features["feature"]) == set(model.features.columns)
    assert report.recommendation in {"ok", "warn", "retrain"}


def test_a_model_from_before_the_test_split_is_replaced_and_still_loads(tmp_path, trained):
    """Upgrade: the current model was saved before the held-out test split and the new fields
    existed. It still unpickles and scores; its validation metric (another snapshot) is not
    compared with the candidate's, so the candidate is promoted whatever the numbers."""
    data, model = trained
    registry = ModelRegistry(tmp_path / "churn")
    old = registry.register(with_auc(model, 0.99), created_at=at(0))
    registry.promote(old)
    meta_path = tmp_path / "churn" / "versions" / old.version / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["test_metrics"]
    meta_path.write_text(json.dumps(meta))
    state = dict(model.__dict__)
    for name in ("btyd_params", "calibrator", "test_metrics"):
        del state[name]
    unpickled = type(model).__new__(type(model))
    unpickled.__setstate__(state)
    assert unpickled.calibrator is None and unpickled.btyd_params == {}
    assert len(score_churn(unpickled, latest_snapshot(data))) == 300

    decision = registry.promote(registry.register(with_auc(model, 0.6), created_at=at(1)))

    assert decision.promoted and "not comparable" in decision.reason
