"""The Dagster code location: one ``defs`` module per layer (orchestration/defs/), merged.

    ingestion -> transform (dbt) -> ml -> transform (dbt, what reads ML) -> serving
                                 privacy (retention, erasure, consent) cuts across

Resources come from ``warehouse.settings`` (environment variables; `segwh config` prints them).
"""

import dagster as dg

from orchestration import sqlite_events
from orchestration.defs import (
    automation,
    ingestion,
    ml,
    privacy,
    realtime,
    recommendations,
    serving,
    transform,
)
from orchestration.defs import experiments as experiment_defs
from orchestration.resources import build_resources
from warehouse.settings import Settings, load_settings

sqlite_events.install()  # every process that loads the code location (module docstring there)


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole code location, configured by ``settings``."""
    layers = dg.Definitions.merge(
        ingestion.build_defs(),
        transform.build_defs(),
        ml.build_defs(),
        recommendations.build_defs(),
        privacy.build_defs(),
        experiment_defs.build_defs(),
    )
    # publish after every model and every check of the run (retention runs after publishing)
    upstream = [
        key
        for assets in layers.assets or []
        for key in assets.keys
        if key != privacy.RAW_EVENTS_RETENTION
    ]
    return dg.Definitions.merge(
        layers,
        serving.build_defs(
            upstream,
            online=bool(settings.online_redis_url),
            postgres=bool(settings.serving_postgres_url),
        ),
        automation.build_defs(settings),
        # the stream consumer's health sensor and the nightly reconciliation (online store on)
        realtime.build_defs(online=bool(settings.online_redis_url)),
        dg.Definitions(
            resources=build_resources(settings),
            # One writer at a time on the DuckDB file: the steps of a run execute one by one.
            executor=dg.in_process_executor,
        ),
    )


defs = build_definitions(load_settings())
