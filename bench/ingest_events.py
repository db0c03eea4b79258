"""Benchmark: loading landed event files into raw.events.

    python bench/ingest_events.py --events 1000000 [--workdir /tmp/segwh-bench]

Generates the sample data (not timed), then times a cold load of every landing file into a new
DuckDB warehouse and a second, no-op load (all files already loaded), and prints JSON.
"""

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from ingestion.events import discover_files, load_event_files
from sample_data import generate
from warehouse.connection import connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="segwh-bench-"))
    shutil.rmtree(workdir, ignore_errors=True)
    started = time.perf_counter()
    sample = generate(workdir / "sample", n_events=args.events)
    generate_seconds = time.perf_counter() - started
    landing_bytes = sum(p.stat().st_size for p in sample.landing_dir.iterdir())

    warehouse = workdir / "warehouse.duckdb"
    with connect(warehouse) as con:
        started = time.perf_counter()
        report = load_event_files(con, discover_files(sample.landing_dir))
        cold_seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = load_event_files(con, discover_files(sample.landing_dir))
        noop_seconds = time.perf_counter() - started

    result = {
        "events_requested": args.events,
        "landed_lines": report.total("landed"),
        "loaded": report.total("loaded"),
        "rejected": report.total("rejected"),
        "duplicate": report.total("duplicate"),
        "files": len(report.files),
        "landing_megabytes": round(landing_bytes / 1e6, 1),
        "generate_seconds": round(generate_seconds, 2),
        "load_seconds": round(cold_seconds, 2),
        "events_per_second": round(report.total("landed") / cold_seconds),
        "reload_noop_seconds": round(noop_seconds, 3),
        "reload_files_loaded": len(again.files),
        "peak_rss_megabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "duckdb": duckdb.__version__,
    }
    print(json.dumps(result, indent=2))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
