"""The benchmark's smoke size (what CI runs of issue 7): `bench/run.py --smoke` must complete the
full and the incremental run at 100k events, run the floor, and report every stage."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
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


@pytest.mark.slow
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


def _bench_module(name: str):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_the_newest_half_is_the_same_sample_without_its_older_files(tmp_path):
    run = _bench_module("run")
    landing = tmp_path / "sample" / "landing"
    landing.mkdir(parents=True)
    for day, lines in [(1, 3), (2, 4), (3, 5), (4, 6)]:
        (landing / f"events-2026-01-0{day}.jsonl").write_text('{"e": 1}\n' * lines)
    sample = run.Sample(landing, "sqlite:///crm.sqlite", 18, 7)

    half = run.newest_files(sample, 2, tmp_path / "recent_half")

    assert sorted(p.name for p in half.landing_dir.iterdir()) == [
        "events-2026-01-03.jsonl",
        "events-2026-01-04.jsonl",
    ]
    assert (half.landing_dir / "events-2026-01-04.jsonl").samefile(
        landing / "events-2026-01-04.jsonl"
    )  # hard links: no copy of the landing files
    assert (half.landed_lines, half.crm_url) == (11, sample.crm_url)
    assert len(list(landing.iterdir())) == 4  # the whole sample is untouched


def test_history_growth_compares_with_the_newest_half_of_the_same_sample():
    report = _bench_module("report")

    def size(*seconds):
        runs = dict(zip(("history", "double_history", "recent_half"), seconds, strict=False))
        return {name: {"incremental_update": {"seconds": s}} for name, s in runs.items()}

    assert report._history_growth(size(50.0, 80.0, 64.0), "incremental_update", "seconds") == 1.25
    # results from before the newest half was measured: 2x / 1x sample
    assert report._history_growth(size(50.0, 80.0), "incremental_update", "seconds") == 1.6
