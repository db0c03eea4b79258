"""Ingestion against its floor: the loader and plain DuckDB reading the same landing files.

    .venv/bin/python bench/ingest_floor.py --landing /tmp/s1m/landing [--repeat 2]

The floor reads the same files into a table of a new DuckDB file with DuckDB's own readers and
nothing else: ``CREATE TABLE ... AS SELECT * FROM read_json(<the JSONL files>,
format = 'newline_delimited', ignore_errors = true)`` and ``read_parquet(<the Parquet files>)``
into a second table (the landing shapes differ). The loader is ``load_event_files`` of
``ingestion/events.py`` on every file of the folder into a new warehouse (contract, rejects with
reasons, deduplication, audit). Both open the file with the project's session settings
(``warehouse.connection.connect``: memory limit, time zone) and run in a fresh process each,
one after the other: wall time, CPU time (user + system) and peak resident memory of that
process (``VmHWM``, Python and DuckDB included in both). Ratios are loader / floor; with
``--repeat`` the best (lowest) of each figure is kept.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
FIGURES = ("seconds", "cpu_seconds", "peak_rss_mib")


def _escaped(path: Path) -> str:
    """A file path as a DuckDB string that its readers do not expand as a glob."""
    text = str(path).replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")
    return "'" + text.replace("'", "''") + "'"


def floor_load(landing: Path, warehouse: Path) -> int:
    """Plain DuckDB: the landing files into tables, nothing checked. Returns the rows read."""
    from ingestion.events import discover_files
    from warehouse.connection import connect

    files = discover_files(landing)
    rows = 0
    with connect(warehouse) as con:
        jsonl = [f.path for f in files if f.file_format == "jsonl"]
        parquet = [f.path for f in files if f.file_format == "parquet"]
        if jsonl:
            paths = ", ".join(_escaped(p) for p in jsonl)
            con.execute(
                "CREATE TABLE floor_jsonl AS SELECT * FROM read_json("
                f"[{paths}], format = 'newline_delimited', ignore_errors = true)"
            )
            rows += con.execute("SELECT count(*) FROM floor_jsonl").fetchone()[0]
        if parquet:
            paths = ", ".join(_escaped(p) for p in parquet)
            con.execute(f"CREATE TABLE floor_parquet AS SELECT * FROM read_parquet([{paths}])")
            rows += con.execute("SELECT count(*) FROM floor_parquet").fetchone()[0]
    return rows


def loader_load(landing: Path, warehouse: Path) -> int:
    """The project's loader on every landing file. Returns the landed rows it accounted for."""
    from ingestion.events import discover_files, load_event_files
    from warehouse.connection import connect

    with connect(warehouse) as con:
        report = load_event_files(con, discover_files(landing))
    return report.total("landed")


KINDS = {"floor": floor_load, "loader": loader_load}


def _measure_here(kind: str, landing: Path, warehouse: Path) -> dict[str, Any]:
    started = time.perf_counter()
    rows = KINDS[kind](landing, warehouse)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rows": rows,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(_peak_rss_kib() / 1024),
    }


def _peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM). Not ``ru_maxrss``: Linux carries that over
    an exec from the forking process (here the benchmark, with Dagster imported)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(kind: str, landing: Path, workdir: Path) -> dict[str, Any]:
    """One load (``floor`` or ``loader``) in a fresh process, into a new DuckDB file."""
    with tempfile.TemporaryDirectory(dir=workdir, prefix=f"ingest-{kind}-") as folder:
        run = subprocess.run(
            [sys.executable, __file__, "--one", kind, "--landing", str(landing)],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
    if run.returncode != 0:
        raise RuntimeError(f"{kind} load failed: {run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def compare(landing: Path, workdir: Path, repeat: int = 1) -> dict[str, Any]:
    """Floor and loader side by side (alternating, ``repeat`` times each); the best of each
    figure and the loader / floor ratios."""
    runs: dict[str, list[dict[str, Any]]] = {"floor": [], "loader": []}
    for _ in range(repeat):
        for kind in runs:
            runs[kind].append(measure(kind, landing, workdir))
    best = {kind: {f: min(r[f] for r in rs) for f in FIGURES} for kind, rs in runs.items()}
    for kind, rs in runs.items():
        best[kind]["rows"] = rs[0]["rows"]
    return {
        "landing_mib": round(sum(p.stat().st_size for p in landing.rglob("*")) / (1 << 20)),
        "repeat": repeat,
        "floor": best["floor"],
        "loader": best["loader"],
        "ratios": {
            f: round(best["loader"][f] / best["floor"][f], 2) if best["floor"][f] else None
            for f in FIGURES
        },
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--landing", type=Path, required=True, help="folder of landing files")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (best is kept)")
    parser.add_argument("--workdir", type=Path, default=None, help="for the DuckDB files")
    parser.add_argument("--one", choices=sorted(KINDS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child process: one load into ./warehouse.duckdb
        result = _measure_here(args.one, args.landing.resolve(), Path("warehouse.duckdb"))
        print(json.dumps(result))
        return 0
    workdir = args.workdir or Path(tempfile.gettempdir())
    print(json.dumps(compare(args.landing.resolve(), workdir, args.repeat), indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR.parent))
    sys.exit(main())
