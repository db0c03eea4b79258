"""The code location as a newcomer sees it: asset groups follow the layers, dbt steps are
named after what they build."""

import dagster as dg
from run_helpers import settings_without_data

from orchestration.definitions import build_definitions
from orchestration.defs.transform import DBT_STEP_NAMES


def test_groups_follow_the_layers_and_dbt_steps_say_what_they_build(tmp_path):
    settings = settings_without_data(tmp_path)
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups["raw/events"] == "ingestion"
    assert groups["seeds/segment_rules"] == "seeds"
    assert groups["staging/stg_clickstream__events"] == "staging"
    assert groups["intermediate/int_events_stitched"] == "intermediate"
    assert groups["marts/sessions"] == "marts"
    assert groups["ml/churn_scores"] == "ml"
    assert groups["serving/published_segments"] == "serving"
    assert set(groups.values()) == {
        "ingestion", "seeds", "staging", "intermediate", "marts", "ml", "privacy", "serving"
    }  # fmt: skip

    full_build = defs.resolve_job_def("full_build")
    dbt_ops = sorted(node.name for node in full_build.graph.node_defs if "dbt" in node.name)
    assert dbt_ops == sorted(DBT_STEP_NAMES) == ["dbt_build_features", "dbt_build_segments"]
    steps = {
        name: {key.path[-1] for key in defs.resolve_assets_def(key).keys}
        for name, key in (
            ("dbt_build_features", dg.AssetKey(["marts", "person_features"])),
            ("dbt_build_segments", dg.AssetKey(["marts", "content_decisions"])),
        )
    }
    assert {"stg_clickstream__events", "sessions", "churn_snapshots"} <= steps["dbt_build_features"]
    assert "stg_ml__churn_scores" not in steps["dbt_build_features"]  # it reads an ML output
    assert {"stg_ml__churn_scores", "person_segments"} <= steps["dbt_build_segments"]
