"""Helpers for tests that run the dbt project in-process on a warehouse of their own.

Without the Dagster ml assets, the table dbt reads as ``source('ml', 'churn_scores')`` is created
empty from its Python declaration (``ml/schemas.py``) before every invocation.

dbt is invoked through ``dbtRunner`` (no interpreter start-up per call) with its own target and
log paths, so the manifest Dagster reads in ``dbt_project/target`` is never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import sqlalchemy as sa
from dbt.cli.main import dbtRunner, dbtRunnerResult

from ingestion.crm import CRM_ENTITIES, load_crm_table
from ingestion.events import discover_files, load_event_files
from ml.schemas import (
    CHURN_SCORE_COLUMNS,
    CHURN_SCORES_TABLE,
    PERSON_RECOMMENDATION_COLUMNS,
    PERSON_RECOMMENDATIONS,
    create_table_sql,
)
from privacy import pseudonyms
from sample_data import DEFAULT_AS_OF
from warehouse.connection import connect
from warehouse.settings import DBT_PROJECT_DIR, dbt_environment, dbt_environment_set


def load_sample(sample, warehouse: Path) -> None:
    """Load a generated sample's landing files and CRM tables with the ingestion functions."""
    engine = sa.create_engine(sample.crm_url)
    try:
        with connect(warehouse) as con:
            load_event_files(con, discover_files(sample.landing_dir), load_id="test")
            for entity in CRM_ENTITIES.values():
                load_crm_table(con, engine, entity, entity.name, load_id="test")
    finally:
        engine.dispose()


def copy_project(destination: Path) -> Path:
    """A copy of the dbt project (without build artefacts) that a test may edit."""
    ignore = shutil.ignore_patterns("target", "logs", "dbt_packages", ".user.yml")
    shutil.copytree(DBT_PROJECT_DIR, destination, ignore=ignore)
    return destination


class Dbt:
    """dbt commands on one warehouse file, in this process."""

    def __init__(
        self, warehouse: Path, work_dir: Path, project_dir: Path = DBT_PROJECT_DIR
    ) -> None:
        self.warehouse = warehouse
        self.project_dir = project_dir
        self.target_path = work_dir / "dbt_target"
        self.log_path = work_dir / "dbt_logs"
        self._runner = dbtRunner()

    def invoke(
        self, *args: str, expect_success: bool = True, tested_load_id: str = ""
    ) -> dbtRunnerResult:
        """Run one dbt command; by default fail the test with dbt's messages if it fails.
        ``tested_load_id``: the event tests check only that load (as in sensor runs)."""
        with warehouse_connection(self.warehouse) as con:  # as the dbt asset does before dbt
            pseudonyms.install(con, pseudonyms.key_from_environment())
            # the ml asset's table dbt reads as a source, empty as before a first model
            con.execute(create_table_sql(CHURN_SCORES_TABLE, CHURN_SCORE_COLUMNS, replace=False))
            con.execute(
                create_table_sql(
                    PERSON_RECOMMENDATIONS.name, PERSON_RECOMMENDATION_COLUMNS, replace=False
                )
            )
        # the sample's as_of, unless a test passes --vars '{as_of: ...}', which wins
        environment = dbt_environment(
            self.warehouse, "1GB", DEFAULT_AS_OF.isoformat(), tested_load_id
        )
        with dbt_environment_set(environment):
            result = self._runner.invoke(
                [
                    *args,
                    "--project-dir",
                    str(self.project_dir),
                    "--profiles-dir",
                    str(self.project_dir),
                    "--target-path",
                    str(self.target_path),
                    "--log-path",
                    str(self.log_path),
                    "--quiet",
                ]
            )
        if expect_success and not result.success:
            raise AssertionError(f"dbt {' '.join(args)} failed: {failure_messages(result)}")
        return result


def release_dbt_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process after an invocation.

    dbt-duckdb holds its environment (and so the warehouse file) on a class attribute until the
    next invocation or the end of the process; a test module releases it when it is done.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def failure_messages(result: dbtRunnerResult) -> str:
    """What dbt reported for the nodes that did not succeed (or the exception)."""
    if result.exception is not None:
        return str(result.exception)
    messages = [
        f"{r.node.name}: {r.message}"
        for r in getattr(result.result, "results", [])
        if str(r.status) not in ("success", "pass")
    ]
    return "; ".join(messages) or "no message"


@contextmanager
def warehouse_connection(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A plain read-write connection (dbt may still hold the file open in this process, and
    DuckDB refuses a second connection with another configuration)."""
    con = duckdb.connect(str(warehouse))
    try:
        # the session's pseudonymization macro (staging views call it; never stored)
        pseudonyms.install_session(con, pseudonyms.key_from_environment())
        yield con
    finally:
        con.close()
