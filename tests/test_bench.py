"""The benchmark's smoke size (what CI runs of issue 7): `bench/run.py --smoke` must complete the
full and the incremental run at 100k events, run the floor, and report every stage."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = {
    "ingestion",
    "dbt_build",
    "clustering",
    "churn_training",
    "churn_scoring",
    "checks",
    "publish",
    "other",
}


def test_benchmark_smoke_run_measures_every_stage(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (results_file,) = tmp_path.glob("results-*.json")
    results = json.loads(results_file.read_text())
    assert results["failures"] == []
    (size,) = results["sizes"]
    history = size["history"]
    assert size["events"] == 100_000 and size.get("double_history") is None
    assert 0 < history["new_events"] < 0.02 * history["events"]
    for job in ("full_build", "incremental_update"):
        assert history[job]["success"], history[job]["steps_not_succeeded"]
        assert history[job]["peak_rss_mib"] > history[job]["start_rss_mib"] > 0
        assert set(history[job]["stages"]) <= STAGES
    full = history["full_build"]["stages"]
    for stage in ("ingestion", "dbt_build", "clustering", "churn_training", "checks", "publish"):
        assert full[stage] > 0, (stage, full)
    assert history["incremental_update"]["stages"].get("clustering", 0) == 0  # no retraining
    floor = history["floor"]
    assert floor["seconds"] > 0
    assert floor["person_features_rows"]["floor"] == floor["person_features_rows"]["dbt"] > 0
    report = tmp_path / results_file.with_suffix(".md").name
    assert "| 100k |" in report.read_text()
    assert (tmp_path / "floor.sql").read_text().lower().count("create") >= 10
