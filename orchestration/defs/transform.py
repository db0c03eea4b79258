"""Transform (groups ``seeds``, ``staging``, ``intermediate``, ``marts``): the dbt project as
assets, built in two steps around the ML assets, and the expectation checks of the marts.

- ``dbt_build_features``: seeds, staging, intermediate and the marts ML reads (sessions,
  person_features, RFM, churn snapshots, ...): everything that does not depend on an ML output;
- ``dbt_build_segments``: what depends on the churn scores or the recommendations
  (``stg_ml__churn_scores``, ``stg_ml__person_recommendations`` and downstream: segments, their
  history and sizes, the funnel, content decisions).
"""

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import duckdb
from dagster_dbt import dbt_assets
from pydantic import Field

from orchestration.checks import expectation_check, mart_expectation_checks
from orchestration.dbt import LayeredDbtTranslator, dbt_project
from orchestration.metadata import table_metadata, tidy_metadata
from orchestration.plots import table_plots_metadata
from orchestration.resources import AsOfResource, DbtResource, PrivacyResource, WarehouseResource

STAGED_EVENTS = dg.AssetKey(["staging", "stg_clickstream__events"])
# dbt models that read ML outputs: the first of them and everything downstream build after ML
ML_OUTPUT_READERS = "stg_ml__churn_scores+ stg_ml__person_recommendations+"


class DbtBuildConfig(dg.Config):
    full_refresh: bool = Field(
        default=False,
        description=(
            "Rebuild the incremental models from scratch (dbt --full-refresh): needed after an "
            "edit of the event taxonomy seed or the bot pattern, which change events already "
            "stitched and sessionized. Costs a full rebuild of sessions and features."
        ),
    )
    only_rows_of_this_run: bool = Field(
        default=False,
        description=(
            "Event tests (the uniqueness and not-null tests of the staged and stitched events) "
            "check only the events this run loaded instead of every event, so that their cost "
            "follows the new data; the landing-files sensor sets it for its incremental runs. "
            "Every other test checks its whole table."
        ),
    )


@dataclass(frozen=True)
class DbtStep:
    name: str
    select: str
    exclude: str


# The dbt steps of a run, named after what they build (see the module docstring).
DBT_STEPS = (
    DbtStep("dbt_build_features", select="fqn:*", exclude=ML_OUTPUT_READERS),
    DbtStep("dbt_build_segments", select=ML_OUTPUT_READERS, exclude=""),
)


def _build_dbt_step(step: DbtStep) -> dg.AssetsDefinition:
    @dbt_assets(
        name=step.name,
        manifest=dbt_project.manifest_path,
        # no project=: dbt then runs in the dbt resource's project_dir (a run may build a copy
        # of the project with its own seeds and vars, SEGWH_DBT_PROJECT_DIR)
        select=step.select,
        exclude=step.exclude,
        dagster_dbt_translator=LayeredDbtTranslator(),
    )
    def _dbt_step(
        context: dg.AssetExecutionContext,
        dbt: DbtResource,
        warehouse: WarehouseResource,
        as_of: AsOfResource,
        privacy: PrivacyResource,
        config: DbtBuildConfig,
    ) -> Iterator:
        with warehouse.connect() as con:  # staging pseudonymizes identifiers with the secret key
            missing = _inputs_not_built_yet(context, con, every_model=_dbt_step)
            if missing:
                raise dg.Failure(
                    "the selected dbt models read models that this run does not build and that "
                    f"do not exist in the warehouse yet: {', '.join(missing)}. A first full "
                    "build creates them: run the full_build job (the nightly schedule runs it); "
                    "event files loaded by this run are kept and built then.",
                    metadata={"missing": ", ".join(missing)},
                )
            privacy.install(con)
        as_of_value = as_of.resolve(context).isoformat()
        # this run's events carry load_id = run id (ingestion)
        tested_load_id = context.run.run_id if config.only_rows_of_this_run else ""
        context.log.info(
            "dbt build at as_of=%s; event tests check %s",
            as_of_value,
            f"the events of load {tested_load_id}" if tested_load_id else "every event",
        )
        invocation = dbt.build(
            context, warehouse, as_of_value, tested_load_id, full_refresh=config.full_refresh
        )
        yield from _with_table_metadata(context, invocation, warehouse)

    return _dbt_step


def _with_table_metadata(context, invocation, warehouse: WarehouseResource) -> Iterator:
    """dbt's events, the materializations with row counts, column schemas and plots (those of
    orchestration.plots) read once dbt is done (it holds the DuckDB file while it runs). A
    failed model or test: report what succeeded, then fail."""
    with warehouse.connect(read_only=True) as con:
        for event in invocation.events():
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                relation = ".".join(key.path)  # the translator keys models by schema and name
                yield event.with_metadata(
                    {
                        **tidy_metadata(event.metadata),  # dagster-dbt's durations too
                        **table_metadata(con, relation),
                        **table_plots_metadata(context, key, con),
                    }
                )
            else:
                yield event
    invocation.raise_on_failure()


def _inputs_not_built_yet(
    context: dg.AssetExecutionContext,
    con: duckdb.DuckDBPyConnection,
    every_model: dg.AssetsDefinition,
) -> list[str]:
    """dbt models and seeds that the selected models read, that this step does not build, and
    that the warehouse lacks (e.g. a sensor run before any full build: no CRM staging, no seeds).
    ``every_model`` is the step's whole multi-asset (context.assets_def is this run's subset);
    inputs built by the other dbt step count too. The translator keys models by schema/name."""
    selected = context.selected_asset_keys
    inputs = {
        parent
        for key in selected
        for parent in every_model.asset_deps[key]
        if parent in DBT_ASSET_KEYS and parent not in selected
    }
    if not inputs:
        return []
    existing = {
        f"{schema}/{name}"
        for schema, name in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() "
            "WHERE database_name = current_database() "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = current_database()"
        ).fetchall()
    }
    return sorted(key.to_user_string() for key in inputs if key.to_user_string() not in existing)


dbt_steps = [_build_dbt_step(step) for step in DBT_STEPS]
DBT_STEP_NAMES = tuple(step.name for step in DBT_STEPS)
DBT_ASSET_KEYS = frozenset(key for step in dbt_steps for key in step.keys)

# Expectation suites named like the mart they check; a mart not (yet) in the dbt project is
# skipped with a warning.
MART_SUITES = (
    "sessions",
    "person_features",
    "person_rfm_scores",
    "person_segments",
    "segment_membership_history",
    "content_decisions",
)


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=dbt_steps,
        asset_checks=[
            expectation_check(
                STAGED_EVENTS,
                "staging.stg_clickstream__events",
                "stg_events",
                load_id_column="load_id",
            ),
            *mart_expectation_checks(DBT_ASSET_KEYS, MART_SUITES),
        ],
    )
