"""Progress of a run in a terminal: one line per finished step, from the run's events.

    [ 3/24  0:41] dbt_build_features ... ok (12.3 s)
    [ 4/24  0:42] marts__segment_sizes_expectations_segment_sizes ... ok, 1 warning (0.2 s)

The same events come from a run executing in this process (``execute_run_iterator``) and from a
run the daemon launched (read back from the instance's event log), so both look the same. The
check evaluations and step failures are kept for the end-of-run report.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

import dagster as dg
from dagster._core.events import DagsterEvent

_STEP_END = {"STEP_SUCCESS": "ok", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}


def step_count(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int:
    """How many steps the run executes (from its execution plan)."""
    if run.execution_plan_snapshot_id is None:
        return 0
    snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
    return len(snapshot.step_keys_to_execute or snapshot.steps)


def format_elapsed(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}:{rest:02d}"


@dataclass
class RunProgress:
    """Prints a line per finished step; keeps check evaluations and failures."""

    total_steps: int
    out: TextIO
    started: float = field(default_factory=time.time)
    checks: list[dg.AssetCheckEvaluation] = field(default_factory=list)
    step_failures: dict[str, str] = field(default_factory=dict)
    run_failure: str | None = None
    _step_started: dict[str, float] = field(default_factory=dict)
    _failed_checks: Counter = field(default_factory=Counter)
    _done: int = 0

    def on_event(self, event: DagsterEvent, at: float) -> None:
        kind = event.event_type_value
        if kind == "STEP_START" and event.step_key:
            self._step_started[event.step_key] = at
        elif kind == "ASSET_CHECK_EVALUATION":
            evaluation = event.event_specific_data
            self.checks.append(evaluation)
            if not evaluation.passed and event.step_key:
                self._failed_checks[(event.step_key, evaluation.severity)] += 1
        elif kind in _STEP_END and event.step_key:
            self._step_finished(event, _STEP_END[kind], at)
        elif kind == "PIPELINE_FAILURE":
            self.run_failure = event.message

    def _step_finished(self, event: DagsterEvent, status: str, at: float) -> None:
        step = event.step_key or ""
        self._done += 1
        if status == "FAILED":
            self.step_failures[step] = _innermost_message(event)
        notes = [status]
        blocking = self._failed_checks[(step, dg.AssetCheckSeverity.ERROR)]
        warnings = self._failed_checks[(step, dg.AssetCheckSeverity.WARN)]
        if blocking:
            notes.append(f"{blocking} blocking check(s) failed")
        if warnings:
            notes.append(f"{warnings} warning{'s' if warnings > 1 else ''}")
        duration = at - self._step_started.get(step, at)
        width = len(str(max(self.total_steps, self._done)))
        self.out.write(
            f"[{self._done:>{width}}/{self.total_steps}  {format_elapsed(at - self.started):>5}] "
            f"{step} ... {', '.join(notes)}"
            + (f" ({duration:.1f} s)" if status != "skipped" else "")
            + "\n"
        )
        self.out.flush()


def _innermost_message(event: DagsterEvent) -> str:
    """The cause of a step failure: the innermost error's first line (not Dagster's wrapper)."""
    error = getattr(event.event_specific_data, "error", None)
    if error is None:
        return event.message or "failed"
    while error.cause is not None:
        error = error.cause
    lines = [line for line in error.message.strip().splitlines() if line.strip()]
    return lines[0] if lines else error.cls_name or "failed"


def follow(
    instance: dg.DagsterInstance, run_id: str, poll_seconds: float = 0.5
) -> Iterator[tuple[DagsterEvent, float]]:
    """The events of a run executing elsewhere, as the instance stores them, until it ends."""
    cursor = None
    while True:
        run = instance.get_run_by_id(run_id)
        finished = run is None or run.is_finished
        while True:
            connection = instance.get_records_for_run(run_id, cursor=cursor)
            for record in connection.records:
                entry = record.event_log_entry
                if entry.dagster_event is not None:
                    yield entry.dagster_event, entry.timestamp
            cursor = connection.cursor
            if not connection.has_more:
                break
        if finished:
            return
        time.sleep(poll_seconds)
