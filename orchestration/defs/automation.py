"""Jobs, the nightly schedule and the landing-files sensor.

Every run of this code location writes the one DuckDB warehouse, so the instance runs them one at
a time: ``.dagster_home/dagster.yaml`` limits runs tagged ``dagster/code_location=segwarehouse``
(a tag Dagster puts on every run, UI materializations included; ``segwh run`` gives its runs
the same tag, orchestration/run_queue.py) to one in progress. A second run request waits in the
queue until the first has finished.
"""

import hashlib
import json
from pathlib import Path

import dagster as dg
import duckdb
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES, RunsFilter

from ingestion.events import LandingFile, discover_files
from orchestration import run_queue
from orchestration.checks import check_op_name
from orchestration.defs.ingestion import RAW_EVENTS
from orchestration.defs.ml import CHURN_MODEL, PERSON_CLUSTERS
from orchestration.defs.privacy import RAW_EVENTS_RETENTION
from orchestration.defs.recommendations import BACKTEST_INTERACTIONS, RECOMMENDATION_MODEL
from orchestration.defs.serving import ONLINE_PROFILE_STORE, PUBLISHED_SEGMENTS
from orchestration.defs.transform import DBT_STEP_NAMES, STAGED_EVENTS
from orchestration.resources import LandingZoneResource
from warehouse.connection import connect, table_exists
from warehouse.settings import Settings

RAW_EVENTS_OP = "raw__events"
RAW_EVENTS_CHECK_OP = check_op_name(RAW_EVENTS, "raw_events")
STAGED_EVENTS_CHECK_OP = check_op_name(STAGED_EVENTS, "stg_events")
PUBLISH_OP = PUBLISHED_SEGMENTS.to_python_identifier()
ONLINE_STORE_OP = ONLINE_PROFILE_STORE.to_python_identifier()
# the churn training snapshots' heavy part (nightly); marts.churn_snapshots filters it every run
CHURN_FEATURES_AT_SNAPSHOTS = dg.AssetKey(["intermediate", "int_churn_features_at_snapshots"])

full_build_job = dg.define_asset_job(
    name="full_build",
    selection=dg.AssetSelection.all(),
    description=(
        "Everything: ingest new landing files and the CRM snapshot, build and test every dbt "
        "model, re-cluster, retrain the churn model, score, run every check, publish. The "
        "nightly schedule runs it."
    ),
)

incremental_update_job = dg.define_asset_job(
    name="incremental_update",
    # training (clustering, the churn model and its training snapshots) and retention are
    # nightly work: sensor runs score marts.churn_scoring_snapshot with the current models (and
    # rebuild marts.churn_snapshots from the nightly snapshots: withdrawn consents leave it)
    selection=dg.AssetSelection.assets(RAW_EVENTS).downstream()
    - dg.AssetSelection.assets(
        PERSON_CLUSTERS, CHURN_FEATURES_AT_SNAPSHOTS, CHURN_MODEL, RAW_EVENTS_RETENTION
    )
    # nightly only (orchestration/defs/realtime.py: the real-time reconciliation)
    - dg.AssetSelection.tag("segwh/runs", "nightly")
    # the recommendation model retrains nightly; sensor runs refresh the recommendations of
    # persons with new events with the current model
    - dg.AssetSelection.assets(BACKTEST_INTERACTIONS, RECOMMENDATION_MODEL),
    description=(
        "New landing files only: load them, then rebuild what depends on events (incremental "
        "dbt models, features, rule segments, the churn scoring snapshot), score churn with the "
        "current model (no training snapshots, no retraining), run the "
        "checks and publish. No CRM reload, no re-clustering, no retraining. The landing-files "
        "sensor requests it."
    ),
)


def build_nightly_schedule(settings: Settings) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="nightly_full_build",
        job=full_build_job,
        cron_schedule=settings.nightly_cron,
        execution_timezone=settings.nightly_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Runs full_build at '{settings.nightly_cron}' ({settings.nightly_timezone}); set "
            "SEGWH_NIGHTLY_CRON / SEGWH_NIGHTLY_TIMEZONE to change it."
        ),
    )


def loaded_files(warehouse_path: Path, instance: dg.DagsterInstance) -> dict[str, str] | str:
    """path -> size:mtime of every file the load audit (raw.event_load_audit) holds, as the
    sensor's cursor records files; or why it cannot be read now.

    The warehouse is opened read-only for a moment, and only when no run is starting or in
    progress: DuckDB allows one read-write process or many read-only ones, so a reader must not
    be there when a run opens the file (a run starts writing seconds after it is launched)."""
    if not warehouse_path.exists():
        # an incremental run needs a full build before it: the first one loads every landed file
        return (
            f"no warehouse yet at {warehouse_path}: the first full build (`make run`, Materialize "
            "all, the nightly schedule) loads the landed files; the sensor then starts from its "
            "load audit"
        )
    if instance.get_runs(RunsFilter(statuses=ACTIVE_RUN_STATUSES), limit=1):
        return "a run is writing the warehouse: the first tick reads its load audit later"
    try:
        with connect(warehouse_path, read_only=True) as con:
            if not table_exists(con, "raw", "event_load_audit"):
                return {}
            rows = con.execute(
                "SELECT file_path, file_size, file_mtime_ns, coalesce(file_ctime_ns, 0) "
                "FROM raw.event_load_audit ORDER BY loaded_at"
            ).fetchall()
    except duckdb.IOException:  # a writer holds the file (e.g. a run outside this instance)
        return "the warehouse is locked by a writer: the first tick reads its load audit later"
    return {
        path: LandingFile(Path(path), "", size, mtime_ns, ctime_ns).signature
        for path, size, mtime_ns, ctime_ns in rows
    }


def build_landing_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_files_sensor",
        job=incremental_update_job,
        minimum_interval_seconds=settings.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Notices event files that landed (or changed) since its last tick and requests one "
            "incremental_update run for exactly those files. The cursor remembers every file "
            "requested (path -> size:mtime:ctime); the run key makes a request launch at most "
            "once. Its first tick starts from the warehouse's load audit: files a run outside the "
            "sensor already loaded (`make run`) are not requested again."
        ),
    )
    def landing_files_sensor(context: dg.SensorEvaluationContext, landing: LandingZoneResource):
        if not landing.enabled:
            return dg.SkipReason("events are not a source of this deployment (SEGWH_SOURCES)")
        if context.cursor is None:
            seeded = loaded_files(settings.warehouse_path, context.instance)
            if isinstance(seeded, str):
                return dg.SkipReason(seeded)  # the cursor stays empty: seeded at a later tick
            context.update_cursor(json.dumps(seeded, sort_keys=True))
        requested: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        new_files = [
            f for f in discover_files(landing.folder) if requested.get(str(f.path)) != f.signature
        ]
        if not new_files:
            return dg.SkipReason(f"no new files in {landing.folder}")
        paths = [str(f.path) for f in new_files]
        fingerprint = "\n".join(f"{f.path}:{f.signature}" for f in new_files).encode()
        requested.update({str(f.path): f.signature for f in new_files})
        context.update_cursor(json.dumps(requested, sort_keys=True))
        context.log.info("requesting an incremental run for %d new file(s)", len(paths))
        return dg.RunRequest(
            run_key=hashlib.sha256(fingerprint).hexdigest()[:32],
            run_config={
                "ops": {
                    RAW_EVENTS_OP: {"config": {"files": paths}},
                    # event checks validate this run's rows: their cost follows the new data
                    RAW_EVENTS_CHECK_OP: {"config": {"only_rows_of_this_run": True}},
                    STAGED_EVENTS_CHECK_OP: {"config": {"only_rows_of_this_run": True}},
                    **{
                        step: {"config": {"only_rows_of_this_run": True}} for step in DBT_STEP_NAMES
                    },
                    # the published DuckDB file is patched with the rows that changed
                    PUBLISH_OP: {"config": {"only_changed_rows": True}},
                    # and the online store gets the profiles that changed
                    **(
                        {ONLINE_STORE_OP: {"config": {"only_changed_persons": True}}}
                        if settings.online_redis_url
                        else {}
                    ),
                }
            },
            tags={"segwh/new_files": str(len(paths))},
        )

    return landing_files_sensor


@dg.run_failure_sensor(
    name="report_failed_runs",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Reports every failed run in the daemon log with its job and failed steps. Files of a "
        "failed incremental run are never skipped: ingestion loads every file not yet loaded, "
        "so the next run (or the run retry configured in dagster.yaml) picks them up."
    ),
)
def report_failed_runs(context: dg.RunFailureSensorContext):
    context.log.error(
        "run %s of job %s failed: %s",
        context.dagster_run.run_id,
        context.dagster_run.job_name,
        context.failure_event.message,
    )


@dg.sensor(
    name="release_dead_cli_runs",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Marks failed a run that `segwh run` or `segwh erase` executed in its own process when "
        "that process is gone (killed, machine restarted), so that it does not hold the "
        "one-writer slot of the run queue forever."
    ),
)
def release_dead_cli_runs(context: dg.SensorEvaluationContext):
    released = run_queue.release_dead_cli_runs(context.instance)
    for run_id in released:
        context.log.warning("run %s: its segwh process is gone; marked failed", run_id)
    return dg.SkipReason(f"released {len(released)} run(s) of dead segwh processes")


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        jobs=[full_build_job, incremental_update_job],
        schedules=[build_nightly_schedule(settings)],
        sensors=[build_landing_sensor(settings), report_failed_runs, release_dead_cli_runs],
    )
