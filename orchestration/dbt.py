"""The dbt project as Dagster sees it.

The manifest is prepared at build time (`make install` runs `dagster-dbt project
prepare-and-package`) or by `dagster dev`, never re-parsed on every code-location load.
"""

import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from warehouse.settings import DBT_PROJECT_DIR, load_settings

load_settings()  # exports SEGWH_WAREHOUSE_PATH, which profiles.yml reads

# The dbt installed beside this Python, even when the virtualenv's bin/ is not on PATH.
_BESIDE_PYTHON = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_BESIDE_PYTHON) if _BESIDE_PYTHON.exists() else shutil.which("dbt") or "dbt"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
