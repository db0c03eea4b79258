"""The dbt project's data flows one way: a model reads only models of its own layer or an
earlier one (staging < intermediate < marts), and only staging reads sources (raw tables, and
the ml layer's results as declared sources).

The check reads dbt's manifest (``dbt parse``), so refs made inside macros count too.
"""

from __future__ import annotations

import json
from pathlib import Path

from dbt_helpers import Dbt, copy_project, release_dbt_duckdb

from warehouse.settings import DBT_PROJECT_DIR

LAYERS = ("staging", "intermediate", "marts")  # the folders under models/, in data-flow order


def layer_violations(manifest: dict) -> list[str]:
    """Every edge of the lineage that reads a later layer, or a source outside staging."""
    nodes = manifest["nodes"]
    violations = []
    for node in nodes.values():
        if node["resource_type"] != "model":
            continue
        layer = node["fqn"][1]
        assert layer in LAYERS, f"{node['name']} is in models/{layer}, not a layer folder"
        for upstream in node["depends_on"]["nodes"]:
            if upstream.startswith("source.") and layer != "staging":
                violations.append(f"{node['name']} ({layer}) reads {upstream}")
            elif upstream.startswith("model."):
                upstream_layer = nodes[upstream]["fqn"][1]
                if LAYERS.index(upstream_layer) > LAYERS.index(layer):
                    violations.append(
                        f"{node['name']} ({layer}) reads {nodes[upstream]['name']} "
                        f"({upstream_layer})"
                    )
    return sorted(violations)


def _manifest(project_dir: Path, work_dir: Path) -> dict:
    dbt = Dbt(work_dir / "warehouse.duckdb", work_dir, project_dir)
    try:
        dbt.invoke("parse")
    finally:
        release_dbt_duckdb()
    return json.loads((dbt.target_path / "manifest.json").read_text())


def test_no_model_reads_a_later_layer_and_only_staging_reads_sources(tmp_path):
    manifest = _manifest(DBT_PROJECT_DIR, tmp_path)

    assert layer_violations(manifest) == []
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert {n["fqn"][1] for n in models} == set(LAYERS)


def test_a_model_reading_a_later_layer_is_caught(tmp_path):
    project = copy_project(tmp_path / "project")
    (project / "models" / "intermediate" / "int_persons_read_from_a_mart.sql").write_text(
        "select person_id from {{ ref('person_features') }}\n"
    )
    (project / "models" / "marts" / "behaviour" / "events_read_from_raw.sql").write_text(
        "select event_id from {{ source('clickstream', 'events') }}\n"
    )

    violations = layer_violations(_manifest(project, tmp_path))

    assert violations == [
        "events_read_from_raw (marts) reads source.segwarehouse.clickstream.events",
        "int_persons_read_from_a_mart (intermediate) reads person_features (marts)",
    ]
