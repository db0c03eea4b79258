"""How ``segwh run`` and ``segwh erase`` enter the instance's run queue (one writer at a time).

Every run of the code location writes the one DuckDB warehouse, so the instance runs them one at
a time: ``.dagster_home/dagster.yaml`` limits runs tagged ``dagster/code_location=segwarehouse``.
A CLI run is a real run of the location: it is created QUEUED with the same origin and tags as a
run launched from the UI, so the queue counts it and the UI lists it.

Who starts it:
- a live daemon (``make ui`` / ``dagster dev``, or ``dagster-daemon run``) dequeues it like any
  queued run; the CLI only follows its events;
- with no live daemon, the CLI dequeues its own run by the daemon's rule (the instance's tag
  limits and ``max_concurrent_runs`` over the runs in progress, queued runs oldest first) and
  executes it in this process: the definitions are imported once, as before.

The claim (check, then mark the run STARTING) happens under a file lock in ``$DAGSTER_HOME``, so
two CLI processes never claim at once. A daemon that comes alive between the CLI's heartbeat
check and its claim could also dequeue the run; its run worker then finds the run already
started (it needs seconds to import the definitions first) and ignores itself (Dagster's
duplicate-run-worker check, with run monitoring enabled).

A CLI run records its process (host, pid, process start time) in a tag. A run whose CLI process
is gone (killed, machine restarted) is marked failed, so it does not hold the slot: by the next
CLI that waits for the slot and by the ``release_dead_cli_runs`` sensor while the daemon runs.
A run the daemon launched whose run worker was killed is failed by the daemon's run monitoring
(dagster.yaml); with no daemon alive, by the next CLI that waits for the slot (the worker's pid,
on a local SQLite instance).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.remote_origin import (
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES, RunsFilter
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.tags import CODE_LOCATION_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._utils.tags import TagConcurrencyLimitsCounter

from warehouse.settings import PROJECT_DIR

CLI_PROCESS_TAG = "segwh/cli_process"
# Dagster's daemons write a heartbeat every 30 s: two missed ones and the daemon counts as gone
DAEMON_HEARTBEAT_TOLERANCE_SECONDS = 70
_REPOSITORY_NAME = "__repository__"  # the repository Dagster makes of a Definitions object
_CLAIM_LOCK_FILE = ".segwh-run-claim.lock"
# the engine event a run worker reports first, with its pid (dagster api execute_run, gRPC)
RUN_WORKER_STARTED = "Started process for run"


@cache
def code_location() -> tuple[str, str, str]:
    """(location name, module, attribute) of the code location, as workspace.yaml declares it."""
    workspace = yaml.safe_load((PROJECT_DIR / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    module = entry["python_module"]
    return module["location_name"], module["module_name"], module["attribute"]


def reconstructable_job(job_name: str) -> ReconstructableJob:
    """The job as a run worker rebuilds it; in a process that imported the definitions, no
    second import."""
    _, module, attribute = code_location()
    repository = ReconstructableRepository.for_module(
        module, attribute, working_directory=str(PROJECT_DIR)
    )
    return repository.get_reconstructable_job(job_name)


def create_queued_run(
    instance: dg.DagsterInstance,
    job: dg.JobDefinition,
    run_config: dict,
    tags: dict[str, str],
) -> dg.DagsterRun:
    """A run of ``job`` with the origin and tags a UI launch gives it, entered in the queue."""
    location, module, attribute = code_location()
    loadable = LoadableTargetOrigin(
        executable_path=sys.executable,
        module_name=module,
        attribute=attribute,
        working_directory=str(PROJECT_DIR),
    )
    remote_origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(
            ManagedGrpcPythonEnvCodeLocationOrigin(loadable, location), _REPOSITORY_NAME
        ),
        job.name,
    )
    run = instance.create_run_for_job(
        job,
        run_config=run_config,
        tags={**tags, CLI_PROCESS_TAG: _this_process()},
        remote_job_origin=remote_origin,
        job_code_origin=reconstructable_job(job.name).get_python_origin(),
    )
    if isinstance(instance.run_coordinator, QueuedRunCoordinator):
        instance.report_dagster_event(DagsterEvent.job_enqueue(run), run_id=run.run_id)
    queued = instance.get_run_by_id(run.run_id)
    assert queued is not None
    return queued


def daemon_alive(instance: dg.DagsterInstance, now: float | None = None) -> bool:
    """A run-queue daemon wrote a heartbeat recently."""
    heartbeat = instance.get_daemon_heartbeats().get("QUEUED_RUN_COORDINATOR")
    now = time.time() if now is None else now
    return heartbeat is not None and now - heartbeat.timestamp <= DAEMON_HEARTBEAT_TOLERANCE_SECONDS


def try_claim(instance: dg.DagsterInstance, run_id: str) -> bool:
    """Mark the queued run STARTING if no daemon is alive and the daemon's rule would launch it
    now; True if this process may execute it."""
    with _claim_lock(instance):
        run = instance.get_run_by_id(run_id)
        # NOT_STARTED: an instance without a run queue (no QueuedRunCoordinator)
        if run is None or run.status not in (
            dg.DagsterRunStatus.QUEUED,
            dg.DagsterRunStatus.NOT_STARTED,
        ):
            return False
        if isinstance(instance.run_coordinator, QueuedRunCoordinator) and daemon_alive(instance):
            return False
        # no daemon alive: nobody else notices a killed run that holds the slot
        release_dead_cli_runs(instance, run_workers=True)
        if not _next_in_queue(instance, run_id):
            return False
        instance.report_dagster_event(
            DagsterEvent(
                event_type_value=DagsterEventType.PIPELINE_STARTING.value, job_name=run.job_name
            ),
            run_id=run_id,
        )
        return True


def _next_in_queue(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The daemon's dequeue rule, for one run: would it be launched now?"""
    in_progress = instance.get_runs(RunsFilter(statuses=ACTIVE_RUN_STATUSES))
    config = instance.get_concurrency_config().run_queue_config
    if config is None:  # no queue configured: runs start when submitted
        return True
    if config.max_concurrent_runs != -1 and len(in_progress) >= config.max_concurrent_runs:
        return False
    counter = TagConcurrencyLimitsCounter(list(config.tag_concurrency_limits), list(in_progress))
    queued = instance.get_runs(RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]), ascending=True)
    # the daemon's order: priority tag first, then oldest first (a stable sort)
    queued = sorted(queued, key=lambda r: -_priority(r))
    for run in queued:
        if counter.is_blocked(run):
            continue
        if run.run_id == run_id:
            return True
        counter.update_counters_with_launched_item(run)  # an older run goes first
    return False


def queued_before(instance: dg.DagsterInstance, run_id: str) -> int:
    """How many runs of the location wait in the queue before this one."""
    location = code_location()[0]
    queued = instance.get_runs(
        RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED], tags={CODE_LOCATION_TAG: location}),
        ascending=True,
    )
    ids = [r.run_id for r in queued]
    return ids.index(run_id) if run_id in ids else 0


def _priority(run: dg.DagsterRun) -> int:
    try:
        return int(run.tags.get("dagster/priority", "0"))
    except ValueError:
        return 0


def release_dead_cli_runs(instance: dg.DagsterInstance, *, run_workers: bool = False) -> list[str]:
    """Mark failed every in-progress CLI run of this host whose CLI process is gone; their ids.

    ``run_workers``: also every in-progress run a daemon launched whose run worker process is
    gone (the worker records its pid when it starts). Only when no daemon is alive (its run
    monitoring does this otherwise) and on an instance with local SQLite storage, whose runs'
    workers ran on this machine (a pid of another machine says nothing here)."""
    local = run_workers and isinstance(instance.run_storage, SqliteRunStorage)
    released = []
    for run in instance.get_runs(RunsFilter(statuses=ACTIVE_RUN_STATUSES)):
        process = run.tags.get(CLI_PROCESS_TAG)
        if process is not None and _process_gone(process):
            who = f"The segwh process that executed this run ({process})"
        elif process is None and local and _run_worker_gone(instance, run.run_id):
            who = "The run worker process of this run"
        else:
            continue
        instance.report_engine_event(
            f"{who} is gone (killed or the machine restarted): the run is marked failed so "
            "that it does not hold the one-writer slot. Run it again.",
            run,
        )
        instance.report_run_failed(run)
        released.append(run.run_id)
    return released


def _run_worker_gone(instance: dg.DagsterInstance, run_id: str) -> bool:
    """The run's worker process (pid of its "Started process for run" event) no longer runs:
    no such pid, or the pid now belongs to a process started after the event."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, ascending=False, limit=100
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if not (event.message or "").startswith(RUN_WORKER_STARTED):  # not a step's process
            continue
        pid = (getattr(event.event_specific_data, "metadata", None) or {}).get("pid")
        if pid is None or not str(pid.value).isdigit():
            continue
        started = _process_start_time(int(pid.value))
        return started is None or started > record.event_log_entry.timestamp + 1
    return False  # no worker started yet: leave it (the daemon may still be launching it)


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds); None if there is no such process."""
    ticks = _start_ticks(pid)
    if not ticks:
        return None
    boot = next(
        int(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot + int(ticks) / os.sysconf("SC_CLK_TCK")


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_ticks(os.getpid())}"


def _start_ticks(pid: int) -> str:
    """The process's start time in clock ticks since boot (so a reused pid is not mistaken)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _process_gone(process: str) -> bool:
    host, pid, ticks = process.rsplit(":", 2)
    if host != socket.gethostname():
        return False  # another machine: cannot tell, leave it to run monitoring
    if not Path(f"/proc/{pid}").exists():
        return True
    return bool(ticks) and _start_ticks(int(pid)) != ticks


@contextmanager
def _claim_lock(instance: dg.DagsterInstance) -> Iterator[None]:
    path = Path(instance.root_directory) / _CLAIM_LOCK_FILE
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
