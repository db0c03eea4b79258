"""PNG renderings of clustering results, for Dagster metadata or reports.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly: no pyplot
global state, no display, safe in worker threads.
"""

from __future__ import annotations

import io

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ml.clustering import ClusteringResult


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def selection_curve_png(curve: pd.DataFrame, chosen_k: int | None = None) -> bytes:
    """Elbow (inertia per k) and silhouette / Davies-Bouldin per k, the chosen k marked."""
    figure = Figure(figsize=(9, 3.5))
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
    figure = Figure(figsize=(6.5, 5))
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
