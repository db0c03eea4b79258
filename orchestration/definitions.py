"""The Dagster code location: every asset, check, resource and job of the warehouse."""

import dagster as dg
from dagster_dbt import DbtCliResource

from orchestration.assets.ingestion import RAW_EVENTS, raw_crm_tables, raw_events
from orchestration.assets.ml import ml_assets, ml_checks
from orchestration.assets.privacy import (
    consent_withdrawals_applied,
    erase_person_job,
    raw_events_retention,
)
from orchestration.assets.serving import build_published_segments
from orchestration.assets.transform import STAGED_EVENTS, dbt_models
from orchestration.automation import (
    build_landing_sensor,
    build_nightly_schedule,
    full_build_job,
    incremental_update_job,
    report_failed_runs,
)
from orchestration.checks import expectation_check, mart_expectation_checks
from orchestration.dbt import DBT_EXECUTABLE, dbt_project
from orchestration.resources import (
    AsOfResource,
    CrmResource,
    LandingZoneResource,
    ModelStoreResource,
    PrivacyResource,
    ServingResource,
    WarehouseResource,
)
from privacy.pseudonyms import KEY_ENV_VAR
from warehouse.settings import Settings, load_settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """The whole code location, configured by ``settings``."""
    return dg.Definitions(
        assets=[
            raw_events,
            raw_crm_tables,
            dbt_models,
            raw_events_retention,
            *ml_assets,
            consent_withdrawals_applied,
            # after every model, so that it runs when all of the run's checks are done
            build_published_segments(
                [*dbt_models.keys, *(a.key for a in ml_assets), consent_withdrawals_applied.key]
            ),
        ],
        asset_checks=[
            expectation_check(RAW_EVENTS, "raw.events", "raw_events", load_id_column="_load_id"),
            expectation_check(RAW_EVENTS, "raw.event_load_audit", "event_load"),
            *(
                expectation_check(
                    dg.AssetKey(["raw", f"crm_{entity}"]),
                    f"raw.crm_{entity}",
                    f"crm_{entity}",
                    load_id_column="_load_id",
                )
                for entity in ("customers", "orders", "consents")
            ),
            expectation_check(
                STAGED_EVENTS,
                "staging.stg_clickstream__events",
                "stg_events",
                load_id_column="load_id",
            ),
            # suites named like their mart; a mart not (yet) in the dbt project is skipped
            *mart_expectation_checks(
                dbt_models.keys,
                [
                    "sessions",
                    "person_features",
                    "person_rfm_scores",
                    "person_segments",
                    "segment_membership_history",
                    "content_decisions",
                ],
            ),
            *ml_checks,
        ],
        jobs=[full_build_job, incremental_update_job, erase_person_job],
        schedules=[build_nightly_schedule(settings)],
        sensors=[build_landing_sensor(settings), report_failed_runs],
        resources={
            "warehouse": WarehouseResource(
                path=str(settings.warehouse_path), memory_limit=settings.duckdb_memory_limit
            ),
            "landing": LandingZoneResource(path=str(settings.landing_dir)),
            "crm": CrmResource(
                url=settings.crm_url,
                customers_table=settings.crm_customers_table,
                orders_table=settings.crm_orders_table,
                consents_table=settings.crm_consents_table,
            ),
            "as_of": AsOfResource(as_of=settings.as_of),
            "serving": ServingResource(
                path=str(settings.resolved_serving_dir),
                postgres_url=settings.serving_postgres_url,
                postgres_schema=settings.serving_postgres_schema,
                reader_role=settings.serving_reader_role,
            ),
            "models": ModelStoreResource(
                path=str(settings.resolved_models_dir),
                churn_at_risk_threshold=settings.churn_at_risk_threshold,
            ),
            "privacy": PrivacyResource(
                pseudonymization_key=dg.EnvVar(KEY_ENV_VAR),
                raw_retention_days=settings.raw_retention_days,
            ),
            "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
        },
        # One writer at a time on the DuckDB file: the steps of a run execute one by one.
        executor=dg.in_process_executor,
    )


defs = build_definitions(load_settings())
