"""The Markdown report of bench/run.py (bench/RESULTS.md) from its JSON results."""

from collections.abc import Callable
from typing import Any

TARGET_EVENTS = 10_000_000
STAGES = (
    "ingestion",
    "dbt_build",
    "clustering",
    "churn_training",
    "churn_scoring",
    "checks",
    "publish",
)
# the runs of one size (bench/run.py measure_size): N events; 2N events over the same period;
# the newest half of the 2N sample's files (the same new events and recent days as 2N, half of
# its history). Results from before recent_half have only the first two.
HISTORIES = ("history", "recent_half", "double_history")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _get(data: dict[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


# (target, limit, measured value of one size's results, unit)
TARGETS: list[tuple[str, float, Callable[[dict[str, Any]], float | None], str]] = [
    (
        "full run incl. model training",
        300,
        lambda size: _get(size, "history", "full_build", "seconds"),
        "s",
    ),
    (
        "peak memory of the full run (process tree)",
        4096,
        lambda size: _get(size, "history", "full_build", "peak_rss_mib"),
        "MiB",
    ),
    (
        "transform (dbt steps of the full run) / floor",
        2,
        lambda size: _ratio(
            _get(size, "history", "full_build", "stages", "dbt_build"),
            _get(size, "history", "floor", "seconds"),
        ),
        "x",
    ),
    (
        "incremental run, 1% new events",
        30,
        lambda size: _get(size, "history", "incremental_update", "seconds"),
        "s",
    ),
    (
        "incremental run on 2x history / on 1x history (same new events and recent days)",
        1.5,
        lambda size: _history_growth(size, "incremental_update", "seconds"),
        "x",
    ),
]


# Issue 22 (fast runs). Each goal: (name, limit, unit, the size its verdict is given at (None:
# every size), measured value of one size's results, its floor in seconds or None). The
# quick-start run (`segwh run` on 100k events) is its own row (_command_goal).
COMMAND_GOAL_EVENTS = 100_000
COMMAND_GOAL_SECONDS = 15


def _ingestion_ratio(figure: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda size: _get(size, "ingestion", "ratios", figure)


def _data_floor(size: dict[str, Any]) -> float | None:
    """What plain DuckDB needs for the data work of a full run: reading the landing files
    (ingestion floor) plus the SQL up to person_features (transform floor); no ML, no checks."""
    ingestion = _get(size, "ingestion", "floor", "seconds")
    transform = _get(size, "history", "floor", "seconds")
    return ingestion + transform if ingestion is not None and transform is not None else None


def dbt_fixed_seconds(size: dict[str, Any]) -> float | None:
    """The largest fixed cost of a dbt step in the N sample's full and sensor runs: Dagster's
    step time minus dbt's run phase (run_results.json elapsed_time), i.e. dbt start-up and
    parse, dagster-dbt's set-up and what Dagster does around dbt (events, row counts)."""
    fixed = [
        invocation["step_seconds"] - invocation["run_seconds"]
        for job in ("full_build", "incremental_update")
        for invocation in _get(size, "history", job, "dbt", "invocations") or []
    ]
    return max(fixed) if fixed else None


GOALS: list[
    tuple[
        str,
        float,
        str,
        int | None,
        Callable[[dict[str, Any]], float | None],
        Callable[[dict[str, Any]], float | None],
    ]
] = [
    (
        "sensor run, 1% new events (100k at 10M)",
        15,
        "s",
        TARGET_EVENTS,
        lambda size: _get(size, "history", "incremental_update", "seconds"),
        lambda size: None,
    ),
    (
        "sensor run on 2x history / on 1x history (20M / 10M: same new events and recent days)",
        1.2,
        "x",
        TARGET_EVENTS,
        lambda size: _history_growth(size, "incremental_update", "seconds"),
        lambda size: None,
    ),
    (
        "full run incl. training",
        150,
        "s",
        TARGET_EVENTS,
        lambda size: _get(size, "history", "full_build", "seconds"),
        _data_floor,
    ),
    (
        "peak memory of the full run (process tree)",
        4096,
        "MiB",
        TARGET_EVENTS,
        lambda size: _get(size, "history", "full_build", "peak_rss_mib"),
        lambda size: None,
    ),
    (
        "ingestion wall time / plain DuckDB read",
        1.5,
        "x",
        None,
        _ingestion_ratio("seconds"),
        lambda size: _get(size, "ingestion", "floor", "seconds"),
    ),
    (
        "ingestion CPU time / plain DuckDB read",
        1.5,
        "x",
        None,
        _ingestion_ratio("cpu_seconds"),
        lambda size: _get(size, "ingestion", "floor", "cpu_seconds"),
    ),
    (
        "ingestion peak memory / plain DuckDB read",
        1.5,
        "x",
        None,
        _ingestion_ratio("peak_rss_mib"),
        lambda size: None,
    ),
    (
        "fixed cost of a dbt step (largest of the full and sensor runs)",
        2,
        "s",
        None,
        dbt_fixed_seconds,
        lambda size: None,
    ),
]


def _verdict(value: float | None, limit: float, applies: bool) -> str:
    if value is None:
        return "not measured"
    if not applies:
        return "- (goal at 10M)"
    return "met" if value < limit else "**missed**"


def _goals(results: dict[str, Any]) -> list[str]:
    header = ["goal (issue 22)", "limit", "sample", "measured", "floor s", "/ floor", "verdict"]
    rows = []
    command = results.get("command_run")
    if command is not None:
        seconds = command.get("seconds") if command.get("success") else None
        events = command.get("events", COMMAND_GOAL_EVENTS)
        floors = [
            _data_floor(size) for size in results["sizes"] if size["events"] == COMMAND_GOAL_EVENTS
        ]
        floor = floors[0] if floors else None
        rows.append(
            [
                "full run of the quick start, `segwh run` (process start included)",
                f"< {_number(COMMAND_GOAL_SECONDS, 's')}",
                _events(events),
                _number(seconds, "s"),
                _number(floor),
                _number(_ratio(seconds, floor), "x"),
                _verdict(seconds, COMMAND_GOAL_SECONDS, abs(events - COMMAND_GOAL_EVENTS) < 1000),
            ]
        )
    for name, limit, unit, at_events, measure, floor_of in GOALS:
        for size in results["sizes"]:
            value = measure(size)
            floor = floor_of(size)
            rows.append(
                [
                    name,
                    f"< {_number(limit, unit)}",
                    _events(size["events"]),
                    _number(value, unit),
                    _number(floor),
                    _number(_ratio(value, floor), "x") if unit != "x" else "-",
                    _verdict(value, limit, at_events in (None, size["events"])),
                ]
            )
        if TARGET_EVENTS not in {size["events"] for size in results["sizes"]} and at_events:
            rows.append([name, f"< {_number(limit, unit)}", "10M", "-", "-", "-", "not measured"])
    return _table(header, rows)


def _command_profile(results: dict[str, Any]) -> list[str]:
    run = results.get("command_run")
    if not run:
        return ["(not measured: `--command-events 0`)"]
    if not run.get("success"):
        return [f"`segwh run` failed: {run.get('error', '?')[-500:]}"]
    header = ["sample", "total s", "CPU s", "start-up s", "steps s", "after s", *STAGES, "peak MiB"]
    row = [
        _events(run["events"]),
        _number(run["seconds"]),
        _number(run["cpu_seconds"]),
        _number(run["startup_seconds"]),
        _number(run["steps_span_seconds"]),
        _number(run["after_last_step_seconds"]),
        *(_number(run["stages"][stage]) for stage in STAGES),
        f"{run['peak_rss_mib']:,}",
    ]
    return _table(header, [row])


def _ingestion(results: dict[str, Any]) -> list[str]:
    header = [
        "events",
        "landing MiB",
        "loader s",
        "floor s",
        "ratio",
        "loader CPU s",
        "floor CPU s",
        "ratio",
        "loader peak MiB",
        "floor peak MiB",
        "ratio",
    ]
    rows = []
    for size in results["sizes"]:
        ingestion = size.get("ingestion")
        if not ingestion:
            continue
        loader, floor, ratios = ingestion["loader"], ingestion["floor"], ingestion["ratios"]
        rows.append(
            [
                _events(size["events"]),
                f"{ingestion['landing_mib']:,}",
                _number(loader["seconds"]),
                _number(floor["seconds"]),
                _number(ratios["seconds"], "x"),
                _number(loader["cpu_seconds"]),
                _number(floor["cpu_seconds"]),
                _number(ratios["cpu_seconds"], "x"),
                f"{loader['peak_rss_mib']:,}",
                f"{floor['peak_rss_mib']:,}",
                _number(ratios["peak_rss_mib"], "x"),
            ]
        )
    return _table(header, rows)


def _history_baseline(size: dict[str, Any]) -> str:
    """What the 2N sample's runs are compared with: its newest half (older results: the N
    sample)."""
    return "recent_half" if "recent_half" in size else "history"


def _growth(size: dict[str, Any], baseline: str, *path: str) -> float | None:
    return _ratio(_get(size, "double_history", *path), _get(size, baseline, *path))


def _history_growth(size: dict[str, Any], *path: str) -> float | None:
    """2N-sample value / its newest half's (older results: / the N sample's)."""
    return _growth(size, _history_baseline(size), *path)


def _label(name: str, history: dict[str, Any]) -> str:
    label = _events(history["events"])
    return label + " (newest half of 2x)" if name == "recent_half" else label


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = (
        f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if unit == "x" else f"{value:.1f}"
    )
    return f"{text} {unit}".strip()


def _events(n: int) -> str:
    """10,000,900 -> 10M (three significant digits: the newest half of a sample is not round)."""
    return f"{n / 1e6:.3g}M" if n >= 1_000_000 else f"{n / 1e3:.3g}k"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _targets(results: dict[str, Any]) -> list[str]:
    sizes = {size["events"]: size for size in results["sizes"]}
    header = ["target (issue 7: at 10M events)", "limit", *(_events(n) for n in sizes)]
    if TARGET_EVENTS not in sizes:
        header.append("10M")
    rows = []
    for name, limit, measure, unit in TARGETS:
        row = [name, f"< {_number(limit, unit)}"]
        for n, size in sizes.items():
            value = measure(size)
            verdict = ""
            if n == TARGET_EVENTS and value is not None:
                verdict = " (met)" if value < limit else " (**missed**)"
            row.append(_number(value, unit) + verdict)
        if TARGET_EVENTS not in sizes:
            row.append("not measured")
        rows.append(row)
    return _table(header, rows)


def _density(results: dict[str, Any]) -> list[str]:
    """Beside the target: how the incremental run grows with twice the events per day."""
    lines = []
    for size in results["sizes"]:
        ratio = _growth(size, "history", "incremental_update", "seconds")
        if ratio is not None and "recent_half" in size:
            lines.append(
                f"- {_events(size['events'])}: incremental run on the 2x sample / on the 1x "
                f"sample (twice the persons and events per day, same new events): "
                f"{_number(ratio, 'x')}"
            )
    return ["", *lines, ""] if lines else [""]


def _runs(results: dict[str, Any]) -> list[str]:
    header = ["history", "new events", "run", "total s", *STAGES, "other", "overhead", "peak MiB"]
    rows = []
    for size in results["sizes"]:
        for name in HISTORIES:
            history = size.get(name)
            if not history:
                continue
            if "error" in history:
                rows.append([_label(name, history), "-", f"failed: {history['error']}"])
                continue
            for job in ("full_build", "incremental_update"):
                run = history[job]
                rows.append(
                    [
                        _label(name, history),
                        f"{history['new_events']:,}" if job == "incremental_update" else "-",
                        job + ("" if run["success"] else " (**failed**)"),
                        _number(run["seconds"]),
                        *(_number(run["stages"][stage]) for stage in STAGES),
                        _number(run["stages"]["other"]),
                        _number(run["orchestration_overhead_seconds"]),
                        f"{run['peak_rss_mib']:,}",
                    ]
                )
    return _table(header, rows)


def _floor(results: dict[str, Any]) -> list[str]:
    header = [
        "events",
        "floor s",
        "dbt steps of the full run s",
        "ratio",
        "same models in dbt s (sum of model times)",
        "ratio",
        "person_features rows floor / dbt",
    ]
    rows = []
    for size in results["sizes"]:
        floor = _get(size, "history", "floor")
        if not floor or "error" in floor:
            continue
        full = size["history"]["full_build"]
        same = sum(full["dbt"]["models"].get(model, 0.0) for model in floor["models"])
        rows.append(
            [
                _events(size["events"]),
                _number(floor["seconds"]),
                _number(full["stages"]["dbt_build"]),
                _number(_ratio(full["stages"]["dbt_build"], floor["seconds"]), "x"),
                _number(same),
                _number(_ratio(same, floor["seconds"]), "x"),
                "{floor} / {dbt}".format(**floor["person_features_rows"]),
            ]
        )
    return _table(header, rows)


def _incremental_models(results: dict[str, Any], top: int = 15) -> list[str]:
    lines = []
    for size in results["sizes"]:
        profiles = {
            name: profile
            for name in HISTORIES
            if (profile := _get(size, name, "incremental_update", "dbt"))
        }
        if "history" not in profiles:
            continue
        header = ["dbt model", *(f"{_label(name, size[name])} history s" for name in profiles)]
        growth = "double_history" in profiles
        if growth:
            baseline = _history_baseline(size)
            two, one = profiles["double_history"], profiles[baseline]
            header.append(
                f"growth ({_label('double_history', size['double_history'])} / "
                f"{_label(baseline, size[baseline])})"
            )
        rows = []
        for model in list(profiles["history"]["models"])[:top]:
            row = [model, *(_number(p["models"].get(model)) for p in profiles.values())]
            if growth:
                row.append(_number(_ratio(two["models"].get(model), one["models"].get(model)), "x"))
            rows.append(row)
        for kind in ("data_tests", "unit_tests"):
            seconds = f"{kind}_seconds"
            label = f"(all {profiles['history'][kind]} dbt {kind.replace('_', ' ')})"
            row = [label, *(_number(p[seconds]) for p in profiles.values())]
            if growth:
                row.append(_number(_ratio(two[seconds], one[seconds]), "x"))
            rows.append(row)
        n = size["events"]
        lines += ["", f"Incremental run on {_events(n)} events:", "", *_table(header, rows)]
    return lines


def _dbt_steps(results: dict[str, Any]) -> list[str]:
    header = [
        "history",
        "run",
        "dbt step",
        "Dagster step s",
        "dbt process s",
        "dbt run phase s",
        "in Dagster around dbt s",
        "dbt startup + parse s",
        "fixed cost s (step - run phase)",
    ]
    rows = []
    for size in results["sizes"]:
        for name in HISTORIES:
            for job in ("full_build", "incremental_update"):
                run = _get(size, name, job)
                if not run:
                    continue
                for i in run["dbt"]["invocations"]:
                    command = i["command_seconds"]
                    rows.append(
                        [
                            _label(name, size[name]),
                            job,
                            i["step"],
                            _number(i["step_seconds"]),
                            _number(command),
                            _number(i["run_seconds"]),
                            _number(i["step_seconds"] - command if command else None),
                            _number(command - i["run_seconds"] if command else None),
                            _number(i["step_seconds"] - i["run_seconds"]),
                        ]
                    )
    return _table(header, rows)


def markdown(results: dict[str, Any]) -> str:
    machine, versions = results["machine"], results["versions"]
    lines = [
        "# Benchmark results (issues 7 and 22)",
        "",
        "Generated by `bench/run.py`; do not edit by hand. Raw numbers: the run's"
        " `bench/out/results-*.json`, the floor script: `bench/out/floor.sql` (written by each run,"
        " not kept in git); earlier runs: `bench/HISTORY.md`.",
        "",
        f"- command: `{results['command']}` ({results['started_at']} to "
        f"{results.get('finished_at', '?')}), code at commit {results.get('commit', '?')}",
        f"- machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB "
        f"memory, {machine['os']}; load average at start {machine['loadavg_at_start'][0]:.2f}, "
        f"at end {machine.get('loadavg_at_end', [float('nan')])[0]:.2f}",
        "- versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()),
        "- sizes: "
        + ", ".join(_events(size["events"]) for size in results["sizes"])
        + (
            " (each also as a sample of 2x the events over the same period, whole and as its "
            "newest half)"
            if results["double_history"]
            else ""
        )
        + "; the targets are set at 10M events"
        + (
            ""
            if any(size["events"] == TARGET_EVENTS for size in results["sizes"])
            else ", which this run did not measure"
        ),
        "",
        "## Goals of issue 22 (fast runs)",
        "",
        "Seconds, and where a floor applies the ratio to it. Floors: ingestion, plain DuckDB "
        "reading the same landing files into a table (`read_json` / `read_parquet`, "
        "bench/ingest_floor.py); full run, that ingestion floor plus the transform floor below "
        "(no ML, checks or publishing in it). The quick start's run is `segwh run` as a "
        "subprocess on a new sample (all its files), warehouse and Dagster home. The sensor "
        "runs execute the sensor's run request in process. A dbt step's fixed cost is its "
        "Dagster step time minus dbt's run phase (run_results.json `elapsed_time`): dbt "
        "start-up and parse, dagster-dbt's set-up, and Dagster around dbt.",
        "",
        *_goals(results),
        "",
        "`segwh run` on the quick-start sample: start-up is the command to the run's first step "
        "(process start, imports, definitions, queueing); steps, the first step's start to the "
        "last step's end; after, the rest (summary, exit). Stages sum step durations (steps of "
        "a stage may overlap others).",
        "",
        *_command_profile(results),
        "",
        "Ingestion against its floor (each in a fresh process, Python start included in both; "
        "CPU is user + system, peak memory the process's maximum resident set):",
        "",
        *_ingestion(results),
        "",
        "## Targets (issue 7)",
        "",
        *_targets(results),
        "",
        *_density(results),
        "## Runs: wall time per stage (seconds) and peak memory",
        "",
        "Stages sum Dagster's step durations (`dbt_build`: every dbt step, tests included; "
        "`checks`: expectation and drift checks); overhead is the rest of the run's wall time. "
        "Peak memory: resident memory of the benchmark process and its dbt subprocesses, summed, "
        "sampled every 0.2 s. The incremental run adds the newest landing file, held back from "
        "the full run (1% of the events of the 1x history; the same absolute number on 2x). "
        "The 2x sample holds twice the events over the same months (twice the persons, twice "
        "the events per day); its newest half is the same sample without its older files: the "
        "same new file and the same recent days (the sessions lookback), half the history. "
        "2x / newest half is how a sensor run's cost grows with the history (the target); "
        "2x / 1x adds what grows with the number of persons and the events per day.",
        "",
        *_runs(results),
        "",
        "## Floor: the same SQL without orchestration",
        "",
        "dbt's compiled SQL of the models up to `person_features` (full refresh), run as one "
        "DuckDB script of `create table ... as` statements on a copy of the raw tables "
        "(`bench/out/floor.sql`). The first ratio is the issue's (every dbt step of the full "
        "run, all models and tests, against the floor); the second counts only the same models.",
        "",
        *_floor(results),
        "",
        "## Incremental run: where the dbt time goes",
        "",
        "Execution time per dbt model (run_results.json of the run's dbt invocations), slowest "
        "first; dbt runs two models at a time, so the times overlap.",
        *_incremental_models(results),
        "",
        "## dbt steps: the dbt process and what surrounds it",
        "",
        "Per dbt step of each run: Dagster's step time; the dbt process (`CommandCompleted` in "
        "its dbt.log); dbt's run phase (run_results.json `elapsed_time`, after parsing). Around "
        "dbt: dagster-dbt preparing the invocation (it loads the dbt project and adapter in "
        "process, computes the selection) and the asset's row counts and schemas afterwards.",
        "",
        *_dbt_steps(results),
    ]
    if results.get("failures"):
        lines += ["", "## Failures", "", *(f"- {failure}" for failure in results["failures"])]
    return "\n".join(lines) + "\n"
