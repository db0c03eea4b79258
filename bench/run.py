"""Benchmark of issues 7 and 22: `segwh run` on the quick-start sample, full nightly run, 1%
incremental sensor run, twice the history, ingestion and transform against their floors.

    .venv/bin/python bench/run.py [--events 100000 1000000 10000000] [--no-double-history]
        [--command-events 100000] [--no-ingestion-floor]
    .venv/bin/python bench/run.py --smoke    # CI: 100,000 events, no double history

First (issue 22, ``--command-events``, default 100k, 0 skips it): the quick start's full run as
a user starts it, ``segwh run`` as a subprocess on a new sample, warehouse and Dagster home,
timed from the command to its exit (process start included), with its start-up before the
first step and its steps by stage.

For each size N (default 100k, 1M, 10M events): generates the sample in 100 landing files and
holds the newest back (1% of the events); runs the `full_build` job in process on a temporary
Dagster instance; runs the floor (bench/floor_script.py: dbt's compiled SQL up to
person_features as one plain DuckDB script) on a copy of the same raw tables; then lands the
held-back file and runs `incremental_update` with the run config of the landing-files sensor's
tick. Before the runs of the N sample (``--ingestion-floor``, default on): the event loader
(``load_event_files``) and plain DuckDB (``read_json`` / ``read_parquet`` into a table) on the
same landing files, each in a fresh process: wall, CPU and peak memory (bench/ingest_floor.py).
With double history (the default), a sample of 2N events in 200 files over the same
months, run twice: whole, and as its newest 100 files only (the newest half). Both add the same
held-back file (N / 100 events) after the same recent days, so whole / newest half is how a
sensor run's cost grows with the history; whole / the N sample adds what grows with the events
and persons per day.

Every history runs in a fresh process; a thread samples the resident memory of that process
and its children (the dbt subprocesses) every 0.2 s. Wall time per stage comes from Dagster's
step stats, per dbt model from the run's dbt run_results.json.

Writes results-<timestamp>.json and .md and floor.sql to bench/out (--out) and (unless --smoke)
bench/RESULTS.md (only when every run succeeded), then prints the Markdown report. Exits 1
if any run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import platform
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import pyarrow.parquet as pq
from floor_script import FloorScript, compile_floor, run_floor
from ingest_floor import compare as compare_ingestion
from report import HISTORIES, STAGES, markdown

from orchestration.definitions import build_definitions
from orchestration.defs.ml import CHURN_MODEL, CHURN_SCORES, PERSON_CLUSTERS
from orchestration.defs.transform import DBT_STEP_NAMES
from orchestration.resources import LandingZoneResource
from privacy.pseudonyms import KEY_ENV_VAR
from sample_data import DEFAULT_AS_OF, generate
from warehouse.connection import DEFAULT_MEMORY_LIMIT
from warehouse.settings import DBT_PROJECT_DIR, Settings, parse_as_of

log = logging.getLogger("bench.run")

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
FILES = 100  # landing files per N events: the newest one holds 1% of them
SAMPLE_SECONDS = 0.2
MIB = 1 << 20
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
VERSIONED = ("dagster", "dagster-dbt", "dbt-core", "dbt-duckdb", "duckdb", "scikit-learn", "pandas")
T = TypeVar("T")


class PeakMemory:
    """Peak resident memory (sum of RSS) of this process and all its descendants."""

    def __init__(self) -> None:
        self.peak_bytes = self.start_bytes = tree_rss_bytes(os.getpid())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(os.getpid()))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, tree_rss_bytes(os.getpid()))


def tree_rss_bytes(root: int) -> int:
    """Sum of resident memory of ``root`` and its descendants, read from /proc (Linux)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        with contextlib.suppress(OSError):  # exited meanwhile
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    return total


@dataclass(frozen=True)
class Sample:
    landing_dir: Path
    crm_url: str
    landed_lines: int
    persons: int

    def settings(self, folder: Path) -> Settings:
        """The project's settings for a warehouse of this sample in ``folder``."""
        return Settings.in_folder(
            folder, self.landing_dir, self.crm_url, as_of=DEFAULT_AS_OF.isoformat()
        )


def generate_sample(out_dir: Path, events: int, files: int | None) -> Sample:
    summary = generate(out_dir, n_events=events, files=files)
    return Sample(summary.landing_dir, summary.crm_url, summary.total_lines, summary.persons)


def stage_by_op(defs: dg.Definitions) -> dict[str, str]:
    """The benchmark stage of every op: by asset group, ml assets by key, checks apart."""
    by_group = {"ingestion": "ingestion", "serving": "publish"}
    by_key = {
        PERSON_CLUSTERS: "clustering",
        CHURN_MODEL: "churn_training",
        CHURN_SCORES: "churn_scoring",
    }
    stages = {}
    for assets in defs.resolve_asset_graph().assets_defs:
        if not assets.is_executable:
            continue
        if not assets.keys:
            stages[assets.node_def.name] = "checks"
            continue
        key = next(iter(assets.keys))
        group = next(iter(assets.group_names_by_key.values()))
        if assets.node_def.name in DBT_STEP_NAMES:
            stages[assets.node_def.name] = "dbt_build"
            continue
        stages[assets.node_def.name] = by_key.get(key) or by_group.get(group, "other")
    return stages


def _dbt_command_seconds(log_file: Path) -> float | None:
    """The whole dbt process (startup, parse, run), from its last ``CommandCompleted`` line."""
    if not log_file.exists():
        return None
    for line in reversed(log_file.read_text().splitlines()):
        if '"CommandCompleted"' in line:
            return round(json.loads(line)["data"]["elapsed"], 2)
    return None


def dbt_profile(run_id: str, steps: dict[str, float]) -> dict[str, Any]:
    """Per-invocation and per-node dbt timings of a run (dagster-dbt writes one target folder
    per dbt invocation, named <op>-<run id[:7]>-<uuid[:7]>). Per invocation: the Dagster step,
    the dbt process in it (``command_seconds``) and dbt's run phase after parsing."""
    invocations, nodes = [], {}
    for path in sorted((DBT_PROJECT_DIR / "target").glob(f"*-{run_id[:7]}-*/run_results.json")):
        results = json.loads(path.read_text())
        step = path.parent.name.rsplit("-", 2)[0]
        invocations.append(
            {
                "step": step,
                "step_seconds": round(steps.get(step, 0.0), 2),
                "command_seconds": _dbt_command_seconds(path.parent / "dbt.log"),
                "run_seconds": round(results["elapsed_time"], 2),
                # the issue-22 measure: all of the step but dbt running its nodes
                "fixed_seconds": round(steps.get(step, 0.0) - results["elapsed_time"], 2),
            }
        )
        nodes.update({r["unique_id"]: r["execution_time"] for r in results["results"]})
    models = {uid.split(".")[2]: t for uid, t in nodes.items() if uid.startswith("model.")}
    data_tests = [t for uid, t in nodes.items() if uid.startswith("test.")]
    unit_tests = [t for uid, t in nodes.items() if uid.startswith("unit_test.")]
    return {
        "invocations": invocations,
        "models": {m: round(t, 3) for m, t in sorted(models.items(), key=lambda m: -m[1])},
        "data_tests": len(data_tests),
        "data_tests_seconds": round(sum(data_tests), 2),
        "unit_tests": len(unit_tests),
        "unit_tests_seconds": round(sum(unit_tests), 2),
    }


def run_job(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    job_name: str,
    run_config: dict[str, Any],
    stages: dict[str, str],
) -> dict[str, Any]:
    job = defs.resolve_job_def(job_name)
    with PeakMemory() as memory:
        started = time.perf_counter()
        result = job.execute_in_process(
            instance=instance, run_config=run_config, raise_on_error=False
        )
        seconds = time.perf_counter() - started
    steps: dict[str, float] = {}
    failed = []
    for stat in instance.get_run_step_stats(result.run_id):
        if stat.end_time and stat.start_time:
            steps[stat.step_key] = stat.end_time - stat.start_time
        if stat.status is not None and stat.status.value != "SUCCESS":
            failed.append(f"{stat.step_key}: {stat.status.value}")
    by_stage: dict[str, float] = dict.fromkeys((*STAGES, "other"), 0.0)
    for step, step_seconds in steps.items():
        by_stage[stages.get(step, "other")] += step_seconds
    outcome = {
        "job": job_name,
        "run_id": result.run_id,
        "success": result.success,
        "steps_not_succeeded": failed,
        "seconds": round(seconds, 2),
        "stages": {stage: round(s, 2) for stage, s in by_stage.items()},
        "orchestration_overhead_seconds": round(seconds - sum(steps.values()), 2),
        "peak_rss_mib": round(memory.peak_bytes / MIB),
        "start_rss_mib": round(memory.start_bytes / MIB),
        "steps": {step: round(s, 2) for step, s in steps.items()},
        "dbt": dbt_profile(result.run_id, steps),
    }
    log.info(
        "%s: %s in %.1f s, peak %d MiB", job_name, result.success, seconds, outcome["peak_rss_mib"]
    )
    return outcome


def landed_lines(path: Path) -> int:
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with path.open("rb") as lines:
        return sum(1 for line in lines if line.strip())


def measure_history(
    events: int, files: int, workdir: Path, sample: Sample, floor: FloorScript | None
) -> dict[str, Any]:
    """Full build on all but the newest file, the floor, then the sensor's incremental run."""
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # dbt's output: stdout is the report's
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    newest = sorted(sample.landing_dir.iterdir())[-1]
    held_back = workdir / newest.name
    shutil.move(newest, held_back)
    settings = sample.settings(workdir)
    defs = build_definitions(settings)
    stages = stage_by_op(defs)
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    result: dict[str, Any] = {
        "events": events,
        "files": files,
        "persons": sample.persons,
        "new_events": landed_lines(held_back),
    }
    with dg.instance_for_test() as instance:
        result["full_build"] = run_job(instance, defs, "full_build", {}, stages)
        if floor is not None:
            try:
                result["floor"] = run_floor(
                    floor, settings.warehouse_path, workdir / "floor.duckdb"
                )
            except Exception as exc:  # report it with the runs' numbers
                log.exception("the floor failed")
                result["floor"] = {"error": repr(exc)}

        def tick(cursor: str | None) -> dg.SensorExecutionData:
            context = dg.build_sensor_context(
                cursor=cursor,
                instance=instance,
                resources={"landing": LandingZoneResource(path=str(sample.landing_dir))},
            )
            return sensor.evaluate_tick(context)

        first = tick(None)
        shutil.move(held_back, newest)
        (request,) = tick(first.cursor).run_requests
        result["incremental_update"] = run_job(
            instance, defs, sensor.job_name, request.run_config, stages
        )
    return result


def in_fresh_process(func: Callable[..., T], *args: Any) -> T:
    """Run ``func`` in a new process, so that no run's memory is left over for the next."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(func, *args).result()


def measure_command_run(sample: Sample, folder: Path) -> dict[str, Any]:
    """``segwh run`` as a user starts it on a sample (the quick start's full run): a subprocess
    with the settings in its environment, a new warehouse and a new Dagster home with the
    project's instance config, timed from the command to its exit (process start, imports,
    definitions, the run, the published tables). Afterwards the run's step durations from that
    Dagster home: start-up is the time from the command to the run's first step."""
    home = folder / "dagster_home"
    home.mkdir(parents=True)
    shutil.copy(BENCH_DIR.parent / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SEGWH_DATA_DIR": str(folder),
        "SEGWH_LANDING_DIR": str(sample.landing_dir),
        "SEGWH_CRM_URL": sample.crm_url,
        "SEGWH_WAREHOUSE_PATH": str(folder / "warehouse.duckdb"),
        "SEGWH_AS_OF": DEFAULT_AS_OF.isoformat(),
    }
    command = [str(Path(sys.executable).parent / "segwh"), "run"]
    with PeakMemory() as memory:
        cpu_before = os.times()
        started_at = time.time()
        started = time.perf_counter()
        process = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        cpu = os.times()
    result: dict[str, Any] = {
        "command": shlex.join(["segwh", "run"]),
        "events": sample.landed_lines,
        "success": process.returncode == 0,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(
            cpu.children_user
            + cpu.children_system
            - cpu_before.children_user
            - cpu_before.children_system,
            2,
        ),
        "peak_rss_mib": round(memory.peak_bytes / MIB),
    }
    if process.returncode != 0:
        result["error"] = (process.stdout + process.stderr)[-2000:]
        return result
    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(limit=1)
        stats = [s for s in instance.get_run_step_stats(run.run_id) if s.start_time and s.end_time]
        stages = stage_by_op(build_definitions(sample.settings(folder)))
        by_stage: dict[str, float] = dict.fromkeys((*STAGES, "other"), 0.0)
        steps = {s.step_key: s.end_time - s.start_time for s in stats}
        for step, step_seconds in steps.items():
            by_stage[stages.get(step, "other")] += step_seconds
        first_step = min(s.start_time for s in stats)
        last_step = max(s.end_time for s in stats)
        result |= {
            "startup_seconds": round(first_step - started_at, 2),
            "steps_span_seconds": round(last_step - first_step, 2),
            "after_last_step_seconds": round(started_at + seconds - last_step, 2),
            "stages": {stage: round(s, 2) for stage, s in by_stage.items()},
            "steps": {step: round(s, 2) for step, s in steps.items()},
            "dbt": dbt_profile(run.run_id, steps),
        }
    return result


def measure_command(events: int, workdir: Path, keep: bool) -> dict[str, Any]:
    """The quick start's sample of ``events`` (all of its files, as `make sample` writes them)
    and ``segwh run`` on it, each in a fresh process."""
    folder = workdir / f"command-{events}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        log.info("segwh run on a sample of %d events", events)
        sample = in_fresh_process(generate_sample, folder / "sample", events, None)
        result = in_fresh_process(measure_command_run, sample, folder)
        log.info("segwh run: %s in %.1f s", result["success"], result["seconds"])
        return result
    except Exception as exc:  # record it, go on
        log.exception("segwh run on %d events failed", events)
        return {"events": events, "success": False, "error": repr(exc)}
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def newest_files(sample: Sample, files: int, folder: Path) -> Sample:
    """The same sample without its older history: a landing folder of hard links to its newest
    ``files`` landing files (the held-back newest one included) and the same CRM snapshot."""
    landing = folder / "landing"
    landing.mkdir(parents=True)
    for path in sorted(sample.landing_dir.iterdir())[-files:]:
        os.link(path, landing / path.name)
    lines = sum(landed_lines(path) for path in landing.iterdir())
    return Sample(landing, sample.crm_url, lines, sample.persons)


def measure_size(
    events: int,
    double_history: bool,
    workdir: Path,
    floor: FloorScript,
    keep: bool,
    ingestion_floor: bool = True,
) -> dict[str, Any]:
    """The runs of one size: ``history`` (N events in FILES files, the targets' runs) and, with
    ``double_history``, a sample of 2N events in 2 * FILES files over the same period, run twice:
    whole (``double_history``) and as its newest FILES files only (``recent_half``). Both add the
    same newest file, so recent_half -> double_history doubles the history before the same new
    events and the same recent days (the lookback); history -> double_history doubles how many
    persons and events each day holds. With ``ingestion_floor``, the loader and plain DuckDB
    read the N sample's landing files side by side first (bench/ingest_floor.py)."""
    entry: dict[str, Any] = {"events": events}
    histories = [("history", events, FILES, floor)]
    if double_history:
        histories.append(("double_history", 2 * events, 2 * FILES, None))
    for name, n_events, files, floor_script in histories:
        folder = workdir / f"{n_events}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        try:
            log.info("generating %d events in %d files", n_events, files)
            sample = in_fresh_process(generate_sample, folder / "sample", n_events, files)
            if name == "history" and ingestion_floor:
                log.info("ingestion of %d events against plain DuckDB", n_events)
                entry["ingestion"] = compare_ingestion(sample.landing_dir, folder)
            entry[name] = in_fresh_process(
                measure_history, n_events, files, folder, sample, floor_script
            )
            if name == "double_history":
                half_folder = folder / "recent_half"
                half = newest_files(sample, FILES, half_folder)
                entry["recent_half"] = in_fresh_process(
                    measure_history, half.landed_lines, FILES, half_folder, half, None
                )
        except Exception as exc:  # a crashed or killed process: record it, go on
            log.exception("%s of %d events failed", name, n_events)
            failed = {"events": n_events, "error": repr(exc)}
            entry.setdefault(name, failed)
            if name == "double_history":  # never compare 2x with the 1x sample by mistake
                entry.setdefault("recent_half", failed | {"events": events})
        finally:
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
    return entry


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text()
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    return {
        "cores": os.cpu_count(),
        "cpu": cpu.group(1) if cpu else platform.processor(),
        "memory_gib": round(int(re.search(r"MemTotal:\s*(\d+)", meminfo).group(1)) / MIB, 1),
        "os": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
    }


def commit() -> str:
    """The measured code: the git commit, marked when the working tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=BENCH_DIR, capture_output=True, text=True, check=False
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain") else "")


def versions() -> dict[str, str]:
    return {"python": platform.python_version()} | {p: metadata.version(p) for p in VERSIONED}


def failures(results: dict[str, Any]) -> list[str]:
    problems = []
    command_run = results.get("command_run")
    if command_run and not command_run["success"]:
        problems.append(f"segwh run: {command_run.get('error', '')[-500:]}")
    for size in results["sizes"]:
        for name in HISTORIES:
            history = size.get(name)
            if history is None:
                continue
            if "error" in history:
                problems.append(f"{history['events']} events: {history['error']}")
            if "error" in history.get("floor", {}):
                problems.append(f"{history['events']} events, floor: {history['floor']['error']}")
            for job in ("full_build", "incremental_update"):
                if job in history and not history[job]["success"]:
                    problems.append(
                        f"{history['events']} events, {job}: {history[job]['steps_not_succeeded']}"
                    )
    return problems


def kept_sections(old: str, new: str) -> str:
    """The sections of the old bench/RESULTS.md that bench/run.py does not generate (results of
    other benchmarks added below it by hand), to append to the new report."""
    generated = {line for line in new.splitlines() if line.startswith("## ")} | {
        "## Targets",  # the issue-7 targets' heading before issue 22
        "## Failures",
    }
    kept, keep = [], False
    for line in old.splitlines():
        if line.startswith("## "):
            keep = line not in generated
        if keep:
            kept.append(line)
    return "\n" + "\n".join(kept) + "\n" if kept else ""


def main() -> int:
    # the benchmark's warehouses are throwaway: a random pseudonymization key unless one is set
    os.environ.setdefault(KEY_ENV_VAR, secrets.token_hex(32))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument(
        "--double-history",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the incremental on 2x the history with the same new events (default on)",
    )
    parser.add_argument(
        "--command-events",
        type=int,
        default=100_000,
        help="events of the quick-start sample that `segwh run` runs on (issue 22; 0: skip)",
    )
    parser.add_argument(
        "--ingestion-floor",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the loader against plain DuckDB reading the same files (default on)",
    )
    parser.add_argument("--smoke", action="store_true", help="CI: 100k events, no 2x history")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep samples and warehouses here (default: a temporary folder, removed)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=OUT_DIR,
        help="folder for results-*.json/.md and floor.sql (default: bench/out)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.events, args.double_history = [100_000], False
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

    started = datetime.now(UTC)
    results: dict[str, Any] = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "commit": commit(),
        "double_history": args.double_history,
        "sizes": [],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    as_of = parse_as_of(DEFAULT_AS_OF.isoformat()).isoformat()  # as the dbt asset passes it
    floor = compile_floor(as_of, DEFAULT_MEMORY_LIMIT)
    (args.out / "floor.sql").write_text(floor.text(as_of))
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="segwh-bench-"))
    try:
        if args.command_events:
            results["command_run"] = measure_command(
                args.command_events, workdir, keep=bool(args.workdir)
            )
        for events in args.events:
            results["sizes"].append(
                measure_size(
                    events,
                    args.double_history,
                    workdir,
                    floor,
                    keep=bool(args.workdir),
                    ingestion_floor=args.ingestion_floor,
                )
            )
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["failures"] = failures(results)

    stem = args.out / f"results-{started:%Y%m%dT%H%M%SZ}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    report = markdown(results)
    stem.with_suffix(".md").write_text(report)
    if results["failures"]:  # keep the last good bench/RESULTS.md
        log.error("%d failure(s), see %s", len(results["failures"]), stem.with_suffix(".md"))
    elif not args.smoke:
        results_md = BENCH_DIR / "RESULTS.md"
        old = results_md.read_text() if results_md.exists() else ""
        results_md.write_text(report + kept_sections(old, report))
    print(report)
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
