"""Churn: time-based split, model choice, metrics, insufficient history, scoring."""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.churn import (
    InsufficientHistoryError,
    at_risk_threshold,
    build_training_set,
    calibration_table,
    evaluate,
    label_horizon_days,
    latest_snapshot,
    risk_bands,
    score_churn,
    train_churn_model,
)
from ml.config import ChurnConfig
from ml.drift import feature_drift
from ml.schemas import CHURN_SCORE_COLUMNS, CHURN_SCORES_TABLE, create_table_sql


@pytest.fixture(scope="module")
def trained(snapshots):
    data = snapshots(n_labelled=4)  # train 2026-06, 07; validation 08; test 09; scoring 10
    return data, train_churn_model(data)


def test_split_is_by_time(snapshots):
    data = snapshots(n_persons=200, n_labelled=3)

    split = build_training_set(data, ChurnConfig(test_snapshots=0))

    assert split.validation_snapshot_date == pd.Timestamp("2026-08-01", tz="UTC")
    assert split.train_snapshot_dates == (
        pd.Timestamp("2026-06-01", tz="UTC"),
        pd.Timestamp("2026-07-01", tz="UTC"),
    )
    assert split.train["snapshot_at"].max() < split.validation["snapshot_at"].min()
    assert (split.validation["snapshot_at"] == split.validation_snapshot_date).all()
    assert len(split.train) == 400 and len(split.validation) == 200
    # the unlabelled scoring snapshot is in neither
    assert pd.Timestamp("2026-09-01", tz="UTC") not in set(split.train["snapshot_at"])
    assert set(split.train["churned"].unique()) <= {0, 1}


def test_the_latest_labelled_snapshot_is_held_out_for_testing(snapshots):
    data = snapshots(n_persons=200, n_labelled=4)  # labelled 2026-06 .. 2026-09

    split = build_training_set(data)  # test_snapshots=1

    assert split.test_snapshot_dates == (pd.Timestamp("2026-09-01", tz="UTC"),)
    assert split.validation_snapshot_date == pd.Timestamp("2026-08-01", tz="UTC")
    assert split.train["snapshot_at"].max() == pd.Timestamp("2026-07-01", tz="UTC")
    assert (split.test["snapshot_at"] == pd.Timestamp("2026-09-01", tz="UTC")).all()
    assert len(split.test) == 200 and split.window()["test_rows"] == 200
    # two labelled dates: no room for a test snapshot; train and validate anyway
    short = build_training_set(snapshots(n_persons=200, n_labelled=2))
    assert short.test is None and short.test_snapshot_dates == ()
    # too few rows to train on without the test snapshot's date: no test set either
    tight = build_training_set(data, ChurnConfig(min_train_rows=500))
    assert tight.test is None
    assert tight.validation_snapshot_date == pd.Timestamp("2026-09-01", tz="UTC")
    assert len(tight.train) == 600


def test_purging_overlapping_horizons_drops_recent_training_snapshots(snapshots):
    data = snapshots(n_persons=200, n_labelled=5)  # labelled monthly 2026-06 .. 2026-10
    config = ChurnConfig(purge_overlapping_horizons=True, horizon_days=62, test_snapshots=0)

    split = build_training_set(data, config)

    # validation 2026-10-01; a training snapshot needs snapshot + 62 days <= 2026-10-01
    assert split.train_snapshot_dates == (
        pd.Timestamp("2026-06-01", tz="UTC"),
        pd.Timestamp("2026-07-01", tz="UTC"),
    )
    assert split.purged_snapshot_dates == (
        pd.Timestamp("2026-08-01", tz="UTC"),
        pd.Timestamp("2026-09-01", tz="UTC"),
    )


def test_one_labelled_snapshot_is_insufficient_history(snapshots):
    data = snapshots(n_persons=200, n_labelled=1)

    with pytest.raises(InsufficientHistoryError, match="1 labelled snapshot date") as info:
        train_churn_model(data)
    assert isinstance(info.value, ValueError)


def test_no_labels_at_all_or_one_class_only(snapshots):
    data = snapshots(n_persons=200, n_labelled=3)
    with pytest.raises(InsufficientHistoryError, match="no 'churned' column"):
        build_training_set(data.drop(columns=["churned"]))

    everyone_stays = data.assign(churned=data["churned"].map({True: False, False: False}))
    with pytest.raises(InsufficientHistoryError, match="0 churned"):
        build_training_set(everyone_stays)


def test_too_few_rows(snapshots):
    data = snapshots(n_persons=30, n_labelled=3)
    with pytest.raises(InsufficientHistoryError, match="fewer than the 100 needed"):
        build_training_set(data)


def test_model_learns_the_planted_signal(trained):
    _, result = trained

    model = result.model
    assert model.metrics["roc_auc"] > 0.7
    assert model.metrics["lift_top_decile"] > 1.5
    assert 0 < model.metrics["brier"] < 0.25
    supervised = result.candidates.loc[result.candidates["kind"] == "supervised"]
    assert set(supervised["candidate"]) == {"logistic_regression", "hist_gradient_boosting"}
    chosen = result.candidates.loc[result.candidates["chosen"]].iloc[0]
    assert chosen["candidate"] == model.model_type
    assert chosen["roc_auc"] == supervised["roc_auc"].max()
    assert len(result.calibration) == 10
    assert result.evaluation_name == "test"
    assert result.calibration["rows"].sum() == 600  # the held-out test snapshot
    # calibrated enough: the riskiest decile churns far more than the safest
    assert (
        result.calibration["observed_rate"].iloc[-1]
        > 3 * result.calibration["observed_rate"].iloc[0]
    )
    assert model.training_window["validation_snapshot_date"] == "2026-08-01T00:00:00+00:00"
    assert model.training_window["rows_used_for_final_fit"] == 1200  # train only: no refit
    assert set(model.drift_baseline) == set(model.features.columns)
    assert "churned" not in model.features.columns
    assert model.features.dropped["snapshot_number"] == "timestamp"  # an index of time


def test_noise_labels_do_not_reach_the_bar(snapshots):
    result = train_churn_model(
        snapshots(n_persons=400, signal=0.0), ChurnConfig(models=("logistic_regression",))
    )
    assert result.model.metrics["roc_auc"] < 0.62


def test_scores_carry_bands_threshold_version_and_as_of(trained):
    data, result = trained
    scoring = latest_snapshot(data)
    assert scoring["churned"].isna().all()

    config = ChurnConfig(
        at_risk_rule="threshold",
        risk_threshold=0.4,
        risk_band_edges=(0.2, 0.6),
        risk_band_labels=("low", "medium", "high"),
    )
    scores = score_churn(result.model, scoring, config)

    assert list(scores.columns) == [
        "person_id",
        "churn_probability",
        "risk_band",
        "is_at_risk",
        "model_version",
        "as_of",
    ]
    assert len(scores) == 600 and scores["person_id"].is_unique
    assert scores["churn_probability"].between(0, 1).all()
    assert (scores["is_at_risk"] == (scores["churn_probability"] >= 0.4)).all()
    expected = np.where(
        scores["churn_probability"] >= 0.6,
        "high",
        np.where(scores["churn_probability"] >= 0.2, "medium", "low"),
    )
    assert (scores["risk_band"].to_numpy() == expected).all()
    assert (scores["model_version"] == "unregistered").all()
    assert (scores["as_of"] == pd.Timestamp("2026-10-01", tz="UTC")).all()


def test_at_risk_is_the_top_decile_by_default(trained):
    data, result = trained
    scores = score_churn(result.model, latest_snapshot(data))  # ChurnConfig(): top 10%

    assert scores["is_at_risk"].sum() == 60  # of 600, no ties under Platt scaling
    cut = scores.loc[scores["is_at_risk"], "churn_probability"].min()
    assert (scores.loc[~scores["is_at_risk"], "churn_probability"] < cut).all()
    assert at_risk_threshold(scores["churn_probability"].to_numpy()) == cut
    half = ChurnConfig(at_risk_top_share=0.5)
    assert score_churn(result.model, latest_snapshot(data), half)["is_at_risk"].sum() == 300


def test_calibrated_mean_matches_the_observed_rate_on_the_test_snapshot(snapshots):
    """The raw model is biased (class imbalance shifted between training and validation);
    Platt scaling on the validation snapshot brings the mean predicted churn on the held-out
    test snapshot within 2 points of the observed rate."""
    data = snapshots(n_persons=3000, n_labelled=4, seed=3)
    train_dates = data["snapshot_at"] < pd.Timestamp("2026-08-01", tz="UTC")
    # thin out the churned rows of the training snapshots: the raw model under-predicts
    churned = data["churned"].fillna(False).to_numpy(dtype=bool)
    drop = train_dates.to_numpy() & churned & (np.arange(len(data)) % 2 == 0)
    data = data.loc[~drop].reset_index(drop=True)
    config = ChurnConfig(models=("logistic_regression",))

    result = train_churn_model(data, config)

    test = result.model.test_metrics
    raw = test["logistic_regression"]
    assert abs(raw["mean_predicted"] - raw["base_rate"]) > 0.05  # the bias is real
    calibrated = test["calibrated"]
    assert abs(calibrated["mean_predicted"] - calibrated["base_rate"]) < 0.02
    assert calibrated["roc_auc"] == pytest.approx(raw["roc_auc"])  # Platt keeps the ranking
    probability = result.model.predict_proba(latest_snapshot(data))
    assert probability.min() > 0 and probability.max() < 1


def test_scoring_tolerates_missing_feature_columns_and_names_them(trained, caplog):
    """A model trained before its features were renamed still scores (the old columns count as
    null) and says which columns are missing and that full_build retrains it."""
    data, result = trained
    scoring = latest_snapshot(data).drop(columns=["lifetime_spend", "loyalty_tier"])
    with caplog.at_level(logging.WARNING, logger="ml.churn"):
        scores = score_churn(result.model, scoring, as_of="2026-09-02T00:00:00Z")
    assert scores["churn_probability"].notna().all()
    assert (scores["as_of"] == pd.Timestamp("2026-09-02", tz="UTC")).all()
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "lifetime_spend, loyalty_tier" in warning and "full_build" in warning


def test_metrics_on_hand_made_predictions():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.9, 0.8])
    metrics = evaluate(y, p)
    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert metrics["base_rate"] == 0.2
    assert metrics["lift_top_decile"] == 5.0  # top 10 % = 1 person, churned: 1.0 / 0.2
    # Brier: mean squared error = (2*.01 + 2*.04 + 2*.09 + 2*.16 + .01 + .04) / 10 = 0.065
    assert metrics["brier"] == pytest.approx(0.065)
    table = calibration_table(y, p)
    assert list(table["rows"]) == [1] * 10
    assert table["observed_rate"].iloc[-2:].tolist() == [1.0, 1.0]


def test_risk_band_edges_are_inclusive_lower_bounds():
    config = ChurnConfig()  # edges 0.25, 0.5
    bands = risk_bands(np.array([0.0, 0.2499, 0.25, 0.4999, 0.5, 1.0]), config)
    assert list(bands) == ["low", "low", "medium", "medium", "high", "high"]
    with pytest.raises(ValueError, match="one more"):
        ChurnConfig(risk_band_edges=(0.5,), risk_band_labels=("low", "medium", "high"))


@pytest.mark.parametrize(
    ("missing", "kept"),
    [
        # CRM only: no web events, so the session columns are all 0 and recency all null
        ({"session_count_30d": 0, "recency_days": pd.NA}, {"order_count", "lifetime_spend"}),
        # events only: no CRM, so the order columns are all 0 and the tier unknown
        (
            {"order_count": 0, "lifetime_spend": 0.0, "loyalty_tier": None},
            {"session_count_30d", "recency_days"},
        ),
    ],
    ids=["crm_orders_only", "events_only"],
)
def test_trains_and_scores_with_whatever_features_exist(snapshots, missing, kept):
    data = snapshots().assign(**missing)

    result = train_churn_model(data)

    used = set(result.model.features.columns)
    assert kept <= used and not used & set(missing)
    assert result.model.metrics["roc_auc"] > 0.55
    scores = score_churn(result.model, latest_snapshot(data))
    assert (
        len(scores) == len(latest_snapshot(data))
        and scores["churn_probability"].between(0, 1).all()
    )


def test_the_label_horizon_is_learnt_from_the_snapshots(snapshots):
    """dbt's var churn_horizon_days is the horizon's one definition: the snapshots carry it, the
    model's metadata records it (not a default of its own), and it is not a feature."""
    data = snapshots(n_persons=200, n_labelled=5).assign(churn_horizon_days=62)

    split = build_training_set(data, ChurnConfig(purge_overlapping_horizons=True, test_snapshots=0))
    result = train_churn_model(data)

    assert split.horizon_days == 62
    assert split.purged_snapshot_dates == (
        pd.Timestamp("2026-08-01", tz="UTC"),
        pd.Timestamp("2026-09-01", tz="UTC"),
    )
    assert result.model.training_window["horizon_days"] == 62
    assert result.model.config["horizon_days"] == 62
    assert "churn_horizon_days" not in set(result.model.features.columns)


def test_a_configured_horizon_that_contradicts_the_snapshots_is_refused(snapshots):
    data = snapshots(n_persons=200, n_labelled=3).assign(churn_horizon_days=182)

    assert label_horizon_days(data) == 182
    with pytest.raises(ValueError, match="contradicts"):
        build_training_set(data, ChurnConfig(horizon_days=90))


def test_scores_fill_the_declared_churn_scores_table(trained):
    """ml.schemas declares ml.churn_scores once: score_churn returns exactly its columns, and the
    table created from the declaration takes the scores as they are."""
    data, result = trained
    scores = score_churn(result.model, latest_snapshot(data))
    assert list(scores.columns) == list(CHURN_SCORE_COLUMNS)

    con = duckdb.connect()
    con.execute(create_table_sql(CHURN_SCORES_TABLE, CHURN_SCORE_COLUMNS))
    con.register("scores", scores)
    con.execute(f"INSERT INTO {CHURN_SCORES_TABLE} BY NAME SELECT * FROM scores")
    described = con.execute(f"DESCRIBE {CHURN_SCORES_TABLE}").fetchall()
    assert {name: type_ for name, type_, *_ in described} == CHURN_SCORE_COLUMNS
    assert con.execute(f"SELECT count(*) FROM {CHURN_SCORES_TABLE}").fetchone()[0] == len(scores)


@pytest.fixture(scope="module")
def trained_on_activity(activity):
    data = activity(n_persons=2000, seed=0)
    return data, train_churn_model(data)


def test_the_supervised_model_beats_the_btyd_baselines(trained_on_activity):
    """Fixed seed: BG/NBD and MBG/NBD (order history only) and a plain logistic regression on
    the order features are evaluated on the same validation and test rows as the supervised
    models, which see sessions too and the BTYD quantities as features: the chosen model is at
    least 0.01 ROC-AUC ahead of every baseline on both snapshots."""
    _, result = trained_on_activity
    model = result.model
    baselines = {"bg_nbd", "mbg_nbd", "logistic_regression_orders"}
    assert baselines <= set(model.candidate_metrics) and baselines <= set(model.test_metrics)
    assert {"btyd_expected_orders", "btyd_p_alive"} <= set(model.features.columns)
    assert set(model.btyd_params) == {"bg_nbd", "mbg_nbd"}
    for name in baselines:
        assert model.metrics["roc_auc"] >= model.candidate_metrics[name]["roc_auc"] + 0.01
        assert (
            model.test_metrics["calibrated"]["roc_auc"]
            >= model.test_metrics[name]["roc_auc"] + 0.01
        )
    # the BTYD baselines are real competitors, not strawmen: far better than chance
    assert model.test_metrics["bg_nbd"]["roc_auc"] > 0.75
    # every candidate on the same rows
    assert len({m["rows"] for m in model.candidate_metrics.values()}) == 1
    assert len({m["rows"] for m in model.test_metrics.values()}) == 1
    cutoff = pd.Timestamp(model.training_window["btyd_fit_snapshot_date"])
    assert cutoff < pd.Timestamp(model.training_window["validation_snapshot_date"])


def test_btyd_features_are_recomputed_when_scoring(trained_on_activity, caplog):
    """The scored table has no BTYD columns: the model derives them with its fitted BG/NBD,
    and does not warn that they are missing (every run of the quick start did)."""
    data, result = trained_on_activity
    scoring = latest_snapshot(data)
    assert "btyd_p_alive" not in scoring.columns
    with caplog.at_level(logging.WARNING, logger="ml.churn"):
        scores = score_churn(result.model, scoring)
    assert "does not have" not in caplog.text
    assert scores["churn_probability"].between(0, 1).all()
    # a person who has just ordered a lot is less likely to churn than one silent for months
    frame = scoring.iloc[:2].copy()
    frame["completed_orders"] = [8, 1]
    frame["days_since_last_order"] = [1, 200]
    frame["days_since_last_activity"] = [1, 200]
    frame["days_since_last_session"] = [1, 200]
    frame["days_since_first_activity"] = 300
    frame["session_count_30d"] = [5, 0]
    frame["session_count_90d"] = [12, 0]
    low, high = result.model.predict_proba(frame)
    assert low < high


def test_an_unchanged_rerun_shows_no_drift_and_an_injected_shift_does(trained_on_activity):
    data, result = trained_on_activity
    baseline = result.model.drift_baseline
    scoring = latest_snapshot(data)
    assert "days_since_first_activity" in baseline  # tenure is watched, like the rest

    unchanged = feature_drift(baseline, scoring)
    assert unchanged.recommendation == "ok" and unchanged.max_psi < 0.01

    shifted = scoring.assign(
        session_count_30d=scoring["session_count_30d"] * 3,
        days_since_last_activity=scoring["days_since_last_activity"] + 45,
    )
    report = feature_drift(baseline, shifted)
    assert report.recommendation == "retrain"
    flagged = set(report.features.loc[report.features["status"] != "ok", "feature"])
    assert {"session_count_30d", "days_since_last_activity"} <= flagged
    # the old baseline (the training rows: older snapshots) warns on the same unchanged data
    # because tenure grows by construction; that is the alert that always fired
    old = train_churn_model(
        data,
        ChurnConfig(
            drift_baseline="training_rows", models=("logistic_regression",), btyd_models=()
        ),
    )
    assert feature_drift(old.model.drift_baseline, scoring).recommendation != "ok"


def test_candidates_are_measured_on_one_bounded_sample_of_each_snapshot(snapshots):
    data = snapshots(n_persons=300, n_labelled=4)
    config = ChurnConfig(models=("logistic_regression",), max_evaluation_rows=120)

    result = train_churn_model(data, config)

    window = result.model.training_window
    assert window["validation_rows"] == 300 and window["validation_rows_evaluated"] == 120
    assert window["test_rows"] == 300 and window["test_rows_evaluated"] == 120
    assert {m["rows"] for m in result.model.candidate_metrics.values()} == {120.0}
    assert {m["rows"] for m in result.model.test_metrics.values()} == {120.0}
    assert len(result.validation_labels) == len(result.validation_probability) == 120
