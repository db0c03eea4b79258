"""Great-expectations suites as Dagster asset checks.

Each suite in ``expectations/suites`` runs inside DuckDB (SQL push-down) against the table its
asset wrote. The check is blocking: when a critical expectation fails, downstream steps do not run.
"""

import dagster as dg
from pydantic import Field

from orchestration.resources import WarehouseResource


class ExpectationCheckConfig(dg.Config):
    only_rows_of_this_run: bool = Field(
        default=False,
        description=(
            "Validate only the rows this run loaded (column _load_id = run id) instead of the "
            "whole table: incremental runs then cost in proportion to the new data."
        ),
    )


def check_op_name(asset_key: dg.AssetKey, suite_name: str) -> str:
    """The op name under which run config reaches the check."""
    return f"{asset_key.to_python_identifier()}_expectations_{suite_name}"


def expectation_check(
    asset_key: dg.AssetKey, table: str, suite_name: str
) -> dg.AssetChecksDefinition:
    """A blocking asset check that validates ``table`` with the named expectation suite."""

    @dg.asset_check(
        asset=asset_key,
        name=f"expectations_{suite_name}",
        blocking=True,
        description=(
            f"great-expectations suite '{suite_name}' on {table}, evaluated inside DuckDB. "
            "Fails (and blocks downstream) when a critical expectation fails; failed warning "
            "expectations are listed in the metadata."
        ),
    )
    def _check(
        context: dg.AssetCheckExecutionContext,
        config: ExpectationCheckConfig,
        warehouse: WarehouseResource,
    ):
        # Imported here: great-expectations takes seconds to import, and code-location loads
        # should not pay for it.
        from expectations import load_suite, validate_table

        row_filter = None
        if config.only_rows_of_this_run:
            row_filter = f"_load_id = '{context.run.run_id}'"
            with warehouse.connect(read_only=True) as con:
                (rows,) = con.execute(f"SELECT count(*) FROM {table} WHERE {row_filter}").fetchone()
            if rows == 0:  # e.g. a retried run whose load had already committed
                return dg.AssetCheckResult(
                    passed=True, metadata={"rows_validated": "none: this run loaded no rows"}
                )
        outcome = validate_table(
            warehouse.path, table, load_suite(suite_name), row_filter=row_filter
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
        metadata["rows_validated"] = "this run's load" if row_filter else "whole table"
        return dg.AssetCheckResult(
            passed=outcome.success, severity=dg.AssetCheckSeverity.ERROR, metadata=metadata
        )

    return _check
