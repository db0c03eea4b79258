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
    command = results["command_run"]  # `segwh run` on the quick-start sample (issue 22)
    assert command["success"] and command["events"] == 100_000
    assert 0 < command["startup_seconds"] < command["seconds"]
    assert command["stages"]["ingestion"] > 0 and command["stages"]["dbt_build"] > 0
    ingestion = size["ingestion"]  # the loader and plain DuckDB on the same files
    assert ingestion["loader"]["rows"] == ingestion["floor"]["rows"] == history["events"]
    assert all(ratio > 0 for ratio in ingestion["ratios"].values())
    for invocation in history["incremental_update"]["dbt"]["invocations"]:
        assert invocation["fixed_seconds"] > 0
    report = (tmp_path / results_file.with_suffix(".md").name).read_text()
    assert "| 100k |" in report
    assert "## Goals of issue 22 (fast runs)" in report
    assert "full run of the quick start, `segwh run`" in report
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


def _goal_rows(report_module, results):
    return {
        (cells[1], cells[3]): cells
        for line in report_module._goals(results)[2:]
        if (cells := [c.strip() for c in line.split("|")])
    }


def test_goals_of_issue_22_are_met_or_missed_at_their_size_with_their_floor():
    report = _bench_module("report")

    def size(events, sensor, full, ingestion_ratio):
        dbt = {"invocations": [{"step_seconds": 5.0, "run_seconds": 3.5}]}
        return {
            "events": events,
            "ingestion": {
                "floor": {"seconds": 4.0, "cpu_seconds": 6.0},
                "ratios": {"seconds": ingestion_ratio, "cpu_seconds": 1.2, "peak_rss_mib": 2.0},
            },
            "history": {
                "floor": {"seconds": 20.0},
                "full_build": {"seconds": full, "peak_rss_mib": 3000, "dbt": dbt},
                "incremental_update": {"seconds": sensor, "dbt": {"invocations": []}},
            },
        }

    results = {
        "command_run": {"success": True, "seconds": 14.0, "events": 100_000},
        "sizes": [size(100_000, 30.0, 40.0, 1.4), size(10_000_000, 16.0, 120.0, 1.6)],
    }
    rows = _goal_rows(report, results)

    assert (
        rows[("full run of the quick start, `segwh run` (process start included)", "100k")][-2]
        == "met"
    )
    sensor = "sensor run, 1% new events (100k at 10M)"
    assert rows[(sensor, "10M")][-2] == "**missed**"  # 16 s: over 15 s at 10M
    assert rows[(sensor, "100k")][-2] == "- (goal at 10M)"  # no verdict at other sizes
    full = rows[("full run incl. training", "10M")]
    assert full[-2] == "met" and full[5:7] == ["24.0", "5.00 x"]  # floor: 4 s + 20 s
    ingestion = "ingestion wall time / plain DuckDB read"
    assert rows[(ingestion, "100k")][-2] == "met"  # a ratio: judged at every size
    assert rows[(ingestion, "10M")][-2] == "**missed**"
    assert rows[("fixed cost of a dbt step (largest of the full and sensor runs)", "10M")][4:6] == [
        "1.5 s",
        "-",
    ]
    assert (
        rows[
            (
                "sensor run on 2x history / on 1x history (20M / 10M: same new events and "
                "recent days)",
                "10M",
            )
        ][-2]
        == "not measured"
    )


def test_the_sections_other_benchmarks_added_to_results_md_are_kept():
    run = _bench_module("run")
    old = "# Benchmark results\n## Targets\nold\n## Real-time path (issue 27)\nkept\nlines\n"
    new = "# Benchmark results\n## Goals of issue 22 (fast runs)\nnew\n"

    assert run.kept_sections(old, new) == "\n## Real-time path (issue 27)\nkept\nlines\n"
    assert run.kept_sections("", new) == ""
