"""Experiments (group ``ml``): the analysis of the experiments of the seed ``experiments``.

``ml/experiment_results`` reads marts.experiment_person_metrics (one row per exposed person and
experiment, built by dbt after the segments), analyses it with ``ml.experiments`` and writes
ml.experiment_results (published for BI). Its metadata holds the primary-metric results and a
plot of every lift with its 95 % interval.

Checks: ``experiment_sample_ratio`` (WARN) names the experiments whose sample-ratio-mismatch
chi-square p-value is below the threshold; their results are blocked in the table itself
(status blocked_srm, no lift, interval or p-value). ``blocked_results_are_withheld`` (blocking)
fails the run before publishing if any such experiment still shows a lift or p-value. A failed
SRM check of one experiment does not stop the publish of everything else (a blocking Dagster
check would): the block is on that experiment's results.

``ml.experiments`` (scipy) and its plots are imported by the asset and checks that use them:
loading the code location does not import them.
"""

from typing import TYPE_CHECKING

import dagster as dg

from ml.config import ExperimentConfig
from ml.schemas import EXPERIMENT_RESULTS
from orchestration.metadata import OWNER, markdown_frame, png_metadata, tidy_metadata
from orchestration.resources import AsOfResource, WarehouseResource

if TYPE_CHECKING:
    import pandas as pd

EXPERIMENT_PERSON_METRICS = dg.AssetKey(["marts", "experiment_person_metrics"])
EXPERIMENT_RESULTS_KEY = dg.AssetKey(["ml", "experiment_results"])
SUMMARY_COLUMNS = (
    "experiment_key",
    "metric",
    "variant",
    "persons",
    "control_mean",
    "mean",
    "cuped_absolute_lift",
    "cuped_ci_low",
    "cuped_ci_high",
    "cuped_p_value_adjusted",
    "cuped_variance_reduction",
    "srm_p_value",
    "days_to_mde",
    "status",
)


def _write_results(warehouse: WarehouseResource, results: "pd.DataFrame") -> None:
    columns = EXPERIMENT_RESULTS.columns
    body = ",\n    ".join(f"{name} {column.type}" for name, column in columns.items())
    select = ", ".join(
        f"CAST({name} AS {column.type}) AS {name}" for name, column in columns.items()
    )
    with warehouse.connect() as con:
        con.execute("BEGIN")
        con.execute("CREATE SCHEMA IF NOT EXISTS ml")
        con.execute(f"CREATE OR REPLACE TABLE {EXPERIMENT_RESULTS.name} (\n    {body}\n)")
        if not results.empty:
            con.register("results", results)
            con.execute(f"INSERT INTO {EXPERIMENT_RESULTS.name} SELECT {select} FROM results")
        con.execute("COMMIT")


@dg.asset(
    key=EXPERIMENT_RESULTS_KEY,
    deps=[EXPERIMENT_PERSON_METRICS],
    group_name="ml",
    owners=[OWNER],
    kinds={"python", "scipy", "duckdb"},
    description=(
        "The analysis of every experiment of the experiments seed (ml.experiments): per "
        "experiment, metric and variant the exposed persons, mean and variance, absolute and "
        "relative lift against control with 95 % intervals and p-values (two-proportion z-test "
        "for conversion, Welch's t-test otherwise), the CUPED-adjusted lift and the variance "
        "reduction it achieved, Holm-corrected p-values, the sample-ratio-mismatch check "
        "(results withheld below p 0.001), power and days still needed for the minimum "
        "detectable effect. Nothing is significant before the planned sample size. Writes "
        "ml.experiment_results."
    ),
)
def experiment_results(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, as_of: AsOfResource
) -> dg.MaterializeResult:
    from ml.experiment_plots import lift_intervals_png
    from ml.experiments import analyze_experiments, specs_from_seed

    with warehouse.connect(read_only=True) as con:
        persons = con.execute("SELECT * FROM marts.experiment_person_metrics").df()
        seed = con.execute("SELECT * FROM seeds.experiments").df()
    at = as_of.resolve(context).replace(tzinfo=None)
    config = ExperimentConfig()
    results = analyze_experiments(persons, specs_from_seed(seed), at, config)
    _write_results(warehouse, results)
    treatments = results[~results["is_control"].astype(bool)] if len(results) else results
    metadata: dict[str, object] = {
        "dagster/row_count": len(results),
        "experiments": int(results["experiment_key"].nunique()) if len(results) else 0,
        "blocked_by_srm": sorted(
            set(results.loc[results["is_srm_blocked"].astype(bool), "experiment_key"])
        )
        if len(results)
        else [],
        "significant": int(treatments["is_significant"].sum()) if len(treatments) else 0,
    }
    if len(treatments):
        primary = treatments[treatments["is_primary_metric"].astype(bool)]
        metadata["primary_metric_results"] = markdown_frame(
            primary.loc[:, list(SUMMARY_COLUMNS)].round(4)
        )
        metadata["lift_with_intervals"] = png_metadata(
            context.instance,
            context.run.run_id,
            context.asset_key,
            "lift_with_intervals",
            "Relative lift vs control with 95 % intervals",
            lift_intervals_png(results),
        )
    return dg.MaterializeResult(metadata=tidy_metadata(metadata))


def _read_results(warehouse: WarehouseResource) -> "pd.DataFrame":
    with warehouse.connect(read_only=True) as con:
        return con.execute(f"SELECT * FROM {EXPERIMENT_RESULTS.name}").df()


@dg.asset_check(
    asset=EXPERIMENT_RESULTS_KEY,
    description=(
        "Sample-ratio mismatch (chi-square of persons per variant against the configured "
        "weights): warns and names every experiment below the threshold; their results are "
        "withheld in ml.experiment_results (status blocked_srm)."
    ),
)
def experiment_sample_ratio(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    results = _read_results(warehouse)
    per_experiment = (
        results.groupby("experiment_key", as_index=False)
        .agg(srm_p_value=("srm_p_value", "first"), is_srm_blocked=("is_srm_blocked", "first"))
        .sort_values("experiment_key")
    )
    blocked = per_experiment[per_experiment["is_srm_blocked"].astype(bool)]
    return dg.AssetCheckResult(
        passed=blocked.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "no sample-ratio mismatch"
            if blocked.empty
            else "results blocked (sample-ratio mismatch): " + ", ".join(blocked["experiment_key"])
        ),
        metadata={"experiments": markdown_frame(per_experiment)} if len(per_experiment) else {},
    )


@dg.asset_check(
    asset=EXPERIMENT_RESULTS_KEY,
    blocking=True,
    description=(
        "No experiment that failed the sample-ratio check shows a lift, interval, p-value or "
        "significance in ml.experiment_results (the block holds before anything is published)."
    ),
)
def blocked_results_are_withheld(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    from ml.experiments import WITHHELD_WHEN_BLOCKED

    results = _read_results(warehouse)
    blocked = results[results["is_srm_blocked"].astype(bool)] if len(results) else results
    leaking = (
        blocked[
            blocked.loc[:, list(WITHHELD_WHEN_BLOCKED)].notna().any(axis=1)
            | blocked["is_significant"].astype(bool)
        ]
        if len(blocked)
        else blocked
    )
    return dg.AssetCheckResult(
        passed=leaking.empty,
        metadata={"leaking_rows": len(leaking), "blocked_rows": len(blocked)},
    )


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[experiment_results],
        asset_checks=[experiment_sample_ratio, blocked_results_are_withheld],
    )
