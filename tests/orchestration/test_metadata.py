"""Metadata as the UI prints it: metrics rounded, integers as integers."""

import math
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from orchestration.metadata import (
    UI_INLINE_MARKDOWN_CHARS,
    markdown_frame,
    png_metadata,
    rounded,
    tidy_metadata,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.8123456789012345, 0.8123),
        (1234.5678, 1235.0),
        (0.000123456, 0.0001235),
        (-0.98765, -0.9877),
        (2.0, 2.0),
        (0.0, 0.0),
    ],
)
def test_floats_are_rounded_to_four_significant_digits(value, expected):
    assert rounded(value) == expected


def test_metadata_values_keep_their_kind_and_lose_the_noise():
    tidy = tidy_metadata(
        {
            "k": np.int64(2),
            "silhouette": np.float64(0.31415926535897931),
            "share": 0.1 + 0.2,
            "promoted": np.bool_(True),
            "model_type": "logistic_regression",
            "missing": float("nan"),
            "Execution Duration": dg.MetadataValue.float(0.4292831230163574),  # dagster-dbt's
        }
    )
    assert tidy["k"] == 2 and type(tidy["k"]) is int
    assert tidy["silhouette"] == 0.3142 and type(tidy["silhouette"]) is float
    assert tidy["share"] == 0.3  # not 0.30000000000000004
    assert tidy["promoted"] is True
    assert tidy["model_type"] == "logistic_regression"
    assert math.isnan(tidy["missing"])
    assert tidy["Execution Duration"] == dg.MetadataValue.float(0.4293)


def test_markdown_tables_print_integer_columns_as_integers():
    # pandas' to_markdown(floatfmt=".4f") printed the k of a numeric frame as 2.0000
    frame = pd.DataFrame(
        {"k": [2, 3], "inertia": [1234.56789, 2.5], "silhouette": [0.123456789, 0.2]}
    )
    lines = markdown_frame(frame).value.splitlines()
    assert lines[0] == "| k | inertia | silhouette |"
    assert lines[2] == "| 2 | 1235 | 0.1235 |"
    assert lines[3] == "| 3 | 2.5 | 0.2 |"
    assert markdown_frame(frame.iloc[0:0]).value == "_none_"


def test_a_plot_is_a_short_link_to_the_runs_logs_or_inline_data_without_local_logs():
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 5000  # larger than the UI inlines as Markdown
    key = dg.AssetKey(["ml", "churn_model"])
    with dg.instance_for_test() as instance:  # local compute logs, as `dg dev` and `segwh run`
        linked = png_metadata(instance, "run-1", key, "roc_curve", "ROC curve", png)
        assert len(linked.value) < UI_INLINE_MARKDOWN_CHARS
        assert linked.value.endswith("(/logs/run-1/plots/ml__churn_model__roc_curve/png)")
        path = instance.compute_log_manager.get_captured_local_path(
            ["run-1", "plots", "ml__churn_model__roc_curve"], "png"
        )
        assert Path(path).read_bytes() == png  # the file the webserver's /logs/... serves
    embedded = png_metadata(dg.DagsterInstance.ephemeral(), "run-1", key, "roc", "ROC", png)
    assert "](data:image/png;base64," in embedded.value  # no local logs: behind [Show Markdown]
