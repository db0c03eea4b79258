"""Helpers for tests that run Dagster jobs in-process on a warehouse of their own."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import dagster as dg
from PIL import Image

from orchestration.definitions import build_definitions
from warehouse.connection import connect
from warehouse.settings import Settings


def settings_without_data(tmp_path, **overrides) -> Settings:
    """Settings of a code location with no data of its own under ``tmp_path`` (enough to build
    and load the definitions)."""
    return Settings.in_folder(tmp_path, tmp_path, "sqlite://", **overrides)


def run_full_build(settings: Settings, instance: dg.DagsterInstance):
    """The full_build job of ``settings``, executed in this process; failures are returned."""
    job = build_definitions(settings).resolve_job_def("full_build")
    return job.execute_in_process(instance=instance, raise_on_error=False)


def check_evaluations(result) -> list:
    """Every asset check evaluation of a run."""
    return [
        event.event_specific_data
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def materialization_metadata(result, key: dg.AssetKey) -> dict:
    """The metadata of the run's materialization of ``key``."""
    return next(
        event.event_specific_data.materialization.metadata
        for event in result.get_asset_materialization_events()
        if event.asset_key == key
    )


def scalar(settings: Settings, sql: str):
    """The one value ``sql`` returns from the warehouse."""
    with connect(settings.warehouse_path, read_only=True) as con:
        return con.execute(sql).fetchone()[0]


def plot_png(instance: dg.DagsterInstance, value: dg.MetadataValue) -> bytes:
    """The PNG a plot's Markdown metadata shows (orchestration.metadata.png_metadata): the file
    the webserver serves for its ``/logs/...`` link, or its data URI."""
    (source,) = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", value.value)
    if source.startswith("data:image/png;base64,"):
        return base64.b64decode(source.split(",", 1)[1])
    *log_key, extension = source.removeprefix("/logs/").split("/")
    return Path(
        instance.compute_log_manager.get_captured_local_path(log_key, extension)
    ).read_bytes()


def assert_small_png(png: bytes) -> tuple[int, int]:
    """``png`` decodes as a PNG of a size fit for a metadata table; its (width, height)."""
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 250 <= width <= 1200 and 150 <= height <= 800, (width, height)
    assert len(png) < 150_000, len(png)
    return width, height
