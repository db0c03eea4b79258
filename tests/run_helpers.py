"""Helpers for tests that run Dagster jobs in-process on a warehouse of their own."""

from __future__ import annotations

import dagster as dg

from orchestration.definitions import build_definitions
from warehouse.connection import connect
from warehouse.settings import Settings


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
