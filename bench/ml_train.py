"""Benchmark: clustering + churn training + scoring on synthetic data (default 1M persons).

    .venv/bin/python bench/ml_train.py --persons 1000000 [--snapshots 4] [--seed 0] [--only-churn]

Prints one JSON object: seconds per step, peak RSS after each step (``resource.getrusage``
``ru_maxrss``: the process's peak so far), the chosen k, the churn model and its metrics.
Target on the 2-core / 24 GB machine: clustering + churn training under 2 minutes, peak RSS
under 4 GB at 1M persons.

Synthetic design (no warehouse needed, deterministic for a seed):

- ``person_features``: one row per person with the mart's column names and dtypes: ids,
  timestamps, ints, floats, nullable ints (``Int64``), strings with nulls. Every person belongs
  to one of six hidden personas (loyal buyers 8 %, regulars 17 %, browsers 30 %, bargain hunters
  10 %, new visitors 20 %, dormant 15 %) that set an engagement level, a purchase propensity and
  a discount affinity. Counts are Poisson/negative-binomial around the persona's rate (heavy
  right tails), money is log-normal, order columns are null for people without orders, a few
  columns are entirely null or constant (as in a CRM-only or events-only deployment).
- churn snapshots: the same people at ``--snapshots`` monthly snapshot dates (all but the last
  labelled), with a subset of the features recomputed per snapshot from a drifting engagement
  level. The churn probability is a logistic function of recency, recent sessions, the
  30-day session trend, orders and loyalty tier, so a model can find a real (not perfect)
  signal.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from ml.churn import latest_snapshot, score_churn, train_churn_model
from ml.clustering import fit_clusters
from ml.clv import fit_clv, score_clv
from ml.config import ChurnConfig, ClusteringConfig
from ml.drift import feature_drift

log = logging.getLogger("bench.ml_train")
T = TypeVar("T")

AS_OF = pd.Timestamp("2026-11-01", tz="UTC")
PERSONAS = {
    # name: (share, engagement, purchase propensity, discount affinity)
    "loyal": (0.08, 6.0, 0.9, 0.2),
    "regular": (0.17, 3.0, 0.6, 0.3),
    "browser": (0.30, 2.0, 0.1, 0.1),
    "bargain": (0.10, 2.5, 0.5, 0.9),
    "new": (0.20, 1.0, 0.15, 0.3),
    "dormant": (0.15, 0.2, 0.05, 0.2),
}
COUNTRIES = np.array(["DE", "FR", "NL", "BE", "AT", "CH", "PL", "IT"])
CATEGORIES = np.array(["shoes", "outdoor", "kids", "home", "beauty", "sports", "books"])
DEVICES = np.array(["desktop", "mobile", "tablet"])


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(steps: dict[str, Any], name: str, func: Callable[[], T]) -> T:
    started = time.perf_counter()
    value = func()
    steps[name] = {
        "seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": peak_rss_mb(),
    }
    log.info("%s: %s", name, steps[name])
    return value


def _personas(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
    shares = np.array([p[0] for p in PERSONAS.values()])
    persona = rng.choice(len(PERSONAS), n, p=shares / shares.sum())
    table = np.array([p[1:] for p in PERSONAS.values()])
    engagement = table[persona, 0] * rng.gamma(4.0, 0.25, n)
    return persona, engagement, table[persona, 1], table[persona, 2]


def _with_nulls(
    values: np.ndarray, mask: np.ndarray, dtype: str
) -> pd.api.extensions.ExtensionArray:
    out = pd.array(values, dtype=dtype)
    out[mask] = pd.NA
    return out


def person_features(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    persona, engagement, buy, discount = _personas(rng, n)
    sessions = rng.poisson(engagement * 12) + 1
    sessions_90d = rng.binomial(sessions, np.clip(engagement / 8, 0.05, 0.95))
    sessions_30d = rng.binomial(sessions_90d, 0.4)
    sessions_7d = rng.binomial(sessions_30d, 0.25)
    pages = sessions * rng.gamma(3.0, 1.5, n)
    page_views = np.round(pages).astype(np.int64)
    product_views = rng.binomial(page_views, 0.4)
    content_views = rng.binomial(page_views, 0.15)
    events = page_views + rng.poisson(sessions * 2)
    orders = rng.poisson(buy * engagement * 2)
    completed = rng.binomial(orders, 0.92)
    has_orders = orders == 0
    aov = rng.lognormal(4.0 - discount * 0.5, 0.6, n)
    spend = orders * aov
    add_to_carts = rng.poisson(orders * 1.5 + engagement * 0.5)
    abandoned = rng.binomial(add_to_carts, 0.4)
    tenure = rng.integers(1, 1500, n)
    recency = np.minimum(np.round(rng.exponential(60 / (engagement + 0.1))).astype(int), tenure)
    seen_recency = np.minimum(recency, np.round(rng.exponential(20 / (engagement + 0.1))))
    shares = rng.dirichlet([4, 3, 1], n)
    customers = rng.random(n) < 0.55
    person_ids = pd.array([f"p{i:08d}" for i in range(n)], dtype="str")
    frame = pd.DataFrame(
        {
            "person_id": person_ids,
            "customer_id": pd.array(np.where(customers, person_ids, None), dtype="str"),
            "is_customer": customers,
            "anonymous_id_count": rng.integers(1, 4, n),
            "user_id_count": customers.astype(np.int64),
            "country": pd.array(np.where(customers, rng.choice(COUNTRIES, n), None), dtype="str"),
            "loyalty_tier": pd.array(
                np.where(customers, rng.choice(["bronze", "silver", "gold"], n), None), dtype="str"
            ),
            "signup_at": AS_OF - pd.to_timedelta(tenure, unit="D"),
            "first_seen_at": AS_OF - pd.to_timedelta(tenure, unit="D"),
            "last_seen_at": AS_OF - pd.to_timedelta(seen_recency, unit="D"),
            "first_ordered_at": pd.NaT,
            "last_ordered_at": pd.NaT,
            "as_of": AS_OF,
            "tenure_days": tenure,
            "days_since_last_seen": seen_recency.astype(np.int64),
            "recency_days": _with_nulls(recency, has_orders, "Int64"),
            "order_count": orders,
            "completed_orders": completed,
            "order_count_7d": rng.binomial(orders, 0.03),
            "order_count_30d": rng.binomial(orders, 0.1),
            "web_orders": rng.binomial(orders, 0.7),
            "event_count": events,
            "event_count_7d": rng.binomial(events, np.clip(sessions_7d / sessions, 0, 1)),
            "event_count_30d": rng.binomial(events, np.clip(sessions_30d / sessions, 0, 1)),
            "event_count_90d": rng.binomial(events, np.clip(sessions_90d / sessions, 0, 1)),
            "event_count_last_hour": rng.poisson(0.01, n),
            "event_count_last_5_minutes": np.zeros(n, dtype=np.int64),
            "session_count": sessions,
            "session_count_7d": sessions_7d,
            "session_count_30d": sessions_30d,
            "session_count_90d": sessions_90d,
            "converted_sessions": np.minimum(orders, sessions),
            "page_views": page_views,
            "product_views": product_views,
            "product_views_7d": rng.binomial(product_views, 0.05),
            "content_page_views": content_views,
            "add_to_carts": add_to_carts,
            "add_to_carts_7d": rng.binomial(add_to_carts, 0.05),
            "abandoned_carts": abandoned,
            "abandoned_carts_30d": rng.binomial(abandoned, 0.15),
            "discounted_orders": rng.binomial(orders, discount),
            "filter_uses": rng.poisson(sessions * (0.2 + discount)),
            "price_filter_uses": rng.poisson(sessions * discount * 0.5),
            "device_types_used": rng.integers(1, 4, n),
            "lifetime_spend": np.where(has_orders, np.nan, np.round(spend, 2)),
            "avg_order_value": np.where(has_orders, np.nan, np.round(aov, 2)),
            "avg_price_viewed": np.round(rng.lognormal(4.0, 0.5, n), 2),
            "avg_price_bought": np.where(has_orders, np.nan, np.round(aov / 1.5, 2)),
            "avg_session_duration_seconds": rng.lognormal(5 + engagement * 0.05, 0.7, n),
            "pages_per_session": page_views / sessions,
            "avg_content_pages_per_session": content_views / sessions,
            "conversion_rate": np.minimum(orders, sessions) / sessions,
            "bounce_rate": rng.beta(2, 5 + engagement, n),
            "content_page_share": content_views / np.maximum(page_views, 1),
            "cart_abandonment_rate": np.where(
                add_to_carts > 0, abandoned / np.maximum(add_to_carts, 1), np.nan
            ),
            "abandoned_carts_per_session": abandoned / sessions,
            "discounted_order_share": np.where(has_orders, np.nan, discount),
            "price_filter_share": rng.beta(1 + 4 * discount, 4, n),
            "price_bought_to_viewed_ratio": np.where(
                has_orders, np.nan, rng.lognormal(-0.2, 0.3, n)
            ),
            "desktop_share": shares[:, 0],
            "mobile_share": shares[:, 1],
            "tablet_share": shares[:, 2],
            "top_category_viewed": pd.array(rng.choice(CATEGORIES, n), dtype="str"),
            "top_category_bought": pd.array(
                np.where(has_orders, None, rng.choice(CATEGORIES, n)), dtype="str"
            ),
            "primary_device_type": pd.array(rng.choice(DEVICES, n, p=[0.5, 0.4, 0.1]), dtype="str"),
        }
    )
    frame.attrs["persona"] = persona
    return frame


def churn_snapshots(n: int, snapshots: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1)
    _, engagement, buy, _ = _personas(rng, n)
    tier = rng.choice(
        np.array(["bronze", "silver", "gold", None], dtype=object), n, p=[0.3, 0.2, 0.1, 0.4]
    )
    country = rng.choice(COUNTRIES, n)
    device = rng.choice(DEVICES, n, p=[0.5, 0.4, 0.1])
    person_ids = pd.array([f"p{i:08d}" for i in range(n)], dtype="str")
    tenure0 = rng.integers(30, 1500, n)
    frames = []
    previous_sessions = rng.poisson(engagement * 4)
    # order history for the BTYD baselines and features: lifetime orders and the days since
    # the last one, carried from snapshot to snapshot
    lifetime_orders = rng.poisson(buy * engagement * 2 * tenure0 / 90)
    since_last_order = np.where(
        lifetime_orders > 0, rng.integers(0, np.maximum(tenure0, 1)), -1
    ).astype(np.int64)
    lifetime_spend = np.where(lifetime_orders > 0, lifetime_orders * rng.lognormal(4, 0.6, n), 0)
    for step in range(snapshots):
        snapshot_at = AS_OF - pd.DateOffset(months=snapshots - 1 - step)
        engagement = np.maximum(engagement * rng.lognormal(-0.05, 0.3, n), 0.01)
        sessions_30d = rng.poisson(engagement * 4)
        sessions_90d = sessions_30d + rng.poisson(engagement * 8)
        orders = rng.poisson(buy * engagement * 2)
        recency = np.round(rng.exponential(40 / (engagement + 0.1)))
        monetary = np.where(orders > 0, orders * rng.lognormal(4, 0.6, n), np.nan)
        trend = sessions_30d - previous_sessions
        previous_sessions = sessions_30d
        if step:
            ordered = orders > 0
            lifetime_orders = lifetime_orders + orders
            lifetime_spend = lifetime_spend + np.nan_to_num(monetary)
            since_last_order = np.where(
                ordered,
                rng.integers(0, 30, n),
                np.where(since_last_order >= 0, since_last_order + 30, -1),
            )
        logit = (
            -0.5
            + 0.02 * recency
            - 0.5 * np.log1p(sessions_30d)
            - 0.05 * trend
            - 0.3 * np.log1p(orders)
            - 0.6 * (tier == "gold")
        )
        churned = rng.random(n) < 1 / (1 + np.exp(-logit))
        label = pd.array(churned, dtype="boolean")
        if step == snapshots - 1:
            label[:] = pd.NA
        frames.append(
            pd.DataFrame(
                {
                    "person_id": person_ids,
                    "snapshot_at": snapshot_at,
                    "churned": label,
                    "churn_horizon_days": 90,
                    "tenure_days": tenure0 + 30 * step,
                    "days_since_first_activity": tenure0 + 30 * step,
                    "completed_orders": lifetime_orders,
                    "days_since_last_order": pd.array(
                        np.where(since_last_order >= 0, since_last_order, None), dtype="Int64"
                    ),
                    "lifetime_spend": np.round(lifetime_spend, 2),
                    "recency_days": recency.astype(np.int64),
                    "session_count_30d": sessions_30d,
                    "session_count_90d": sessions_90d,
                    "session_trend_30d": trend,
                    "event_count_30d": sessions_30d * 6 + rng.poisson(2, n),
                    "completed_orders_90d": orders,
                    "spend_90d": monetary,
                    "add_to_carts_30d": rng.poisson(engagement * 0.8),
                    "abandoned_carts_30d": rng.poisson(engagement * 0.3),
                    "avg_session_duration_seconds": rng.lognormal(5, 0.7, n),
                    "bounce_rate": rng.beta(2, 5, n),
                    "discounted_order_share": np.where(orders > 0, rng.random(n), np.nan),
                    "loyalty_tier": pd.array(tier, dtype="str"),
                    "country": pd.array(country, dtype="str"),
                    "primary_device_type": pd.array(device, dtype="str"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def run_clustering(persons: int, seed: int, steps: dict[str, Any]) -> dict[str, Any]:
    people = timed(steps, "synthesise_person_features", lambda: person_features(persons, seed))
    clusters = timed(steps, "clustering", lambda: fit_clusters(people, ClusteringConfig()))
    summary = clusters.summary()
    keep = ("estimator", "k", "silhouette", "davies_bouldin", "cluster_sizes")
    return {k: summary[k] for k in keep} | {"features": len(clusters.features.columns)}


def run_churn(
    persons: int, snapshot_dates: int, seed: int, steps: dict[str, Any]
) -> dict[str, Any]:
    snapshots = timed(
        steps,
        "synthesise_churn_snapshots",
        lambda: churn_snapshots(persons, snapshot_dates, seed),
    )
    config = ChurnConfig()
    training = timed(steps, "churn_training", lambda: train_churn_model(snapshots, config))
    scoring = latest_snapshot(snapshots, config)
    scores = timed(steps, "churn_scoring", lambda: score_churn(training.model, scoring, config))
    drift = timed(steps, "drift", lambda: feature_drift(training.model.drift_baseline, scoring))
    clv = timed(steps, "clv_fit_and_score", lambda: score_clv(fit_clv(scoring), scoring))
    candidates = training.candidates.set_index("candidate")
    metrics = ["roc_auc", "test_roc_auc", "pr_auc", "brier", "lift_top_decile"]
    return {
        "snapshot_rows": len(snapshots),
        "chosen": training.model.model_type,
        "candidates": candidates[metrics].round(4).to_dict(orient="index"),
        "train_rows": training.model.training_window["train_rows"],
        "rows_used_for_final_fit": training.model.training_window["rows_used_for_final_fit"],
        "scored_rows": len(scores),
        "at_risk_share": round(float(scores["is_at_risk"].mean()), 4),
        "drift": drift.summary(),
        "clv_rows": len(clv),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--snapshots", type=int, default=4, help="monthly dates, last unlabelled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only-churn", action="store_true", help="skip clustering (churn, drift, CLV only)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

    steps: dict[str, Any] = {}
    result: dict[str, Any] = {"persons": args.persons, "snapshots": args.snapshots}
    if not args.only_churn:
        result["clustering"] = run_clustering(args.persons, args.seed, steps)
        gc.collect()
    result["churn"] = run_churn(args.persons, args.snapshots, args.seed, steps)
    result["steps"] = steps
    result["clustering_plus_training_seconds"] = round(
        steps.get("clustering", {}).get("seconds", 0) + steps["churn_training"]["seconds"], 2
    )
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
