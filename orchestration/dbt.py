"""The dbt project as Dagster sees it: the project, the dbt executable and the translator.

The manifest is prepared at build time (`make install` runs `python -m orchestration.dbt`) or
by `dagster dev`, never re-parsed on every code-location load. `make install` also leaves the
parse the dbt steps of runs start from (``orchestration.dbt_in_process``).
"""

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from orchestration.metadata import OWNER
from warehouse.settings import (
    DBT_PROJECT_DIR,
    dbt_environment,
    dbt_environment_set,
    load_settings,
)

# The dbt installed beside this Python, even when the virtualenv's bin/ is not on PATH.
_BESIDE_PYTHON = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else shutil.which("dbt") or "dbt"


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def prepare_manifest(*, always: bool = False) -> None:
    """Parse the project into target/manifest.json: always (``make install`` runs this module),
    or only under ``dg dev`` / ``dagster dev`` (picks up edits). Parsing reads profiles.yml, which
    needs the warehouse path and memory limit: the configured ones (every dbt step sets its run's
    own, DbtResource.build)."""
    settings = load_settings()
    environment = dbt_environment(settings.warehouse_path, settings.duckdb_memory_limit)
    # dagster-dbt's preparer runs the `dbt` on PATH: make it the one beside this Python
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{Path(DBT_EXECUTABLE).parent}{os.pathsep}{path}"
    try:
        with dbt_environment_set(environment):
            if always:
                dbt_project.preparer.prepare(dbt_project)
            else:
                dbt_project.prepare_if_dev()
    finally:
        os.environ["PATH"] = path


prepare_manifest()


class LayeredDbtTranslator(DagsterDbtTranslator):
    """dbt models grouped by their layer, the folder under models/ (staging, intermediate,
    marts), seeds in group ``seeds``; keys are schema/name; owned by the data platform team.
    Sources keep the keys of the assets that write them (their ``meta.dagster.asset_key``)."""

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if unique_id.startswith("source."):
            return spec
        node = manifest["nodes"][unique_id]
        layer = node["fqn"][1] if node["resource_type"] == "model" else "seeds"
        return spec.replace_attributes(group_name=layer, owners=[OWNER])


if __name__ == "__main__":
    prepare_manifest(always=True)
    # and the parse the runs' dbt steps start from (orchestration.dbt_in_process), so that the
    # first run does not parse the whole project
    from orchestration.dbt_in_process import parsed_project

    parsed_project(
        dbt_project.project_dir, dbt_project.profiles_dir, load_settings().warehouse_path
    )
