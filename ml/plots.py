"""PNG renderings for Dagster metadata or reports: clustering results, the churn model's
validation (ROC curve, reliability diagram, score histogram), and small time series (segment
sizes over runs, the funnel per day, events per day) of tables the caller reads.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly: no pyplot
global state, no display, safe in worker threads. They are kept small (a few hundred pixels
wide, tens of kB) so that many runs' worth fit in the run storage.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from ml.clustering import ClusteringResult

# what the small plots are drawn at: (width, height) in inches at DPI dots per inch
SMALL = (5.0, 3.2)
DPI = 80
# time series with more points than this are drawn as plain lines
MAX_MARKED_POINTS = 40


def _png(figure: Figure, dpi: int = DPI) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def selection_curve_png(curve: pd.DataFrame, chosen_k: int | None = None) -> bytes:
    """Elbow (inertia per k) and silhouette / Davies-Bouldin per k, the chosen k marked."""
    figure = Figure(figsize=(7, 3))
    elbow, quality = figure.subplots(1, 2)
    elbow.plot(curve["k"], curve["inertia"], marker="o")
    elbow.set(title="Elbow (inertia on the selection sample)", xlabel="k", ylabel="inertia")
    quality.plot(curve["k"], curve["silhouette"], marker="o", label="silhouette (higher better)")
    quality.plot(
        curve["k"], curve["davies_bouldin"], marker="s", label="Davies-Bouldin (lower better)"
    )
    quality.set(title="Cluster quality", xlabel="k")
    quality.legend(loc="best", fontsize="small")
    if chosen_k is not None:
        for axis in (elbow, quality):
            axis.axvline(chosen_k, color="grey", linestyle="--", linewidth=1)
    figure.tight_layout()
    return _png(figure)


def projection_png(projection: pd.DataFrame, names: dict[int, str] | None = None) -> bytes:
    """Scatter of the 2-D PCA projection sample, one colour per cluster."""
    figure = Figure(figsize=(6.5, 4.5))
    axis = figure.subplots()
    for index, cluster in enumerate(sorted(projection["cluster_id"].unique())):
        rows = projection["cluster_id"] == cluster
        label = f"{cluster}: {names[cluster]}" if names and cluster in names else str(cluster)
        axis.scatter(
            projection.loc[rows, "pc1"],
            projection.loc[rows, "pc2"],
            s=6,
            alpha=0.6,
            color=f"C{index % 10}",
            label=label[:60],
        )
    axis.set(title="Clusters on the first two principal components", xlabel="PC1", ylabel="PC2")
    if len(projection):
        axis.legend(loc="best", fontsize="x-small", markerscale=2)
    figure.tight_layout()
    return _png(figure)


def clustering_pngs(result: ClusteringResult) -> dict[str, bytes]:
    """{"selection_curve": png, "projection": png} for one clustering result."""
    names = dict(zip(result.profiles["cluster_id"], result.profiles["name"], strict=True))
    return {
        "selection_curve": selection_curve_png(result.selection_curve, result.k),
        "projection": projection_png(result.projection, {int(k): v for k, v in names.items()}),
    }


def roc_curve_png(labels: np.ndarray, probability: np.ndarray) -> bytes:
    """ROC curve of a binary classifier on held-out rows, with its AUC and the chance line."""
    false_positive, true_positive, _ = roc_curve(labels, probability)
    auc = roc_auc_score(labels, probability)
    figure = Figure(figsize=(4, 3.6))
    axis = figure.subplots()
    axis.plot(false_positive, true_positive, color="C0", label=f"model (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    axis.set(
        title="ROC curve (validation snapshot)",
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    axis.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    return _png(figure, DPI)


def roc_curves_png(labels: np.ndarray, scores: dict[str, np.ndarray], where: str) -> bytes:
    """ROC curves of several churn scores on the same rows (candidates and baselines side by
    side), each with its AUC."""
    figure = Figure(figsize=(4.6, 4.0))
    axis = figure.subplots()
    for index, (name, score) in enumerate(scores.items()):
        false_positive, true_positive, _ = roc_curve(labels, score)
        auc = roc_auc_score(labels, score)
        axis.plot(
            false_positive,
            true_positive,
            color=f"C{index}",
            linewidth=1.2,
            label=f"{name} ({auc:.3f})",
        )
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    axis.set(
        title=f"ROC curves ({where} snapshot)",
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    axis.legend(loc="lower right", fontsize="x-small")
    figure.tight_layout()
    return _png(figure, DPI)


def reliability_png(raw: pd.DataFrame, calibrated: pd.DataFrame, where: str) -> bytes:
    """Reliability diagram before and after calibration (``calibration_table`` deciles)."""
    figure = Figure(figsize=(4, 3.6))
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for table, name, color in ((raw, "raw", "C0"), (calibrated, "calibrated", "C1")):
        axis.plot(
            table["mean_predicted"],
            table["observed_rate"],
            marker="o",
            color=color,
            label=f"{name} (one point per decile)",
        )
    axis.set(
        title=f"Calibration ({where} snapshot)",
        xlabel="mean predicted churn probability",
        ylabel="observed churn rate",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return _png(figure, DPI)


def calibration_png(calibration: pd.DataFrame) -> bytes:
    """Reliability diagram: observed churn rate against mean predicted probability per bin
    (columns mean_predicted, observed_rate, rows), the diagonal being perfect calibration."""
    figure = Figure(figsize=(4, 3.6))
    axis = figure.subplots()
    top = float(max(calibration["mean_predicted"].max(), calibration["observed_rate"].max(), 0.05))
    axis.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect")
    axis.plot(
        calibration["mean_predicted"],
        calibration["observed_rate"],
        marker="o",
        color="C1",
        label="model (one point per decile)",
    )
    axis.set(
        title="Calibration (validation snapshot)",
        xlabel="mean predicted churn probability",
        ylabel="observed churn rate",
    )
    axis.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    return _png(figure, DPI)


def score_histogram_png(
    labels: np.ndarray, probability: np.ndarray, threshold: float | None = None
) -> bytes:
    """Histogram of predicted probabilities, churned and retained rows apart; the at-risk
    threshold marked."""
    labels = np.asarray(labels)
    probability = np.asarray(probability, dtype=float)
    figure = Figure(figsize=SMALL)
    axis = figure.subplots()
    bins = np.linspace(0, 1, 21)
    for value, name, color in ((0, "retained", "C0"), (1, "churned", "C3")):
        axis.hist(
            probability[labels == value],
            bins=bins,
            alpha=0.6,
            color=color,
            label=f"{name} ({int((labels == value).sum())})",
        )
    if threshold is not None:
        axis.axvline(threshold, color="black", linestyle="--", linewidth=1, label="at-risk from")
    axis.set(
        title="Churn scores by outcome (validation snapshot)",
        xlabel="predicted churn probability",
        ylabel="persons",
    )
    axis.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return _png(figure, DPI)


def lines_over_time_png(
    frame: pd.DataFrame,
    *,
    time: str,
    series: str,
    panels: dict[str, str],
    title: str,
    max_series: int = 8,
) -> bytes:
    """One panel per ``panels`` item (column -> y label): a line per value of ``series`` over
    ``time``, markers on each point (a single run is a dot). Only the ``max_series`` series
    largest at the last time are drawn, the legend says how many are left out."""
    figure = Figure(figsize=(3.4 * len(panels) + 0.8, 3.0))
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    latest = frame.loc[frame[time] == frame[time].max()]
    first_panel = next(iter(panels))
    ordered = latest.sort_values(first_panel, ascending=False)[series].tolist()
    ordered += sorted(set(frame[series]) - set(ordered))
    shown = ordered[:max_series]
    # a marker per point while they can be told apart (a single run is a dot)
    marker = "o" if frame[time].nunique() <= MAX_MARKED_POINTS else None
    for axis, (column, label) in zip(axes, panels.items(), strict=True):
        for index, name in enumerate(shown):
            rows = frame.loc[frame[series] == name].sort_values(time)
            axis.plot(
                rows[time],
                rows[column],
                marker=marker,
                markersize=3,
                linewidth=1,
                color=f"C{index}",
                label=name,
            )
        axis.set(xlabel=time.replace("_", " "), ylabel=label)
        _date_axis(axis)
    hidden = len(ordered) - len(shown)
    axes[-1].legend(
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize="x-small",
        title=f"+{hidden} smaller" if hidden else None,
        title_fontsize="x-small",
    )
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    return _png(figure, DPI)


def _date_axis(axis) -> None:
    """Few, short date labels (2026, Feb, Mar, ... rather than one full date per tick)."""
    locator = AutoDateLocator(maxticks=7)
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axis.tick_params(axis="x", labelsize="small")


def daily_bars_png(daily: pd.DataFrame, *, day: str, value: str, title: str, ylabel: str) -> bytes:
    """Bars of ``value`` per ``day``."""
    figure = Figure(figsize=(6.5, 3.2))
    axis = figure.subplots()
    axis.bar(pd.to_datetime(daily[day]), daily[value], width=0.8, color="C0")
    axis.set(title=title, xlabel=day.replace("_", " "), ylabel=ylabel)
    _date_axis(axis)
    figure.tight_layout()
    return _png(figure, DPI)


def recommendation_metrics_png(metrics: pd.DataFrame) -> bytes:
    """Grouped bars of the backtest's @10 metrics per recommendation model (baselines first)."""
    names = ["precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10"]
    figure = Figure(figsize=SMALL)
    axis = figure.subplots()
    width = 0.8 / max(len(metrics), 1)
    positions = np.arange(len(names))
    for offset, (_, row) in enumerate(metrics.iterrows()):
        axis.bar(
            positions + offset * width,
            [row[name] for name in names],
            width,
            label=str(row["model"]),
        )
    axis.set_xticks(positions + width * (len(metrics) - 1) / 2, [n[:-6] for n in names])
    axis.set(title="recommendations, time-split backtest (@10)", ylabel="mean per person")
    axis.legend(fontsize="small")
    figure.tight_layout()
    return _png(figure, DPI)


def recommendation_diversity_png(metrics: pd.DataFrame) -> bytes:
    """Catalogue coverage and the share of popular products per recommendation model."""
    figure = Figure(figsize=SMALL)
    axis = figure.subplots()
    positions = np.arange(len(metrics))
    axis.bar(positions - 0.2, metrics["coverage"], 0.4, label="catalogue coverage")
    axis.bar(positions + 0.2, metrics["popular_share"], 0.4, label="popular-product share")
    axis.set_xticks(positions, metrics["model"].astype(str), fontsize="small")
    axis.set(title="recommendations: coverage and popularity", ylim=(0, 1.05))
    axis.legend(fontsize="small")
    figure.tight_layout()
    return _png(figure, DPI)
