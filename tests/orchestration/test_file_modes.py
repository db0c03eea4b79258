"""Files the project writes are private: the warehouse, published files and Dagster's storage
were created world-readable (0644)."""

import stat
import subprocess
import sys
from pathlib import Path

WRITE_AS_A_PROJECT_PROCESS = """
import sys
from pathlib import Path
import {module}  # what the CLI and Dagster's code server import first
folder = Path(sys.argv[1]) / "made"
folder.mkdir()
(folder / "warehouse.duckdb").write_bytes(b"personal data")
"""


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_process_of_the_project_creates_private_files(tmp_path):
    for module in ("orchestration.definitions", "orchestration.cli"):
        target = tmp_path / module
        target.mkdir()
        subprocess.run(
            [sys.executable, "-c", WRITE_AS_A_PROJECT_PROCESS.format(module=module), target],
            check=True,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
        assert _mode(target / "made") == 0o700
        assert _mode(target / "made" / "warehouse.duckdb") == 0o600
