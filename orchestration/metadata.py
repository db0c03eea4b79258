"""Asset metadata helpers: what the UI shows after a materialization.

NumPy and pandas are imported by the helpers that handle their values (a step that made them
has imported them already): loading the code location imports neither."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb

# Not exported by dagster: the compute log manager of a default instance, whose files the
# webserver serves (see png_metadata).
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

if TYPE_CHECKING:
    import pandas as pd

# The team that owns every asset of this code location (shown in the UI).
OWNER = "team:data-platform"
# Metrics are shown to this many significant digits (the UI prints a float's every digit).
SIGNIFICANT_DIGITS = 4


def rounded(value: float) -> float:
    """``value`` to SIGNIFICANT_DIGITS significant digits (0.812345678 -> 0.8123, 1234.5678 ->
    1235.0); nan and infinities unchanged."""
    if not math.isfinite(value) or value == 0:
        return float(value)
    return round(float(value), SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


def tidy_value(value: object) -> object:
    """A metadata value as the UI should print it: floats (and float MetadataValues) rounded
    (``rounded``), NumPy integers and booleans as Python ones; anything else unchanged."""
    import numpy as np

    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return rounded(float(value))
    if isinstance(value, dg.FloatMetadataValue) and value.value is not None:
        return dg.MetadataValue.float(rounded(value.value))
    return value


def tidy_metadata(metadata: Mapping[str, object]) -> dict[str, object]:
    """``metadata`` with every value passed through ``tidy_value``."""
    return {key: tidy_value(value) for key, value in metadata.items()}


def format_number(value: object) -> str:
    """A cell of a Markdown table: integers (and integral floats of integer columns) without
    decimals, floats to SIGNIFICANT_DIGITS significant digits, never in exponent notation."""
    value = tidy_value(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    import numpy as np

    return np.format_float_positional(value, trim="-")


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, dg.MetadataValue]:
    """Row count, column schema and location of a warehouse table (``schema.table``)."""
    schema, name = table.split(".", 1)
    columns = con.execute(
        """SELECT column_name, data_type, is_nullable = 'YES'
        FROM information_schema.columns
        WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?
        ORDER BY ordinal_position""",
        [schema, name],
    ).fetchall()
    row_count = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
    return {
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "dagster/table_name": dg.MetadataValue.text(table),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        column, data_type, constraints=dg.TableColumnConstraints(nullable=nullable)
                    )
                    for column, data_type, nullable in columns
                ]
            )
        ),
    }


def markdown_table(rows: Sequence[Mapping[str, object]]) -> dg.MetadataValue:
    """A small Markdown table from a list of dicts with the same keys."""
    if not rows:
        return dg.MetadataValue.md("_none_")
    headers = list(rows[0])
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
        *("| " + " | ".join(format_number(row[h]) for h in headers) + " |" for row in rows),
    ]
    return dg.MetadataValue.md("\n".join(lines))


def markdown_frame(frame: pd.DataFrame) -> dg.MetadataValue:
    """A small Markdown table of ``frame`` (``markdown_table``: integer columns as integers)."""
    import pandas as pd

    rows = [
        {
            column: (int(value) if pd.api.types.is_integer_dtype(frame[column]) else value)
            for column, value in zip(frame.columns, record, strict=True)
        }
        for record in frame.itertuples(index=False, name=None)
    ]
    if not rows:
        return dg.MetadataValue.md("_none_")
    return markdown_table(rows)


# The UI renders Markdown metadata inline below this many characters, else behind a
# "[Show Markdown]" link (MetadataEntry.tsx of dagster-webserver 1.13): a base64 PNG never fits.
UI_INLINE_MARKDOWN_CHARS = 1000
# plots are stored beside the run's compute logs, in this folder of the run's log directory
PLOTS_LOG_NAMESPACE = "plots"


def png_metadata(
    instance: dg.DagsterInstance, run_id: str, key: dg.AssetKey, name: str, title: str, png: bytes
) -> dg.MetadataValue:
    """A PNG as Markdown metadata that the UI shows inline, where one looks at the asset (its
    overview's metadata table, the latest materialization, the event detail).

    The UI inlines Markdown only below UI_INLINE_MARKDOWN_CHARS characters, so the image is a
    link, not data: the PNG is stored with the run's compute logs (the instance's local compute
    log manager, ``$DAGSTER_HOME/storage/<run id>/plots/``), which the webserver serves at
    ``/logs/<run id>/plots/<file>/png``; each run keeps its own images and they go when the
    run's logs go. An instance whose logs are elsewhere (cloud storage, none) gets the image
    inline as a data URI, which the UI shows behind "[Show Markdown]".
    """
    manager = instance.compute_log_manager
    file_base = f"{key.to_python_identifier()}__{name}"
    if isinstance(manager, LocalComputeLogManager):
        log_key = [run_id, PLOTS_LOG_NAMESPACE, file_base]
        path = Path(manager.get_captured_local_path(log_key, "png"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        source = "/logs/" + "/".join(log_key) + "/png"
    else:
        source = "data:image/png;base64," + base64.b64encode(png).decode()
    return dg.MetadataValue.md(f"**{title}**\n\n![{title}]({source})")
