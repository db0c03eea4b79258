"""Great-expectations suites as Dagster asset checks.

Each suite in ``expectations/suites`` runs inside DuckDB (SQL push-down) against the table its
asset wrote. The check is blocking: when a critical expectation fails, downstream steps do not run.
"""

import dagster as dg

from orchestration.resources import WarehouseResource


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
    def _check(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource):
        # Imported here: great-expectations takes seconds to import, and code-location loads
        # should not pay for it.
        from expectations import load_suite, validate_table

        outcome = validate_table(warehouse.path, table, load_suite(suite_name))
        context.log.info(
            "%s: %d expectations, %d blocking failed, %d warnings failed in %.1fs",
            suite_name,
            len(outcome.outcomes),
            len(outcome.failed_blocking),
            len(outcome.failed_warnings),
            outcome.elapsed_seconds,
        )
        return dg.AssetCheckResult(
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **outcome.to_metadata(),
                "failures_markdown": dg.MetadataValue.md(
                    outcome.to_metadata()["failures_markdown"]
                ),
            },
        )

    return _check
