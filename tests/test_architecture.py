"""The architecture contract ([tool.importlinter] in pyproject.toml) holds, and it is not
vacuous: a planted violation of each rule makes `lint-imports` fail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from warehouse.settings import PROJECT_DIR

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")
PACKAGES = ("orchestration", "warehouse", "ingestion", "privacy", "serving", "ml", "expectations")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "300"},  # no wrapped names
        capture_output=True,
        text=True,
    )


@pytest.fixture
def project_copy(tmp_path) -> Path:
    """The Python packages and pyproject.toml, copied to plant violations in."""
    for package in (*PACKAGES, "sample_data"):
        shutil.copytree(
            PROJECT_DIR / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(PROJECT_DIR / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_project_keeps_its_import_contract():
    result = _lint_imports(PROJECT_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("ingestion/events.py", "import dagster", "Only orchestration imports Dagster"),
        ("serving/publish.py", "import orchestration.metadata", "Nothing imports orchestration"),
        ("privacy/retention.py", "import serving.publish", "Layers"),
        ("ml/churn.py", "import expectations.runner", "do not import each other"),
        ("ml/drift.py", "import warehouse.connection", "need no warehouse settings"),
        ("ingestion/crm.py", "import ingestion.events", "No import cycles"),
    ],
)
def test_a_planted_violation_breaks_the_contract(project_copy, module, line, broken):
    path = project_copy / module
    if broken == "No import cycles":  # crm -> events below, events -> crm here: a cycle
        events = project_copy / "ingestion/events.py"
        events.write_text(events.read_text() + "\nimport ingestion.crm  # noqa\n")
    path.write_text(path.read_text() + f"\n{line}  # planted by the test\n")
    result = _lint_imports(project_copy)
    assert result.returncode != 0, result.stdout
    broken_lines = [text for text in result.stdout.splitlines() if text.endswith("BROKEN")]
    assert any(broken in text for text in broken_lines), result.stdout
