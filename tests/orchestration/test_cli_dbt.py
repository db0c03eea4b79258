"""`segwh dbt`: dbt by hand on the configured warehouse, with the environment a run's dbt step
gets (warehouse path, DuckDB session settings, the pseudonymization key installed)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from warehouse.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow  # a dbt process


def test_segwh_dbt_runs_dbt_on_the_configured_warehouse(tmp_path):
    segwh = Path(sys.executable).parent / "segwh"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SEGWH_", "DBT_"))},
        "SEGWH_PSEUDONYMIZATION_KEY": os.environ["SEGWH_PSEUDONYMIZATION_KEY"],
        "SEGWH_DATA_DIR": str(tmp_path),
        "DBT_TARGET_PATH": str(tmp_path / "target"),  # keep the project's manifest untouched
        "DBT_LOG_PATH": str(tmp_path / "logs"),
    }
    result = subprocess.run(
        [str(segwh), "dbt", "seed", "--select", "segments"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    with (DBT_PROJECT_DIR / "seeds" / "segments.csv").open() as handle:
        expected = sum(1 for _ in csv.DictReader(handle))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        (rows,) = con.execute("SELECT count(*) FROM seeds.segments").fetchone()
        (keys,) = con.execute("SELECT count(*) FROM privacy.pseudonymization_key").fetchone()
    assert rows == expected
    assert keys == 1  # the key was installed before dbt ran, as a run's dbt step does
