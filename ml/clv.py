"""Customer lifetime value: BG/NBD expected orders x Gamma-Gamma expected order value.

``fit_clv`` fits both models (``ml.btyd``) on one snapshot's rows: each person's order count,
days since the last order, days since the first activity (the birth) and lifetime spend, as of
that snapshot. ``predict_clv`` gives per person the expected completed orders in the next
``ClvConfig.horizon_days``, the expected value of an order (the person's own mean, shrunk
towards the population's by the Gamma-Gamma model; the population mean without orders) and
their product, the CLV over the horizon (undiscounted: the default horizon is one quarter).

``backtest_clv`` measures it the only honest way: fit at the snapshot ``horizon_days`` before
the latest one, predict, and compare with the spend each person actually made in between (the
difference of their lifetime spend in the two snapshots; a person missing from the later
snapshot spent nothing). It reports MAE, Pearson and Spearman correlation, mean predicted and
mean actual value, and the share of the actual value made by the predicted top decile (against
the share the actual top decile made: the ceiling).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml import btyd
from ml.btyd import BtydParams, GammaGammaParams
from ml.churn import btyd_inputs
from ml.config import ClvConfig
from ml.preprocessing import sample_indices, to_float
from ml.schemas import CLV_COLUMNS

log = logging.getLogger(__name__)


class InsufficientClvHistoryError(ValueError):
    """The snapshots cannot support a CLV fit or backtest."""


@dataclass(frozen=True)
class ClvModel:
    purchases: BtydParams
    spend: GammaGammaParams
    horizon_days: int
    fitted_at: pd.Timestamp
    """The snapshot the models were fitted on."""

    @property
    def version(self) -> str:
        """``clv-<fit date>-<8 hex digits of the parameters>``: changes when the fit does."""
        payload = json.dumps(
            [self.purchases.to_dict(), self.spend.to_dict(), self.horizon_days], sort_keys=True
        )
        digest = hashlib.sha256(payload.encode()).hexdigest()[:8]
        return f"clv-{self.fitted_at:%Y%m%d}-{digest}"

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "bg_nbd": self.purchases.to_dict(),
            "gamma_gamma": self.spend.to_dict(),
            "horizon_days": self.horizon_days,
            "fitted_at": self.fitted_at.isoformat(),
        }


def _mean_order_value(frame: pd.DataFrame, config: ClvConfig, orders: np.ndarray) -> np.ndarray:
    spend = np.nan_to_num(to_float(frame[config.spend_column]), nan=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(orders > 0, spend / orders, np.nan)


def _inputs(frame: pd.DataFrame, config: ClvConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inputs = btyd_inputs(frame, config)
    if inputs is None or config.spend_column not in frame.columns:
        raise InsufficientClvHistoryError(
            f"CLV needs the columns {config.orders_column}, {config.recency_column}, "
            f"{config.age_column} and {config.spend_column}"
        )
    return inputs


def fit_clv(rows: pd.DataFrame, config: ClvConfig | None = None) -> ClvModel:
    """BG/NBD and Gamma-Gamma fitted on ``rows`` (one snapshot: one row per person; at most
    ``config.fit_sample_size`` of them)."""
    config = config or ClvConfig()
    if rows.empty:
        raise InsufficientClvHistoryError("no persons to fit a CLV model on")
    rows = rows.iloc[sample_indices(len(rows), config.fit_sample_size, config.random_state)]
    x, t_x, T = _inputs(rows, config)
    purchases = btyd.fit("bg_nbd", x, t_x, T)
    try:
        spend = btyd.fit_gamma_gamma(x, _mean_order_value(rows, config, x))
    except ValueError as exc:
        raise InsufficientClvHistoryError(str(exc)) from exc
    fitted_at = pd.Timestamp(pd.to_datetime(rows[config.snapshot_column]).max())
    return ClvModel(purchases, spend, config.horizon_days, fitted_at)


def predict_clv(
    model: ClvModel, rows: pd.DataFrame, config: ClvConfig | None = None
) -> pd.DataFrame:
    """person_id, expected_orders, expected_order_value, p_alive, clv (one row per row)."""
    config = config or ClvConfig()
    x, t_x, T = _inputs(rows, config)
    orders = btyd.expected_purchases(model.purchases, model.horizon_days, x, t_x, T)
    value = btyd.expected_mean_value(model.spend, x, _mean_order_value(rows, config, x))
    return pd.DataFrame(
        {
            "person_id": rows[config.id_column].to_numpy(),
            "expected_orders": orders,
            "expected_order_value": value,
            "p_alive": btyd.probability_alive(model.purchases, x, t_x, T),
            "clv": orders * value,
        }
    )


def top_share_flags(values: np.ndarray, share: float) -> np.ndarray:
    """True for the ceil(share x n) largest values (ties at the boundary broken by order)."""
    values = np.asarray(values, dtype=np.float64)
    flags = np.zeros(len(values), dtype=bool)
    if len(values):
        flags[np.argsort(-values, kind="stable")[: max(1, math.ceil(share * len(values)))]] = True
    return flags


def score_clv(
    model: ClvModel, rows: pd.DataFrame, config: ClvConfig | None = None, *, as_of: Any = None
) -> pd.DataFrame:
    """The rows of the published table (``ml.schemas.CLV_COLUMNS``, in that order)."""
    config = config or ClvConfig()
    scores = predict_clv(model, rows, config)
    if as_of is None:
        column = "as_of" if "as_of" in rows.columns else config.snapshot_column
        as_of = pd.to_datetime(rows[column]).max()
    scores["is_top_value"] = top_share_flags(scores["clv"].to_numpy(), config.top_share)
    scores["horizon_days"] = int(model.horizon_days)
    scores["model_version"] = model.version
    scores["as_of"] = pd.Timestamp(as_of)
    return scores[list(CLV_COLUMNS)]


def backtest_clv(snapshots: pd.DataFrame, config: ClvConfig | None = None) -> dict[str, Any]:
    """Fit at (latest snapshot - horizon), predict, compare with the spend made until the latest
    snapshot. Raises ``InsufficientClvHistoryError`` without such a pair of snapshots."""
    config = config or ClvConfig()
    times = pd.to_datetime(snapshots[config.snapshot_column])
    latest = times.max()
    start = latest - pd.Timedelta(days=config.horizon_days)
    if not (times == start).any():
        raise InsufficientClvHistoryError(
            f"no snapshot at {start} ({config.horizon_days} days before the latest): the "
            "backtest needs one (horizon_days a multiple of the snapshot interval, and history)"
        )
    before = snapshots.loc[times == start]
    after = snapshots.loc[times == latest]
    model = fit_clv(before, config)
    predicted = predict_clv(model, before, config)
    spend_before = pd.Series(
        np.nan_to_num(to_float(before[config.spend_column])), index=before[config.id_column]
    )
    spend_after = pd.Series(
        np.nan_to_num(to_float(after[config.spend_column])), index=after[config.id_column]
    )
    ids = predicted["person_id"]
    actual = np.clip(
        spend_after.reindex(ids).fillna(spend_before.reindex(ids)).to_numpy()
        - spend_before.reindex(ids).to_numpy(),
        0.0,
        None,
    )
    clv = predicted["clv"].to_numpy()
    total = actual.sum()
    top_predicted = top_share_flags(clv, 0.1)
    top_actual = top_share_flags(actual, 0.1)
    result = {
        "fitted_at": start.isoformat(),
        "actual_until": latest.isoformat(),
        "horizon_days": config.horizon_days,
        "persons": len(actual),
        "mae": float(np.mean(np.abs(clv - actual))),
        "mae_predicting_zero": float(np.mean(actual)),
        "pearson": float(np.corrcoef(clv, actual)[0, 1]) if actual.std() and clv.std() else 0.0,
        "spearman": float(pd.Series(clv).corr(pd.Series(actual), method="spearman")),
        "mean_predicted": float(clv.mean()),
        "mean_actual": float(actual.mean()),
        "top_decile_capture": float(actual[top_predicted].sum() / total) if total else 0.0,
        "top_decile_capture_ceiling": float(actual[top_actual].sum() / total) if total else 0.0,
    }
    log.info("CLV backtest: %s", result)
    return result
