"""The end-of-run report of `segwh run`: counts, then what failed, why and what to do."""

import dagster as dg

from orchestration.checks import FAILURES_METADATA_KEY
from orchestration.run_report import check_report


def _evaluation(key: str, name: str, *, passed: bool, blocking: bool, **metadata):
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey(key.split("/")),
        check_name=name,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def test_failures_come_first_with_what_was_observed_and_passes_are_only_counted():
    evaluations = [
        _evaluation("raw/events", "expectations_raw_events", passed=True, blocking=True),
        _evaluation(
            "ml/churn_scores",
            "churn_feature_drift",
            passed=False,
            blocking=False,
            psi=dg.MetadataValue.float(0.55),
            details=dg.MetadataValue.md("| feature | psi |\n" * 40),
        ),
        _evaluation(
            "marts/person_features",
            "expectations_person_features",
            passed=False,
            blocking=True,
            **{
                FAILURES_METADATA_KEY: dg.MetadataValue.json(
                    [
                        {
                            "severity": "blocking",
                            "expectation": "at least one person is profiled; if none is, ...",
                            "observed": 1,
                            "unexpected": 1,
                            "examples": [{"persons_profiled": 0, "customers": 903}],
                        }
                    ]
                )
            },
        ),
        _evaluation(
            "intermediate/int_orders_deduplicated",
            "has_exchange_rate_int_orders_deduplicated_exchange_rate",
            passed=False,
            blocking=False,
            **{"dagster_dbt/failed_row_count": dg.MetadataValue.int(1)},
        ),
    ]

    lines = check_report(evaluations)

    assert lines[0] == "checks: 1 passed, 1 blocking failed, 2 warnings"
    assert lines[1] == (
        "BLOCKING (the run did not publish): marts/person_features expectations_person_features"
    )
    assert lines[2] == "    - at least one person is profiled; if none is, ..."
    assert lines[3] == (
        '      observed: 1 unexpected; e.g. [{"persons_profiled": 0, "customers": 903}]'
    )
    assert lines[4] == "warning: ml/churn_scores churn_feature_drift"
    assert lines[5] == "    - psi: 0.55"  # the long markdown table is left to the UI
    assert lines[6].startswith("warning: intermediate/int_orders_deduplicated has_exchange_rate")
    assert lines[7] == "    - dbt test: 1 failing row(s)"
    assert not any("expectations_raw_events" in line for line in lines)
