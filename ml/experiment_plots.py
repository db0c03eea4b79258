"""Lift with confidence intervals, per experiment and metric, as a PNG (asset metadata)."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from ml.plots import DPI, _png


def lift_intervals_png(results: pd.DataFrame) -> bytes:
    """One row of panels per experiment, one panel per metric: each treatment variant's relative
    lift against control (CUPED-adjusted lift / control mean) with its 95 % interval, the zero
    line, and the status in the title; blocked experiments say so instead of showing a lift."""
    treatments = results[~results["is_control"]]
    experiments = list(dict.fromkeys(treatments["experiment_key"]))
    metrics = list(dict.fromkeys(treatments["metric"]))
    rows, columns = max(len(experiments), 1), max(len(metrics), 1)
    figure = Figure(figsize=(2.6 * columns + 0.6, 1.3 * rows + 0.6))
    axes = figure.subplots(rows, columns, squeeze=False)
    for i, experiment in enumerate(experiments):
        for j, metric in enumerate(metrics):
            axis = axes[i][j]
            part = treatments[
                (treatments["experiment_key"] == experiment) & (treatments["metric"] == metric)
            ]
            axis.axvline(0.0, color="grey", linewidth=0.8)
            axis.set_yticks(range(len(part)), list(part["variant"]), fontsize="x-small")
            axis.tick_params(axis="x", labelsize="x-small")
            status = part["status"].iloc[0] if len(part) else ""
            title = f"{experiment}\n{metric}" if j == 0 else f"\n{metric}"
            axis.set_title(title, fontsize="x-small", loc="left")
            for k, row in enumerate(part.itertuples(index=False)):
                mean0 = row.control_mean
                if row.is_srm_blocked or not mean0 or math.isnan(row.cuped_absolute_lift):
                    axis.text(0.0, k, f"  {status}", fontsize="x-small", va="center")
                    continue
                lift = row.cuped_absolute_lift / mean0
                low, high = row.cuped_ci_low / mean0, row.cuped_ci_high / mean0
                colour = "tab:green" if row.is_significant else "tab:blue"
                axis.errorbar(
                    lift, k, xerr=[[lift - low], [high - lift]], fmt="o", color=colour, capsize=3
                )
                axis.text(high, k, f" {row.status}", fontsize="xx-small", va="center")
            axis.set_ylim(-0.8, max(len(part) - 0.2, 0.8))
    figure.suptitle("Relative lift vs control (CUPED), 95 % interval", fontsize="small")
    figure.tight_layout()
    return _png(figure, DPI)
