"""dbt run inside the run's process (orchestration.dbt_in_process): the project is parsed once
per database name, a new warehouse path or as_of does not make dbt parse it again in full, dbt
releases the warehouse file when it is done, and a failed model names itself and its cause."""

from pathlib import Path

import duckdb
import pytest
from dbt_helpers import copy_project

from orchestration import dbt_in_process
from orchestration.dbt_in_process import parsed_project, run_dbt
from warehouse.settings import dbt_environment

pytestmark = pytest.mark.slow  # parses the dbt project in full once


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A copy of the dbt project without any saved parse, and no parse kept in this process."""
    monkeypatch.setattr(dbt_in_process, "_kept", {})
    return copy_project(tmp_path / "project")


def _forget_kept_parses(monkeypatch) -> None:
    """As in a new process (a new run): only dbt's saved parse under target/ remains."""
    monkeypatch.setattr(dbt_in_process, "_kept", {})


def _build_seed(project: Path, manifest, warehouse: Path, as_of: str):
    return run_dbt(
        ["build", "--select", "exchange_rates"],
        project_dir=project,
        profiles_dir=project,
        target_path=warehouse.parent / "dbt_target",
        environment=dbt_environment(warehouse, "1GB", as_of, ""),
        manifest=manifest,
    )


def test_a_new_warehouse_path_and_as_of_keep_dbts_partial_parsing(project, tmp_path, monkeypatch):
    first_warehouse = tmp_path / "first" / "warehouse.duckdb"
    second_warehouse = tmp_path / "elsewhere" / "warehouse.duckdb"
    for warehouse in (first_warehouse, second_warehouse):
        warehouse.parent.mkdir()

    first = parsed_project(project, project, first_warehouse)
    assert first.how == "full"  # nothing saved yet
    run = _build_seed(project, first.manifest, first_warehouse, "2026-11-01T00:00:00Z")
    assert run.success, run.failure_description()
    assert run.result_events  # the seed's and its tests' results, for dagster-dbt
    # dbt.log holds dbt's structured events (bench/run.py reads the command's duration there)
    log = (first_warehouse.parent / "dbt_target" / "dbt.log").read_text().splitlines()
    assert any('"CommandCompleted"' in line for line in log)

    # the next step of the same run: no parse at all
    assert parsed_project(project, project, first_warehouse).how == "kept"

    # a new run (a new process) on a warehouse elsewhere, at another as_of
    _forget_kept_parses(monkeypatch)
    second = parsed_project(project, project, second_warehouse)
    assert second.how == "partial", second.reason
    run = _build_seed(project, second.manifest, second_warehouse, "2026-12-01T00:00:00Z")
    assert run.success, run.failure_description()

    # each build wrote its own warehouse file, and released it
    for warehouse in (first_warehouse, second_warehouse):
        with duckdb.connect(str(warehouse), read_only=True) as con:
            assert con.execute("SELECT count(*) FROM seeds.exchange_rates").fetchone()[0] > 0

    # a changed model is parsed again, the rest is not
    model = project / "models" / "marts" / "recommendations" / "products.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    assert parsed_project(project, project, second_warehouse).how == "partial"


def test_another_database_name_is_parsed_once_in_full(project, tmp_path, monkeypatch):
    """The parsed nodes carry the database name (DuckDB names the catalog after the file)."""
    assert parsed_project(project, project, tmp_path / "a" / "warehouse.duckdb").how == "full"
    other = parsed_project(project, project, tmp_path / "b" / "analytics.duckdb")
    assert other.how == "full"
    _forget_kept_parses(monkeypatch)
    assert parsed_project(project, project, tmp_path / "c" / "analytics.duckdb").how == "partial"
    node = other.manifest.nodes["model.segwarehouse.products"]
    assert node.database == "analytics"


def test_a_failed_model_names_itself_and_its_cause(project, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"  # empty: no raw CRM tables
    parsed = parsed_project(project, project, warehouse)

    run = run_dbt(
        ["build", "--select", "stg_crm__customers"],
        project_dir=project,
        profiles_dir=project,
        target_path=tmp_path / "dbt_target",
        environment=dbt_environment(warehouse, "1GB", "2026-11-01T00:00:00Z", ""),
        manifest=parsed.manifest,
    )

    assert not run.success
    description = run.failure_description()
    assert "stg_crm__customers" in description
    assert "customers" in description and "does not exist" in description
    with duckdb.connect(str(warehouse), read_only=True):  # dbt released the file
        pass
