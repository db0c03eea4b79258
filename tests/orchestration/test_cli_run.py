"""`segwh run` and `segwh erase` without a Dagster daemon (the quick start): each is a queued run
of the code location; the second waits for the first and both succeed, never overlapping. The
output of a run is readable: each line once, a progress line per step, warnings as warnings,
the summary last. (With a daemon, tests/orchestration/test_ui.py.)"""

import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.tags import CODE_LOCATION_TAG
from landing_helpers import landing_with_a_warning

from warehouse.settings import PROJECT_DIR

pytestmark = pytest.mark.integration

SEGWH = str(Path(sys.executable).parent / "segwh")
PROGRESS_LINE = re.compile(r"^\[\s*\d+/\d+\s+\d+:\d\d\] \S+ \.\.\. (ok|FAILED|skipped)")


def cli_environment(home: Path, data_dir: Path, sample) -> dict[str, str]:
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SEGWH_DATA_DIR": str(data_dir),
        "SEGWH_LANDING_DIR": str(landing_with_a_warning(sample.landing_dir, data_dir / "landing")),
        "SEGWH_CRM_URL": sample.crm_url,
        "SEGWH_WAREHOUSE_PATH": str(data_dir / "warehouse.duckdb"),
        "SEGWH_AS_OF": "2026-11-01T00:00:00Z",
    }


def assert_readable_run_output(output: str, instance: dg.DagsterInstance, run_id: str) -> None:
    """Each line once; a progress line per step; every failed warning-severity check shown as a
    warning (never FAILED in a successful run); the run's status and outputs come last."""
    lines = [line for line in output.splitlines() if line.strip()]
    repeated = [line for line, n in collections.Counter(lines).items() if n > 1]
    assert not repeated, repeated
    assert "ephemeral docs site" not in output  # great-expectations' noise
    assert " - dagster - " not in output  # Dagster's console log: --verbose only
    assert "FAILED" not in output
    run = instance.get_run_by_id(run_id)
    steps = instance.get_execution_plan_snapshot(
        run.execution_plan_snapshot_id
    ).step_keys_to_execute
    assert sum(bool(PROGRESS_LINE.match(line)) for line in lines) == len(steps)
    warnings = [
        record.event_log_entry.dagster_event.event_specific_data
        for record in instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    ]
    warnings = [e for e in warnings if not e.passed]
    assert warnings, "the sample gives warning-severity check failures to show"
    for evaluation in warnings:
        assert evaluation.severity == dg.AssetCheckSeverity.WARN
        title = f"warning: {evaluation.asset_key.to_user_string()} {evaluation.check_name}"
        assert title in lines
    status_line = f"run {run_id} ({run.job_name}) succeeded in "
    status = next(i for i, line in enumerate(lines) if line.startswith(status_line))
    assert status > max(i for i, line in enumerate(lines) if line.startswith(("warning:", "[")))
    assert lines[-1].startswith("warehouse: ")


def test_a_cli_run_and_an_erase_started_meanwhile_queue_one_after_the_other(tmp_path, small_sample):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = cli_environment(home, tmp_path, small_sample)
    with sa.create_engine(small_sample.crm_url).connect() as con:
        customer_id = con.execute(sa.text("SELECT customer_id FROM customers LIMIT 1")).scalar()

    build = subprocess.Popen(
        [SEGWH, "run"],
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # the build is in the queue (created runs enter it once Dagster has stored their
        # planned events) or running
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(
            run.status != dg.DagsterRunStatus.NOT_STARTED for run in instance.get_runs()
        ):
            time.sleep(0.2)
        erase = subprocess.Popen(
            [SEGWH, "erase", "--customer-id", str(customer_id)],
            env=env,
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        build_output, _ = build.communicate(timeout=900)
        erase_output, _ = erase.communicate(timeout=900)
        assert build.returncode == 0, build_output[-3000:]
        assert erase.returncode == 0, erase_output[-3000:]

        records = sorted(instance.get_run_records(), key=lambda r: r.start_time)
        assert [r.dagster_run.job_name for r in records] == ["full_build", "erase_person"]
        build_run, erase_run = records
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        # runs of the code location, as the run queue's one-writer limit counts them
        assert all(r.dagster_run.tags[CODE_LOCATION_TAG] == "segwarehouse" for r in records)
        # the erase came while the build ran, waited and started after it ended
        assert erase_run.create_timestamp.timestamp() < build_run.end_time
        assert build_run.end_time <= erase_run.start_time
        assert "queued; waiting for the run in progress" in erase_output
        assert_readable_run_output(build_output, instance, build_run.dagster_run.run_id)


@pytest.mark.slow
def test_a_run_killed_with_kill_9_is_marked_failed_by_the_next_cli_run(tmp_path, small_sample):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_DIR / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = cli_environment(home, tmp_path, small_sample)
    build = subprocess.Popen(
        [SEGWH, "run"],
        env=env,
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: dbt and every child die with it
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not instance.get_runs(
            dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
        ):
            time.sleep(0.5)
        time.sleep(3)  # well into its first steps
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
        (killed,) = instance.get_runs()
        assert killed.status == dg.DagsterRunStatus.STARTED  # nothing else notices

        erase = subprocess.run(
            [SEGWH, "erase", "--customer-id", "NO-SUCH-ID"],
            env=env,
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )

        assert erase.returncode == 0, (erase.stdout + erase.stderr)[-3000:]
        runs = {r.job_name: r for r in instance.get_runs()}
        assert runs["full_build"].status == dg.DagsterRunStatus.FAILURE
        assert runs["erase_person"].status == dg.DagsterRunStatus.SUCCESS
        messages = [
            r.event_log_entry.message
            for r in instance.get_records_for_run(
                killed.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT
            ).records
        ]
        assert any("is gone (killed or the machine restarted)" in m for m in messages)
