"""dbt models as assets (group ``transform``): staging -> intermediate -> marts."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets
from pydantic import Field

from orchestration.assets.ingestion import OWNER
from orchestration.dbt import dbt_project
from orchestration.metadata import table_metadata
from orchestration.resources import AsOfResource, PrivacyResource, WarehouseResource
from warehouse.settings import export_for_dbt

STAGED_EVENTS = dg.AssetKey(["staging", "stg_clickstream__events"])


class SegwhDbtTranslator(DagsterDbtTranslator):
    """Every dbt model in the ``transform`` group, owned by the data platform team."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("source."):
            return spec  # sources keep the ingestion assets' keys from their dbt meta
        return spec.replace_attributes(group_name="transform", owners=[OWNER])


class DbtBuildConfig(dg.Config):
    only_rows_of_this_run: bool = Field(
        default=False,
        description=(
            "Event tests (the uniqueness and not-null tests of the staged and stitched events) "
            "check only the events this run loaded instead of every event, so that their cost "
            "follows the new data; the landing-files sensor sets it for its incremental runs. "
            "Every other test checks its whole table."
        ),
    )


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=SegwhDbtTranslator(),
)
def dbt_models(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: WarehouseResource,
    as_of: AsOfResource,
    privacy: PrivacyResource,
    config: DbtBuildConfig,
):
    """Build (run + test) the selected dbt models at the run's as_of."""
    with warehouse.connect() as con:  # staging pseudonymizes identifiers with the secret key
        missing = _inputs_not_built_yet(context, con)
        if missing:
            raise dg.Failure(
                "the selected dbt models read models that this run does not build and that do "
                f"not exist in the warehouse yet: {', '.join(missing)}. A first full build "
                "creates them: run the full_build job (the nightly schedule runs it); event files "
                "loaded by this run are kept and built then.",
                metadata={"missing": ", ".join(missing)},
            )
        privacy.install(con)
    # The warehouse resource and the run's as_of are the one source of what dbt reads from the
    # environment: profiles.yml the path and memory limit, the as_of macro the as_of (not --vars,
    # whose change on every run would make dbt re-parse the whole project).
    as_of_value = as_of.resolve(context).isoformat()
    # this run's events carry load_id = run id (ingestion)
    tested_load_id = context.run.run_id if config.only_rows_of_this_run else ""
    export_for_dbt(warehouse.path, warehouse.memory_limit, as_of_value, tested_load_id)
    context.log.info(
        "dbt build at as_of=%s; event tests check %s",
        as_of_value,
        f"the events of load {tested_load_id}" if tested_load_id else "every event",
    )
    # dbt unit tests check the SQL logic on fixed inputs: the test suite runs them (CI), a
    # production build only tests the data.
    invocation = dbt.cli(["build", "--exclude-resource-type", "unit_test"], context=context)
    # dbt holds the DuckDB file until it exits, so the row counts and column schemas that the UI
    # shows are read afterwards (dagster-dbt's fetch_row_counts would query it concurrently).
    events, failure = [], None
    try:
        events.extend(invocation.stream())
    except Exception as exc:  # a failed model or test: report what succeeded, then fail
        failure = exc
        if invocation.process.poll() is None:  # failed on our side while dbt still runs:
            invocation.process.terminate()  # stop it, it holds the warehouse file
            invocation.process.wait()
    with warehouse.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output):
                key = context.asset_key_for_output(event.output_name)
                relation = ".".join(key.path)  # the translator keys models by schema and name
                yield event.with_metadata({**event.metadata, **table_metadata(con, relation)})
            else:
                yield event
    if failure is not None:
        raise failure


def _inputs_not_built_yet(
    context: dg.AssetExecutionContext, con: duckdb.DuckDBPyConnection
) -> list[str]:
    """dbt models and seeds that the selected models read, that this step does not build, and
    that the warehouse lacks (e.g. a sensor run before any full build: no CRM staging, no seeds).
    The translator keys models and seeds by schema and name."""
    selected = context.selected_asset_keys
    every_model = dbt_models  # the whole multi-asset (context.assets_def is this run's subset)
    inputs = {
        parent
        for key in selected
        for parent in every_model.asset_deps[key]
        if parent in every_model.keys and parent not in selected
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
