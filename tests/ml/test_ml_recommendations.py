"""Recommendations (ml.recommendations) on small fixed data: rules, cold start, ids, promotion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.config import RecommendationConfig
from ml.recommendations import (
    REASON_POPULAR_OVERALL,
    REASON_POPULAR_SEGMENT,
    Recommender,
    build_catalogue,
    build_interactions,
    evaluate_backtest,
    fit_recommender,
    item_similarities,
    pair_recall,
    ranking_metrics,
    recommend,
)
from ml.registry import ModelRegistry

CONFIG = RecommendationConfig(
    n_recommendations=3,
    neighbours=5,
    published_neighbours=3,
    svd_components=2,
    svd_products_per_component=1,
)

# two tastes: "a" products (shoes, P0-P4) and "b" products (beauty, P5-P9); beauty repeats
PRODUCTS = pd.DataFrame(
    {
        "product_id": [f"P{i}" for i in range(10)] + ["P_NEW"],
        "category": ["shoes"] * 5 + ["beauty"] * 5 + ["shoes"],
        "price_band": [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 2],
        "is_repeat_purchase": [False] * 5 + [True] * 5 + [False],
    }
)


def _interactions(seed: int = 0, persons: int = 60) -> pd.DataFrame:
    """Persons 0..29 like shoes, 30..59 beauty; each interacts with 3 of their 5 products."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(persons):
        base = 0 if p < persons // 2 else 5
        for item in rng.choice(5, 3, replace=False):
            rows.append((f"u{p:03d}", f"P{base + item}", float(rng.uniform(1, 5)), 0))
    frame = pd.DataFrame(
        rows, columns=["person_id", "product_id", "interaction_weight", "purchases"]
    )
    return frame


def _model(
    model_type: str = "item_item", frame: pd.DataFrame | None = None
) -> tuple[Recommender, object]:
    frame = _interactions() if frame is None else frame
    catalogue = build_catalogue(PRODUCTS)
    interactions = build_interactions(frame, catalogue)
    # segment "young": the first half of the persons (the shoe lovers)
    number = np.array([int(p[1:]) for p in interactions.person_ids])
    segment = np.where(number < len(number) // 2, "young", "old")
    return fit_recommender(model_type, interactions, catalogue, segment, CONFIG), interactions


@pytest.mark.parametrize("model_type", ["item_item", "svd"])
def test_personal_recommendations_follow_taste_and_skip_bought_products(model_type: str) -> None:
    frame = _interactions()
    # u000 likes shoes and bought P0 (not a repeat purchase); u059 likes beauty, bought P9
    frame.loc[len(frame)] = ("u000", "P0", 5.0, 1)
    frame.loc[len(frame)] = ("u059", "P9", 5.0, 1)
    model, interactions = _model(model_type, frame)
    persons = pd.DataFrame({"person_id": ["u000", "u059"], "has_personalization_consent": True})
    recs = recommend(model, interactions, persons)
    shoes = recs[recs.person_id == "u000"]
    assert len(shoes) == 3
    assert "P0" not in set(shoes.product_id)  # bought, not a repeat purchase
    assert set(shoes.product_id) <= {f"P{i}" for i in range(1, 5)}  # the shoe taste
    assert shoes.is_personalized.all()
    assert (shoes.reason != REASON_POPULAR_OVERALL).all()
    beauty = recs[recs.person_id == "u059"]
    assert set(beauty.product_id) <= {f"P{i}" for i in range(5, 10)}
    assert list(recs["rank"]) == [1, 2, 3, 1, 2, 3]
    assert recs.groupby("person_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()


def test_repeat_purchase_categories_may_be_recommended_again() -> None:
    frame = _interactions()
    bought = frame[frame.person_id == "u059"].product_id.iloc[0]  # a beauty product
    frame.loc[frame.person_id == "u059", "interaction_weight"] = 0.5
    frame.loc[
        (frame.person_id == "u059") & (frame.product_id == bought),
        ["interaction_weight", "purchases"],
    ] = (50.0, 1)
    model, interactions = _model("item_item", frame)
    recs = recommend(model, interactions, pd.DataFrame({"person_id": ["u059"]}), n=5)
    assert bought in set(recs.product_id)  # beauty repeats (seed product_categories)


def test_nobody_to_score_gives_an_empty_table_with_the_columns() -> None:
    """A sensor run whose new events change no person scores nobody: the table is empty, not a
    KeyError (the incremental run failed on a consent withdrawal)."""
    from ml.recommendations import RECOMMENDATION_COLUMNS

    model, interactions = _model("svd", _interactions())
    recs = recommend(model, interactions, pd.DataFrame({"person_id": pd.Series([], dtype=str)}))
    assert recs.empty and list(recs.columns) == list(RECOMMENDATION_COLUMNS)


def test_persons_without_any_product_interaction_get_popular_products() -> None:
    """A sensor run whose only new person viewed a page (no product) scores against an empty
    interaction matrix: they get the popular products (it raised an IndexError)."""
    model, _ = _model("svd", _interactions())
    empty = build_interactions(_interactions().iloc[0:0], model.catalogue)
    recs = recommend(model, empty, pd.DataFrame({"person_id": ["new-visitor"]}), n=3)
    assert len(recs) == 3 and not recs.is_behavioural.any()
    assert set(recs.reason) <= {REASON_POPULAR_OVERALL, REASON_POPULAR_SEGMENT}


def test_without_personalization_consent_only_popular_overall() -> None:
    model, interactions = _model()
    persons = pd.DataFrame(
        {
            "person_id": ["u000", "u059", "nobody"],
            "has_personalization_consent": [False, False, False],
            "segment": ["young", "old", "old"],
        }
    )
    recs = recommend(model, interactions, persons)
    lists = recs.groupby("person_id")["product_id"].apply(list)
    overall = list(
        PRODUCTS.product_id.iloc[np.argsort(-model.popularity.overall, kind="stable")[:3]]
    )
    assert lists["u000"] == lists["u059"] == lists["nobody"] == overall
    assert (recs.reason == REASON_POPULAR_OVERALL).all()
    assert not recs.is_personalized.any()


def test_cold_persons_get_their_segments_popular_products() -> None:
    model, interactions = _model()
    persons = pd.DataFrame(
        {
            "person_id": ["new_young", "new_old"],
            "has_personalization_consent": True,
            "segment": ["young", "old"],
        }
    )
    recs = recommend(model, interactions, persons)
    assert (recs.reason == REASON_POPULAR_SEGMENT).all()
    young = set(recs[recs.person_id == "new_young"].product_id)
    old = set(recs[recs.person_id == "new_old"].product_id)
    assert young <= {f"P{i}" for i in range(5)}
    assert old <= {f"P{i}" for i in range(5, 10)}


def test_new_products_get_content_neighbours_and_known_ones_co_occurrence() -> None:
    model, _ = _model()
    sims = item_similarities(model)
    new = sims[sims.product_id == "P_NEW"]
    assert set(new.method) == {"content"}
    assert set(new.similar_product_id) <= {f"P{i}" for i in range(5)}  # same category
    assert new.similar_product_id.iloc[0] == "P1"  # same price band first
    known = sims[sims.product_id == "P0"]
    assert set(known.method) == {"co_occurrence"}
    assert set(known.similar_product_id) <= {f"P{i}" for i in range(1, 5)}
    pairs = pd.DataFrame({"product_id": ["P0"], "partner_product_id": ["P9"]})
    assert pair_recall(sims, pairs, k=3) == 0.0


def test_ids_are_stable_whatever_the_row_order() -> None:
    frame = _interactions()
    first, interactions = _model("svd", frame)
    second, shuffled = _model("svd", frame.sample(frac=1.0, random_state=3))
    persons = pd.DataFrame({"person_id": ["u010", "u040", "u020"]})
    a = recommend(first, interactions, persons)
    b = recommend(second, shuffled, persons.iloc[::-1])
    key = ["person_id", "rank"]
    pd.testing.assert_frame_equal(
        a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    )
    assert set(a.product_id) <= set(PRODUCTS.product_id)


def test_ranking_metrics_by_hand() -> None:
    metrics = ranking_metrics(np.array([[1, 2, 3], [4, 5, 6]]), [{2, 9}, {7}], k=3)
    assert metrics["precision_at_10"].tolist() == pytest.approx([1 / 3, 0.0])
    assert metrics["recall_at_10"].tolist() == pytest.approx([0.5, 0.0])
    ideal = 1 + 1 / np.log2(3)
    assert metrics["ndcg_at_10"].tolist() == pytest.approx([(1 / np.log2(3)) / ideal, 0.0])
    assert metrics["map_at_10"].tolist() == pytest.approx([0.5 / 2, 0.0])


def test_backtest_beats_popularity_on_planted_taste() -> None:
    train = _interactions(seed=1, persons=200)
    # the future: every person interacts with one more product of their own taste
    rng = np.random.default_rng(2)
    future = [
        (p, f"P{(0 if int(p[1:]) < 100 else 5) + int(rng.integers(5))}")
        for p in train.person_id.unique()
    ]
    holdout = pd.DataFrame(future, columns=["person_id", "product_id"]).drop_duplicates()
    backtest = train.merge(holdout.assign(is_holdout_target=True), how="outer")
    backtest = backtest.fillna({"interaction_weight": 0.0, "purchases": 0})
    backtest["is_holdout_target"] = backtest["is_holdout_target"].astype("boolean").fillna(False)
    result = evaluate_backtest(backtest, PRODUCTS, pd.DataFrame({"person_id": []}), CONFIG)
    metrics = result.metrics.set_index("model")
    assert set(metrics.index) == {"popularity_overall", "popularity_segment", "item_item", "svd"}
    best = metrics.loc[result.best_model, "ndcg_at_10"]
    assert best >= 1.2 * metrics.loc["popularity_overall", "ndcg_at_10"]
    assert metrics.loc["popularity_overall", "coverage"] == pytest.approx(3 / len(PRODUCTS))


def test_promotion_follows_the_churn_rule(tmp_path) -> None:
    registry = ModelRegistry(tmp_path, model_class=Recommender)
    model, _ = _model()
    good = registry.register(Recommender(**{**model.__dict__, "metrics": {"ndcg_at_10": 0.30}}))
    assert registry.promote(good, metric="ndcg_at_10", tolerance=0.01).promoted
    worse = registry.register(
        Recommender(**{**model.__dict__, "metrics": {"ndcg_at_10": 0.25}, "model_type": "svd"})
    )
    decision = registry.promote(worse, metric="ndcg_at_10", tolerance=0.01)
    assert not decision.promoted
    assert registry.current_version() == good.version
    close = registry.register(
        Recommender(**{**model.__dict__, "metrics": {"ndcg_at_10": 0.295}, "model_type": "x"})
    )
    assert registry.promote(close, metric="ndcg_at_10", tolerance=0.01).promoted
    loaded = registry.load_current()
    assert isinstance(loaded, Recommender) and loaded.version == close.version


def test_ids_are_looked_up_as_text_and_absent_ones_are_minus_one():
    from ml.recommendations import positions_in, sorted_unique

    persons = sorted_unique(np.array(["p3", "p1", "p3", "p10", "p1"], dtype=object))
    assert persons.tolist() == ["p1", "p10", "p3"]
    assert positions_in(persons, pd.Series(["p3", "p2", "p1", "p3"])).tolist() == [2, -1, 0, 2]
    assert positions_in(np.array(["1", "2"]), np.array([2, 5])).tolist() == [1, -1]  # as text
    assert positions_in(np.array([], dtype=str), ["p1"]).tolist() == [-1]
