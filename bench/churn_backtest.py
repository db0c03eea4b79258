"""Side-by-side churn backtests: BG/NBD, MBG/NBD, a plain logistic regression on order features,
the supervised candidates and the calibrated chosen model, on two backtest dates.

    .venv/bin/python bench/churn_backtest.py [--warehouse data/warehouse.duckdb] [--dates 2]

Reads marts.churn_snapshots (a warehouse after a full run, e.g. `make quickstart`). Backtest 1
is the training run itself: test = the latest labelled snapshot, validation = the one before,
train = the earlier ones. Backtest k moves everything k-1 snapshots back: the labels of the
later snapshots are dropped (they would not have been known then), so the test snapshot of
backtest 2 is the validation snapshot of backtest 1. Prints a markdown table per date plus the
CLV backtest at the same dates.
"""

from __future__ import annotations

import argparse
import logging

import duckdb
import pandas as pd

from ml.churn import train_churn_model
from ml.clv import backtest_clv
from ml.config import ChurnConfig

COLUMNS = [
    "candidate",
    "kind",
    "roc_auc",
    "test_roc_auc",
    "test_pr_auc",
    "test_brier",
    "test_mean_predicted",
    "test_base_rate",
]


def backtest(snapshots: pd.DataFrame, back: int) -> tuple[pd.DataFrame, dict, dict]:
    labelled = sorted(snapshots.loc[snapshots["churned"].notna(), "snapshot_at"].unique())
    dates = sorted(snapshots["snapshot_at"].unique())
    frame = snapshots
    if back:
        last = labelled[-1 - back]
        frame = snapshots.loc[snapshots["snapshot_at"] <= dates[-1 - back]].copy()
        frame.loc[frame["snapshot_at"] > last, "churned"] = pd.NA
    result = train_churn_model(frame, ChurnConfig())
    try:
        clv = backtest_clv(frame)
    except ValueError as exc:
        clv = {"error": str(exc)}
    return result.candidates, result.model.training_window, clv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", default="data/warehouse.duckdb")
    parser.add_argument("--dates", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with duckdb.connect(args.warehouse, read_only=True) as con:
        snapshots = con.execute("SELECT * FROM marts.churn_snapshots").df()
    for back in range(args.dates):
        candidates, window, clv = backtest(snapshots, back)
        print(
            f"\n### test snapshot {window['test_snapshot_dates']}, validation "
            f"{window['validation_snapshot_date']}, train {len(window['train_snapshot_dates'])} "
            f"dates, {window['validation_rows']} / {window['test_rows']} rows\n"
        )
        print(candidates[COLUMNS].round(4).to_markdown(index=False))
        print(f"\nCLV backtest: {clv}")


if __name__ == "__main__":
    main()
