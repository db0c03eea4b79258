"""What starting a run costs: loading the code location imports Dagster, dagster-dbt and the
project's light modules, not the libraries of the steps (scikit-learn, scipy, pandas,
matplotlib, great-expectations), which the steps import when they run. Every `segwh run`, every
run worker of a UI launch or sensor run and every code-server start loads the definitions, so
an import moved back to a module's top level costs each of them seconds (issue 22).

Measured in a fresh interpreter (this test process has imported everything already). No
timing is asserted: the modules loaded are what decides the cost."""

import json
import subprocess
import sys

import pytest

from warehouse.settings import PROJECT_DIR

# what the steps need and a load of the definitions must not import
STEP_LIBRARIES = (
    "sklearn",
    "scipy",
    "pandas",
    "numpy",
    "matplotlib",
    "great_expectations",
    "joblib",
)


def _modules_after(statement: str) -> set[str]:
    """Top-level packages in sys.modules after ``statement`` in a fresh interpreter."""
    listing = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    code = f"{statement}\nimport json, sys\n{listing}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    [
        "import orchestration.definitions",  # segwh run, run workers, the code server
        "from orchestration.cli import build_parser",  # every segwh command, before its handler
    ],
)
def test_loading_does_not_import_the_libraries_of_the_steps(statement):
    loaded = _modules_after(statement)
    assert not loaded & set(STEP_LIBRARIES), sorted(loaded & set(STEP_LIBRARIES))


def test_the_cli_starts_without_dagster():
    """`segwh summary`, `segwh config --help`, `segwh serve`: the command line itself imports no
    Dagster; a run imports it when it starts."""
    loaded = _modules_after("from orchestration.cli import build_parser; build_parser()")
    assert "dagster" not in loaded
