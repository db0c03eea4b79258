"""Benchmark: every expectation suite on a generated warehouse (default 10 million events).

    python bench/check_suites.py --events 10000000 --workdir /tmp/q10m [--isolate] [--keep]
    /usr/bin/time -v python bench/check_suites.py --workdir /tmp/q10m --skip-build

Steps (each skipped when its output already exists in ``--workdir``, or with ``--skip-build``):
generate the sample data (``<workdir>/sample``), load events and the CRM tables into
``<workdir>/warehouse.duckdb`` as the ingestion assets do, and ``dbt build`` at the sample's
``as_of`` when the project has marts. Then every suite is validated like its Dagster check does
it, with every per-run parameter (previous row count = the current one, the sample's ``as_of``,
the load id), and the time of each and of all is printed as JSON.

Peak RSS: the default runs every suite in this process, so ``peak_rss_mb`` after a suite is the
peak so far (run it under ``/usr/bin/time -v`` for the whole). ``--isolate`` runs each suite in a
fresh process and reports that process's own peak, and the peak after importing alone.
"""

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ingestion.crm import CRM_ENTITIES, load_crm_table
from ingestion.events import discover_files, load_event_files
from ml.schemas import (
    CHURN_SCORE_COLUMNS,
    CHURN_SCORES_TABLE,
    PERSON_RECOMMENDATION_COLUMNS,
    PERSON_RECOMMENDATIONS,
    create_table_sql,
)
from sample_data import DEFAULT_AS_OF, generate
from warehouse.connection import connect, session_settings
from warehouse.settings import DBT_PROJECT_DIR, dbt_environment

LOAD_ID = "bench-load"
MEMORY_LIMIT = "2GB"

log = logging.getLogger("bench.check_suites")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-build", action="store_true", help="use the warehouse as it is")
    parser.add_argument("--build-only", action="store_true", help="build, validate nothing")
    parser.add_argument("--isolate", action="store_true", help="one process per suite")
    parser.add_argument("--suites", nargs="*", default=None, help="only these suites")
    parser.add_argument("--keep", action="store_true", help="keep a temporary workdir")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: validate one suite, print
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="segwh-check-bench-"))
    warehouse = workdir / "warehouse.duckdb"
    if args.one:
        print(json.dumps(validate_one(warehouse, args.one)))
        return

    result: dict[str, Any] = {"workdir": str(workdir)}
    if not args.skip_build:
        result["events_requested"] = args.events
        result["build"] = build_warehouse(workdir, args.events)
    result["rows"] = table_rows(warehouse)
    if args.build_only:
        print(json.dumps(result, indent=2))
        return
    names = args.suites or suite_names()
    started = time.perf_counter()
    if args.isolate:
        suites = [validate_isolated(warehouse, workdir, name) for name in names]
    else:
        suites = [validate_one(warehouse, name) for name in names]
    result["suites"] = suites
    result["total_validate_seconds"] = round(sum(s["seconds"] for s in suites), 1)
    result["total_wall_seconds"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = max(s["peak_rss_mb"] for s in suites)
    result["duckdb_threads"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    if not args.workdir and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)


def suite_names() -> list[str]:
    from expectations.suites import SUITE_BUILDERS

    return list(SUITE_BUILDERS)


def build_warehouse(workdir: Path, events: int) -> dict[str, Any]:
    """Sample data, ingestion and dbt, each timed; skipped when already done."""
    timings: dict[str, Any] = {}
    sample_dir = workdir / "sample"
    landing, crm_path = sample_dir / "landing", sample_dir / "crm.sqlite"
    if not landing.is_dir():
        log.info("generating %d events in %s", events, sample_dir)
        started = time.perf_counter()
        generate(sample_dir, n_events=events)
        timings["generate_seconds"] = round(time.perf_counter() - started, 1)
    warehouse = workdir / "warehouse.duckdb"
    if not warehouse.exists():
        log.info("loading into %s", warehouse)
        started = time.perf_counter()
        engine = sa.create_engine(f"sqlite:///{crm_path}")
        try:
            with connect(warehouse, memory_limit=MEMORY_LIMIT) as con:
                load_event_files(con, discover_files(landing), load_id=LOAD_ID)
                for entity in CRM_ENTITIES.values():
                    load_crm_table(con, engine, entity, entity.name, load_id=LOAD_ID)
        finally:
            engine.dispose()
        timings["load_seconds"] = round(time.perf_counter() - started, 1)
    if (DBT_PROJECT_DIR / "models" / "marts").is_dir():
        log.info("dbt build on %s", warehouse)
        with connect(warehouse, memory_limit=MEMORY_LIMIT) as con:  # the ml asset's table
            con.execute(create_table_sql(CHURN_SCORES_TABLE, CHURN_SCORE_COLUMNS, replace=False))
            con.execute(
                create_table_sql(
                    PERSON_RECOMMENDATIONS.name, PERSON_RECOMMENDATION_COLUMNS, replace=False
                )
            )
        started = time.perf_counter()
        run_dbt(warehouse, workdir)
        timings["dbt_build_seconds"] = round(time.perf_counter() - started, 1)
    return timings


def run_dbt(warehouse: Path, workdir: Path) -> None:
    """``dbt build`` at the sample's as_of, with target and logs outside the project."""
    env = {
        **os.environ,
        **dbt_environment(warehouse, MEMORY_LIMIT),
        "DBT_TARGET_PATH": str(workdir / "dbt_target"),
        "DBT_LOG_PATH": str(workdir / "dbt_logs"),
    }
    dbt = Path(sys.executable).parent / "dbt"
    command = [
        str(dbt),
        "build",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--vars",
        json.dumps({"as_of": DEFAULT_AS_OF.isoformat()}),
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"dbt build failed:\n{completed.stdout[-5000:]}")


def table_rows(warehouse: Path) -> dict[str, int]:
    from expectations.suites import SUITE_TABLES

    with connect(warehouse, read_only=True) as con:
        return {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in sorted(set(SUITE_TABLES.values()))
        }


def validate_one(warehouse: Path, name: str) -> dict[str, Any]:
    """Validate one suite like its Dagster check, with every per-run parameter."""
    from expectations import load_suite, validate_table
    from expectations.suites import SUITE_TABLES, suite_parameters

    baseline_mb = _peak_rss_mb()
    table = SUITE_TABLES[name]
    params: dict[str, Any] = {}
    accepted = suite_parameters(name)
    if "previous_row_count" in accepted:
        with connect(warehouse, read_only=True) as con:
            params["previous_row_count"] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[
                0
            ]
    if "as_of" in accepted:
        params["as_of"] = DEFAULT_AS_OF
    if "load_id" in accepted:
        params["load_id"] = LOAD_ID
    started = time.perf_counter()
    outcome = validate_table(
        warehouse,
        table,
        load_suite(name, **params),
        session_settings=session_settings(MEMORY_LIMIT),
    )
    seconds = time.perf_counter() - started
    failed = outcome.failed_blocking + outcome.failed_warnings
    return {
        "suite": name,
        "table": table,
        "expectations": len(outcome.outcomes),
        "seconds": round(seconds, 2),
        "passed": outcome.success,
        "failed": [f"{'blocking' if o.blocking else 'warning'}: {o.description}" for o in failed],
        "baseline_rss_mb": baseline_mb,
        "peak_rss_mb": _peak_rss_mb(),
    }


def validate_isolated(warehouse: Path, workdir: Path, name: str) -> dict[str, Any]:
    """``validate_one`` in a fresh Python process, for a per-suite peak RSS."""
    command = [sys.executable, __file__, "--workdir", str(workdir), "--one", name]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
