"""How `segwh run` enters the run queue: a real queued run of the code location, dequeued by the
daemon's rule, and released when its process is gone. A real instance in a temporary
DAGSTER_HOME with the project's dagster.yaml (the one-writer tag limit)."""

import os
import shutil
import subprocess
import sys
import time

import dagster as dg
import pytest
from dagster._core.events import EngineEventData
from dagster._core.storage.tags import CODE_LOCATION_TAG
from dagster._daemon.types import DaemonHeartbeat

from orchestration import run_queue
from warehouse.settings import PROJECT_DIR


@dg.op
def _noop() -> None:
    return None


@dg.job
def full_build() -> None:  # the name of a job of the code location; a cheap body
    _noop()


@pytest.fixture
def instance(tmp_path):
    shutil.copy(PROJECT_DIR / ".dagster_home" / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def _queued(instance) -> dg.DagsterRun:
    return run_queue.create_queued_run(instance, full_build, {}, {"segwh/command": "run"})


def _status(instance, run) -> dg.DagsterRunStatus:
    return instance.get_run_by_id(run.run_id).status


def test_a_cli_run_is_a_queued_run_of_the_code_location_like_a_ui_launch(instance):
    run = _queued(instance)

    assert run.status == dg.DagsterRunStatus.QUEUED
    # the tag the one-writer limit counts, and the origin the UI and the daemon use
    assert run.tags[CODE_LOCATION_TAG] == "segwarehouse"
    assert run.remote_job_origin.location_name == "segwarehouse"
    assert run.job_code_origin.job_name == "full_build"
    assert run_queue.CLI_PROCESS_TAG in run.tags


def test_with_no_daemon_the_cli_claims_its_run_only_when_no_run_of_the_location_is_in_progress(
    instance,
):
    running = _queued(instance)
    assert run_queue.try_claim(instance, running.run_id)
    assert _status(instance, running) == dg.DagsterRunStatus.STARTING
    waiting = _queued(instance)

    assert not run_queue.try_claim(instance, waiting.run_id)  # one writer: it waits
    assert _status(instance, waiting) == dg.DagsterRunStatus.QUEUED
    instance.report_run_failed(instance.get_run_by_id(running.run_id))
    assert run_queue.try_claim(instance, waiting.run_id)
    assert not run_queue.try_claim(instance, waiting.run_id)  # claimed once only


def test_an_older_queued_run_goes_first(instance):
    older, newer = _queued(instance), _queued(instance)

    assert not run_queue.try_claim(instance, newer.run_id)
    assert run_queue.try_claim(instance, older.run_id)


def test_with_a_live_daemon_the_cli_leaves_the_run_to_the_daemon(instance):
    run = _queued(instance)
    instance.add_daemon_heartbeat(
        DaemonHeartbeat(time.time(), "QUEUED_RUN_COORDINATOR", "daemon-1", errors=[])
    )
    assert run_queue.daemon_alive(instance)

    assert not run_queue.try_claim(instance, run.run_id)
    assert _status(instance, run) == dg.DagsterRunStatus.QUEUED
    # a daemon silent for longer than two heartbeats is gone: the CLI starts its run itself
    assert not run_queue.daemon_alive(
        instance, now=time.time() + run_queue.DAEMON_HEARTBEAT_TOLERANCE_SECONDS + 1
    )


def _run_of_a_dead_cli(instance) -> str:
    """A process that claimed a CLI run and is gone (as if killed): its run stays STARTING."""
    code = (
        "import dagster as dg, sys, tests.orchestration.test_run_queue as t\n"
        "from orchestration import run_queue\n"
        "with dg.DagsterInstance.from_config(sys.argv[1]) as instance:\n"
        "    run = t._queued(instance)\n"
        "    assert run_queue.try_claim(instance, run.run_id)\n"
        "    print(run.run_id)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, instance.root_directory],
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]


def test_the_daemon_releases_the_run_of_a_killed_cli_process(instance):
    from orchestration.defs.automation import release_dead_cli_runs

    dead = _run_of_a_dead_cli(instance)

    result = release_dead_cli_runs(dg.build_sensor_context(instance=instance))

    assert isinstance(result, dg.SkipReason) and "released 1 run" in result.skip_message
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE


def test_a_run_of_a_killed_cli_process_does_not_hold_the_slot(instance):
    dead = _run_of_a_dead_cli(instance)
    assert _status(instance, dg.DagsterRun(job_name="x", run_id=dead)) == (
        dg.DagsterRunStatus.STARTING
    )
    waiting = _queued(instance)

    # the next claim finds the dead process's run, marks it failed and takes the slot
    assert run_queue.try_claim(instance, waiting.run_id)

    assert _status(instance, dg.DagsterRun(job_name="x", run_id=dead)) == (
        dg.DagsterRunStatus.FAILURE
    )
    # this process is alive: its claimed run is left alone
    assert run_queue.release_dead_cli_runs(instance) == []
    assert _status(instance, waiting) == dg.DagsterRunStatus.STARTING


def test_with_no_daemon_a_run_whose_worker_was_killed_does_not_hold_the_slot(instance):
    """A run the daemon launched, whose run worker was killed with kill -9 while the daemon was
    down too: nothing marks it failed but the next CLI that waits for the slot."""
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    launched = instance.create_run_for_job(full_build, tags={CODE_LOCATION_TAG: "segwarehouse"})
    instance.report_engine_event(
        f"{run_queue.RUN_WORKER_STARTED} (pid: {worker.pid}).",
        launched,
        EngineEventData.in_process(worker.pid),
    )
    instance.handle_new_event(
        dg.EventLogEntry(
            error_info=None,
            level="DEBUG",
            user_message="",
            run_id=launched.run_id,
            timestamp=time.time(),
            dagster_event=dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.RUN_START.value, job_name=launched.job_name
            ),
        )
    )
    assert _status(instance, launched) == dg.DagsterRunStatus.STARTED
    waiting = _queued(instance)
    # the worker is alive: the CLI waits
    assert not run_queue.try_claim(instance, waiting.run_id)
    assert _status(instance, launched) == dg.DagsterRunStatus.STARTED

    worker.kill()  # SIGKILL
    worker.wait()

    assert run_queue.try_claim(instance, waiting.run_id)
    assert _status(instance, launched) == dg.DagsterRunStatus.FAILURE
    assert _status(instance, waiting) == dg.DagsterRunStatus.STARTING
