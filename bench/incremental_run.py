"""Benchmark: a full build, then an incremental sensor run adding about 1% new events.

    python bench/incremental_run.py --events 1000000 [--events 2000000 ...] [--workdir DIR]

For each size: generates the sample with 100 landing files, holds the newest file back (about
1% of the events), runs the `full_build` job on the rest, then lands the held-back file and runs
`incremental_update` exactly as the landing-files sensor requests it. Prints wall time per step
of both runs as JSON, so the incremental cost can be compared across history sizes.
"""

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_definitions
from orchestration.resources import LandingZoneResource
from orchestration.settings import Settings
from sample_data import DEFAULT_AS_OF, generate

FILES = 100


def _step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    return {
        stat.step_key: round(stat.end_time - stat.start_time, 2)
        for stat in instance.get_run_step_stats(run_id)
        if stat.end_time and stat.start_time
    }


def measure(events: int, workdir: Path) -> dict:
    sample = generate(workdir / "sample", n_events=events, files=FILES)
    newest = sorted(sample.landing_dir.iterdir())[-1]
    held_back = workdir / newest.name
    shutil.move(newest, held_back)
    settings = Settings(
        data_dir=workdir,
        landing_dir=sample.landing_dir,
        crm_url=sample.crm_url,
        crm_customers_table="customers",
        crm_orders_table="orders",
        crm_consents_table="consents",
        warehouse_path=workdir / "warehouse.duckdb",
        as_of=DEFAULT_AS_OF.isoformat(),
    )
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    with dg.instance_for_test() as instance:
        started = time.perf_counter()
        full = defs.resolve_job_def("full_build").execute_in_process(instance=instance)
        full_seconds = time.perf_counter() - started

        def tick(cursor):
            context = dg.build_sensor_context(
                cursor=cursor,
                instance=instance,
                resources={"landing": LandingZoneResource(path=str(sample.landing_dir))},
            )
            return sensor.evaluate_tick(context)

        first = tick(None)
        shutil.move(held_back, newest)
        (request,) = tick(first.cursor).run_requests
        started = time.perf_counter()
        incremental = defs.resolve_job_def(sensor.job_name).execute_in_process(
            instance=instance, run_config=request.run_config
        )
        incremental_seconds = time.perf_counter() - started
        return {
            "events": events,
            "new_file_lines": sum(1 for _ in newest.open("rb"))
            if newest.suffix != ".parquet"
            else None,
            "full_build": {
                "success": full.success,
                "seconds": round(full_seconds, 1),
                "steps": _step_seconds(instance, full.run_id),
            },
            "incremental_update": {
                "success": incremental.success,
                "seconds": round(incremental_seconds, 1),
                "steps": _step_seconds(instance, incremental.run_id),
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, action="append", help="history sizes")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = []
    for events in args.events or [1_000_000]:
        workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="segwh-incr-"))) / str(events)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            results.append(measure(events, workdir))
        finally:
            if not args.workdir:
                shutil.rmtree(workdir.parent, ignore_errors=True)
    print(json.dumps({"cpus": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
