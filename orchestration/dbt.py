"""The dbt project as Dagster sees it.

The manifest is prepared at build time (`make install` runs `dagster-dbt project
prepare-and-package`) or by `dagster dev`, never re-parsed on every code-location load.
"""

from dagster_dbt import DbtProject

from orchestration.settings import DBT_PROJECT_DIR, load_settings

load_settings()  # exports SEGWH_WAREHOUSE_PATH, which profiles.yml reads

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
