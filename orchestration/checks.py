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
    """Validate ``table`` with the named suite once, reported as two checks: the critical
    expectations (blocking) and the warning expectations (severity WARN, not blocking)."""
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
                for name in (blocking_name, warning_name):
                    yield dg.AssetCheckResult(
                        check_name=name,
                        asset_key=asset_key,
                        passed=True,
                        metadata={"rows_validated": "none: this run loaded no rows"},
                    )
                return
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
        yield dg.AssetCheckResult(
            check_name=blocking_name,
            asset_key=asset_key,
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
        )
        yield dg.AssetCheckResult(
            check_name=warning_name,
            asset_key=asset_key,
            passed=not outcome.failed_warnings,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failed_warnings": len(outcome.failed_warnings),
                "failures_markdown": metadata["failures_markdown"],
            },
        )

    return _check
