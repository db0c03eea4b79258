"""Great-expectations suites as Dagster asset checks.

Each suite in ``expectations/suites`` runs inside DuckDB (SQL push-down) against the table its
asset wrote, and reports two checks: the critical expectations (blocking: a failure stops
everything downstream, and serving/published_segments does not publish) and the warning ones.

Per-run context reaches a suite as parameters of its builder, fetched here only when the suite
declares them (``expectations.suites.suite_parameters``):

- ``previous_row_count``: ``dagster/row_count`` of the asset's latest materialization by an
  earlier run, from the Dagster instance;
- ``as_of``: the run's ``as_of`` (``AsOfResource.resolve``), the same instant dbt used;
- ``load_id``: the run id, which ingestion records as the load id;
- ``events_expected``: whether events are a source of this deployment (SEGWH_SOURCES): without
  them, the expectations that need events (a minimum row count, freshness) do not apply.
"""

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from orchestration.resources import AsOfResource, LandingZoneResource, WarehouseResource
from privacy import pseudonyms
from warehouse.connection import session_settings

logger = logging.getLogger(__name__)

ROW_COUNT_METADATA_KEY = "dagster/row_count"
FAILURES_METADATA_KEY = "failures"
"""Check metadata: the failed expectations (description with the fix, observed value,
examples), which `segwh run` prints at the end of a run."""
_MATERIALIZATIONS_SEARCHED = 5  # the latest of this run (if any) and earlier ones


class ExpectationCheckConfig(dg.Config):
    only_rows_of_this_run: bool = Field(
        default=False,
        description=(
            "Validate only the rows this run loaded (the table's load-id column = run id) "
            "instead of the whole table: incremental runs then cost in proportion to the new "
            "data. Row counts are then not compared with the previous run. Ignored for tables "
            "without a load-id column."
        ),
    )
    compare_row_count_with_previous_run: bool = Field(
        default=True,
        description=(
            "Compare the table's row count with the previous run's (dagster/row_count of the "
            "asset's last materialization): blocking if it shrank beyond the suite's bound, a "
            "warning if it grew beyond it. Turn off for the first run after an intentional "
            "reset of the warehouse."
        ),
    )


def check_op_name(asset_key: dg.AssetKey, suite_name: str) -> str:
    """The op name under which run config reaches the check."""
    return f"{asset_key.to_python_identifier()}_expectations_{suite_name}"


def previous_row_count(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, run_id: str
) -> int | None:
    """``dagster/row_count`` of the asset's latest materialization by a run other than
    ``run_id``; ``None`` if there is none or it has no row count."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key), limit=_MATERIALIZATIONS_SEARCHED
    ).records
    for record in records:
        if record.run_id == run_id:
            continue
        materialization = record.asset_materialization
        value = materialization.metadata.get(ROW_COUNT_METADATA_KEY) if materialization else None
        return None if value is None else int(value.value)
    return None


def expectation_check(
    asset_key: dg.AssetKey,
    table: str,
    suite_name: str,
    *,
    load_id_column: str | None = None,
) -> dg.AssetChecksDefinition:
    """Validate ``table`` with the named suite once, reported as two checks: the critical
    expectations (blocking) and the warning expectations (severity WARN, not blocking).

    ``load_id_column`` names the column holding the run id that loaded each row, for the
    ``only_rows_of_this_run`` option.
    """
    blocking_name = f"expectations_{suite_name}"
    warning_name = f"expectations_{suite_name}_warnings"

    @dg.multi_asset_check(
        name=check_op_name(asset_key, suite_name),
        specs=[
            dg.AssetCheckSpec(
                blocking_name,
                asset=asset_key,
                blocking=True,
                description=(
                    f"great-expectations suite '{suite_name}' on {table}, evaluated inside "
                    "DuckDB: the critical expectations. A failure blocks everything downstream."
                ),
            ),
            dg.AssetCheckSpec(
                warning_name,
                asset=asset_key,
                description=(
                    f"great-expectations suite '{suite_name}' on {table}: the warning "
                    "expectations. A failure is shown as a warning and blocks nothing."
                ),
            ),
        ],
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        config: ExpectationCheckConfig,
        warehouse: WarehouseResource,
        as_of: AsOfResource,
        landing: LandingZoneResource,
    ) -> Iterator[dg.AssetCheckResult]:
        # Imported here: great-expectations takes seconds to import, and code-location loads
        # should not pay for it.
        from expectations import load_suite, validate_table
        from expectations.suites import suite_parameters

        row_filter = None
        if config.only_rows_of_this_run and load_id_column is None:
            context.log.warning("%s has no load-id column: validating the whole table", table)
        elif config.only_rows_of_this_run:
            row_filter = f"{load_id_column} = '{context.run.run_id}'"
            with warehouse.connect(read_only=True) as con:
                (rows,) = con.execute(f"SELECT count(*) FROM {table} WHERE {row_filter}").fetchone()
            if rows == 0:  # e.g. a retried run whose load had already committed
                for name in (blocking_name, warning_name):
                    yield dg.AssetCheckResult(
                        check_name=name,
                        asset_key=asset_key,
                        passed=True,
                        metadata={"rows_validated": "none: this run loaded no rows"},
                    )
                return

        params = _suite_params(
            context,
            asset_key,
            suite_parameters(suite_name),
            as_of,
            landing,
            compare_row_counts=config.compare_row_count_with_previous_run and row_filter is None,
        )
        outcome = validate_table(
            warehouse.path,
            table,
            load_suite(suite_name, **params),
            row_filter=row_filter,
            session_settings=session_settings(warehouse.memory_limit),
            session_sql=_pseudonym_session_sql(),
        )
        context.log.info(
            "%s: %d expectations, %d blocking failed, %d warnings failed in %.1fs",
            suite_name,
            len(outcome.outcomes),
            len(outcome.failed_blocking),
            len(outcome.failed_warnings),
            outcome.elapsed_seconds,
        )
        metadata = outcome.to_metadata()
        metadata["failures_markdown"] = dg.MetadataValue.md(metadata["failures_markdown"])
        failures = outcome.failures()
        metadata["rows_validated"] = "this run's load" if row_filter else "whole table"
        metadata.update(_params_metadata(params))
        yield dg.AssetCheckResult(
            check_name=blocking_name,
            asset_key=asset_key,
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **metadata,
                FAILURES_METADATA_KEY: dg.MetadataValue.json(
                    [f for f in failures if f["severity"] == "blocking"]
                ),
            },
        )
        yield dg.AssetCheckResult(
            check_name=warning_name,
            asset_key=asset_key,
            passed=not outcome.failed_warnings,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failed_warnings": len(outcome.failed_warnings),
                "failures_markdown": metadata["failures_markdown"],
                FAILURES_METADATA_KEY: dg.MetadataValue.json(
                    [f for f in failures if f["severity"] == "warning"]
                ),
            },
        )

    return _check


def mart_expectation_checks(
    available: Iterable[dg.AssetKey], suite_names: Iterable[str]
) -> list[dg.AssetChecksDefinition]:
    """Checks for dbt marts, one per suite named like its model: asset ``marts/<name>`` and
    table ``marts.<name>``. A mart missing from ``available`` (renamed or not built yet) gets
    no check, with a warning in the log, so the code location still loads."""
    keys = set(available)
    checks = []
    for name in suite_names:
        key = dg.AssetKey(["marts", name])
        if key in keys:
            checks.append(expectation_check(key, f"marts.{name}", name))
        else:
            logger.warning("No dbt model %s: its expectation suite %r is not wired", key, name)
    return checks


def _suite_params(
    context: dg.AssetCheckExecutionContext,
    asset_key: dg.AssetKey,
    accepted: frozenset[str],
    as_of: AsOfResource,
    landing: LandingZoneResource,
    *,
    compare_row_counts: bool,
) -> dict[str, Any]:
    """The per-run parameters the suite accepts (see the module docstring)."""
    params: dict[str, Any] = {}
    if "previous_row_count" in accepted and compare_row_counts:
        params["previous_row_count"] = previous_row_count(
            context.instance, asset_key, context.run.run_id
        )
    if "as_of" in accepted:
        params["as_of"] = as_of.resolve(context)
    if "load_id" in accepted:
        params["load_id"] = context.run.run_id
    if "events_expected" in accepted:
        params["events_expected"] = landing.enabled
    return params


def _params_metadata(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as check metadata, so the UI shows what the run was compared with."""
    metadata: dict[str, Any] = {}
    if "previous_row_count" in params:
        previous = params["previous_row_count"]
        metadata["previous_row_count"] = (
            "none: first run" if previous is None else dg.MetadataValue.int(previous)
        )
    if "as_of" in params:
        metadata["as_of"] = params["as_of"].isoformat()
    if "load_id" in params:
        metadata["load_id"] = params["load_id"]
    if "events_expected" in params:
        metadata["events_expected"] = params["events_expected"]
    return metadata


def _pseudonym_session_sql() -> list[str]:
    """The TEMP macro ``segwh_pseudonymize`` for a validation session (staging views call it;
    the warehouse never stores it); none without a key (then only raw tables validate)."""
    try:
        return [pseudonyms.session_macro_sql(pseudonyms.key_from_environment())]
    except pseudonyms.PseudonymizationKeyError:
        return []
