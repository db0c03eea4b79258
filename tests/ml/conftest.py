"""Small synthetic tables for the ml unit tests (seconds, not minutes)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs


def blob_frame(
    centers: np.ndarray, sizes: list[int], seed: int = 0, std: float = 1.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """person_features-like frame with planted clusters around ``centers`` (one per size)."""
    X, y = make_blobs(
        n_samples=sizes, centers=centers, cluster_std=std, random_state=seed, shuffle=True
    )
    frame = pd.DataFrame(X, columns=[f"feature_{i}" for i in range(X.shape[1])])
    frame.insert(0, "person_id", [f"p{seed:02d}-{i:06d}" for i in range(len(frame))])
    frame["as_of"] = pd.Timestamp("2026-11-01", tz="UTC")
    return frame, y


FIVE_CENTERS = np.array(
    [
        [0.0, 0.0, 0.0, 0.0],
        [12.0, 0.0, 0.0, 0.0],
        [0.0, 12.0, 0.0, 0.0],
        [0.0, 0.0, 12.0, 0.0],
        [0.0, 0.0, 0.0, 12.0],
    ]
)


@pytest.fixture
def blobs() -> Callable[..., tuple[pd.DataFrame, np.ndarray]]:
    return blob_frame


def churn_snapshots(
    n_persons: int = 600,
    n_labelled: int = 3,
    seed: int = 0,
    signal: float = 1.0,
) -> pd.DataFrame:
    """Monthly snapshots of the same people; the last one is unlabelled (scoring).

    Churn depends on recency (+), recent sessions (-) and loyalty tier, times ``signal``
    (0: pure noise).
    """
    rng = np.random.default_rng(seed)
    engagement = rng.gamma(2.0, 1.0, n_persons)
    tier = rng.choice(
        np.array(["gold", "silver", None], dtype=object), n_persons, p=[0.2, 0.5, 0.3]
    )
    country = rng.choice(["DE", "FR", "NL"], n_persons)
    frames = []
    start = pd.Timestamp("2026-06-01", tz="UTC")
    for step in range(n_labelled + 1):
        snapshot_at = start + pd.DateOffset(months=step)
        sessions_30d = rng.poisson(engagement * 3)
        recency_days = np.round(rng.exponential(30 / (engagement + 0.2))).astype(int)
        orders = rng.poisson(engagement)
        monetary = np.where(orders > 0, orders * rng.lognormal(3.5, 0.6, n_persons), np.nan)
        logit = signal * (0.04 * recency_days - 0.35 * sessions_30d - 1.0 * (tier == "gold")) + 0.3
        churned = rng.random(n_persons) < 1 / (1 + np.exp(-logit))
        labels = pd.array(churned, dtype="boolean")
        if step == n_labelled:
            labels[:] = pd.NA
        frames.append(
            pd.DataFrame(
                {
                    "person_id": [f"p{i:05d}" for i in range(n_persons)],
                    "snapshot_at": snapshot_at,
                    "snapshot_number": n_labelled - step,  # as in the churn_snapshots mart
                    "churned": labels,
                    "session_count_30d": sessions_30d,
                    "recency_days": pd.array(recency_days, dtype="Int64"),
                    "order_count": orders,
                    "lifetime_spend": monetary,
                    "country": country,
                    "loyalty_tier": pd.Series(tier, dtype="str"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def snapshots() -> Callable[..., pd.DataFrame]:
    return churn_snapshots


@pytest.fixture
def centers() -> np.ndarray:
    """Five well separated centres in 4-D; tests take the first four or all five."""
    return FIVE_CENTERS.copy()


def person_features(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """A person_features-like table with the awkward dtypes the warehouse hands over."""
    rng = np.random.default_rng(seed)
    orders = rng.poisson(0.4, n) * rng.integers(1, 40, n)
    return pd.DataFrame(
        {
            "person_id": [f"p{i}" for i in range(n)],
            "customer_id": pd.Series([f"c{i}" if i % 3 else None for i in range(n)], dtype="str"),
            "is_customer": rng.random(n) > 0.4,
            "anonymous_id_count": rng.integers(1, 4, n),
            "signup_at": pd.Timestamp("2025-01-01", tz="UTC"),
            "last_seen_at": pd.to_datetime("2026-10-01", utc=True)
            - pd.to_timedelta(rng.integers(0, 90, n), unit="D"),
            "as_of": pd.Timestamp("2026-11-01", tz="UTC"),
            "recency_days": pd.array(
                [
                    int(x) if o else None
                    for x, o in zip(rng.integers(0, 300, n), orders, strict=True)
                ],
                dtype="Int64",
            ),
            "order_count": pd.array(orders, dtype="Int64"),
            "lifetime_spend": [
                Decimal(f"{x:.2f}") if o else None
                for x, o in zip(rng.lognormal(4, 1, n), orders, strict=True)
            ],
            "event_count_30d": rng.negative_binomial(1, 0.02, n),
            "bounce_rate": rng.random(n),
            "country": pd.Series(rng.choice(["DE", "FR", "NL", "BE"], n), dtype="str"),
            "loyalty_tier": pd.Series([None] * n, dtype="str"),
            "top_category_bought": pd.Series([None] * n, dtype=object),
            "avg_price_bought": np.nan,
            "tenure_days": 1,
        }
    )


@pytest.fixture(scope="session")
def person_table() -> Callable[..., pd.DataFrame]:
    return person_features


def activity_snapshots(
    n_persons: int = 3000, seed: int = 0, n_snapshots: int = 9, days: int = 420
) -> pd.DataFrame:
    """Snapshots shaped like marts.churn_snapshots (same column names), simulated day by day.

    Each person is born on a random day, starts sessions at a personal daily rate, orders in a
    personal share of sessions (spend per order Gamma-distributed around a personal mean) and
    drops out after an exponential lifetime; engaged visitors (many sessions) stay longer. So
    sessions carry information the order history alone (what a BTYD model sees) lacks.
    Snapshots every 30 days back from the last day (snapshot_number 0); a snapshot is labelled
    when 90 days have passed: churned = no session and no order in the 90 days after it.
    """
    rng = np.random.default_rng(seed)
    birth = rng.integers(0, days - 60, n_persons)
    session_rate = rng.gamma(1.5, 0.06, n_persons)
    lifetime = rng.exponential(40 + 1500 * session_rate)
    order_share = rng.beta(1.0, 5.0, n_persons)
    order_value = rng.gamma(4.0, 15.0, n_persons)
    day = np.arange(days)
    alive = (day[None, :] >= birth[:, None]) & (day[None, :] < (birth + lifetime)[:, None])
    sessions = rng.poisson(session_rate[:, None] * alive)
    orders = rng.binomial(sessions, order_share[:, None])
    spend = rng.gamma(np.maximum(orders, 1) * 4.0, order_value[:, None] / 4.0) * (orders > 0)
    active = (sessions > 0) | (orders > 0)
    cum_sessions, cum_orders, cum_spend = (np.cumsum(m, axis=1) for m in (sessions, orders, spend))

    def last_day(mask: np.ndarray) -> np.ndarray:
        return np.maximum.accumulate(np.where(mask, day[None, :], -1), axis=1)

    last_session, last_order, last_activity = (
        last_day(m) for m in (sessions > 0, orders > 0, active)
    )
    first_activity = np.where(active.any(axis=1), active.argmax(axis=1), days)
    as_of = pd.Timestamp("2026-11-01")
    frames = []
    for number in range(n_snapshots):
        d = days - 1 - 30 * number
        present = last_activity[:, d] >= 0
        labelled = 30 * number >= 90
        future = active[:, d + 1 : d + 91].any(axis=1) if labelled else None

        def window(cum: np.ndarray, width: int, d: int = d) -> np.ndarray:
            return cum[:, d] - (cum[:, d - width] if d - width >= 0 else 0)

        frame = pd.DataFrame(
            {
                "person_id": [f"p{i:05d}" for i in range(n_persons)],
                "snapshot_at": as_of - pd.Timedelta(days=30 * number),
                "snapshot_number": number,
                "churned": pd.array(~future if labelled else [pd.NA] * n_persons, dtype="boolean"),
                "churn_horizon_days": 90,
                "days_since_last_activity": d - last_activity[:, d],
                "days_since_last_session": pd.array(
                    np.where(last_session[:, d] >= 0, d - last_session[:, d], -1), dtype="Int32"
                ),
                "days_since_last_order": pd.array(
                    np.where(last_order[:, d] >= 0, d - last_order[:, d], -1), dtype="Int32"
                ),
                "days_since_first_activity": d - first_activity,
                "session_count": cum_sessions[:, d],
                "session_count_30d": window(cum_sessions, 30),
                "session_count_90d": window(cum_sessions, 90),
                "completed_orders": cum_orders[:, d],
                "completed_orders_90d": window(cum_orders, 90),
                "lifetime_spend": cum_spend[:, d].round(2),
                "spend_90d": window(cum_spend, 90).round(2),
                "as_of": as_of,
            }
        )
        for column in ("days_since_last_session", "days_since_last_order"):
            frame.loc[frame[column] < 0, column] = pd.NA
        frames.append(frame.loc[present])
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def activity() -> Callable[..., pd.DataFrame]:
    return activity_snapshots
