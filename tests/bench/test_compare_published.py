"""bench/compare_published.py: the script that shows two publishes hold the same rows."""

import subprocess
import sys
from pathlib import Path

import duckdb

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "compare_published.py"


def _published(path: Path, rows: list[tuple], column: str = "tenure_days") -> Path:
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"CREATE TABLE features (person_id VARCHAR, {column} INTEGER, model_version VARCHAR)"
        )
        con.executemany("INSERT INTO features VALUES (?, ?, ?)", rows)
        con.execute("CREATE TABLE publish_version AS SELECT 'v1' AS version")
    return path


def _compare(old: Path, new: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(old), str(new), *args], capture_output=True, text=True
    )


def test_same_rows_in_another_order_and_model_version_are_identical(tmp_path):
    old = _published(tmp_path / "old.duckdb", [("a", 1, "m1"), ("b", 2, "m1")])
    new = _published(tmp_path / "new.duckdb", [("b", 2, "m2"), ("a", 1, "m2")])
    result = _compare(old, new)
    assert result.returncode == 0, result.stdout
    assert "features                     identical rows (2)" in result.stdout


def test_a_changed_row_or_a_duplicate_is_a_difference(tmp_path):
    old = _published(tmp_path / "old.duckdb", [("a", 1, "m"), ("b", 2, "m")])
    new = _published(tmp_path / "new.duckdb", [("a", 1, "m"), ("b", 3, "m"), ("b", 3, "m")])
    result = _compare(old, new)
    assert result.returncode == 1
    assert "DIFFERENT: 1 rows only in old, 2 only in new" in result.stdout


def test_a_renamed_column_is_compared_under_its_new_name(tmp_path):
    old = _published(tmp_path / "old.duckdb", [("a", 1, "m")])
    new = _published(tmp_path / "new.duckdb", [("a", 1, "m")], column="days_since_first_activity")
    unmapped = _compare(old, new)
    assert "column only in old: tenure_days" in unmapped.stdout
    assert "column only in new: days_since_first_activity" in unmapped.stdout
    mapped = _compare(old, new, "--rename", "tenure_days=days_since_first_activity")
    assert mapped.returncode == 0
    assert "tenure_days -> days_since_first_activity" in mapped.stdout
    changed = _published(tmp_path / "changed.duckdb", [("a", 9, "m")], "days_since_first_activity")
    assert (
        _compare(old, changed, "--rename", "tenure_days=days_since_first_activity").returncode == 1
    )
