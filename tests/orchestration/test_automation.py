"""The nightly schedule, the landing-files sensor and the incremental run it requests."""

import dataclasses
import json
import os
import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest

from ingestion.events import discover_files, ensure_raw_tables, load_event_files
from orchestration.definitions import build_definitions
from orchestration.defs.automation import (
    CHURN_FEATURES_AT_SNAPSHOTS,
    ONLINE_STORE_OP,
    PUBLISH_OP,
    RAW_EVENTS_OP,
    STAGED_EVENTS_CHECK_OP,
)
from orchestration.defs.transform import DBT_STEP_NAMES
from orchestration.resources import LandingZoneResource
from sample_data import DEFAULT_AS_OF
from warehouse.connection import connect
from warehouse.settings import Settings

CRM_CUSTOMERS = dg.AssetKey(["raw", "crm_customers"])


def _settings(tmp_path: Path, landing: Path, crm_url: str = "sqlite://") -> Settings:
    return Settings.in_folder(tmp_path, landing, crm_url, as_of=DEFAULT_AS_OF.isoformat())


def _tick(sensor: dg.SensorDefinition, landing: Path, cursor: str | None, instance, enabled=True):
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=instance,
        resources={"landing": LandingZoneResource(path=str(landing), enabled=enabled)},
    )
    return sensor.evaluate_tick(context)


def _materialize_what_incremental_runs_read(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings: Settings
) -> None:
    """What an earlier full build leaves for incremental runs: every asset not downstream of
    raw/events (CRM tables and their staging views, dbt seeds), which the dbt models that are
    downstream of it read (identity stitching, orders, segment rules), and the nightly churn
    training snapshots that marts.churn_snapshots filters in every run, built here before any
    event file has landed (an empty raw.events)."""
    graph = defs.resolve_asset_graph()
    raw_events = dg.AssetKey(["raw", "events"])
    rebuilt_by_incremental_runs = dg.AssetSelection.assets(raw_events).downstream().resolve(graph)
    nightly_inputs = dg.AssetSelection.assets(CHURN_FEATURES_AT_SNAPSHOTS).upstream().resolve(
        graph
    ) - {raw_events}
    with connect(settings.warehouse_path) as con:
        ensure_raw_tables(con)
    with pytest.MonkeyPatch.context() as patch:
        # only the dbt tests of the selected models: a relationship test from a model that is
        # not built yet would fail
        patch.setenv("DBT_INDIRECT_SELECTION", "cautious")
        result = defs.resolve_job_def("full_build").execute_in_process(
            instance=instance,
            asset_selection=sorted(
                (graph.get_all_asset_keys() - rebuilt_by_incremental_runs) | nightly_inputs
            ),
            # no event has landed yet: the staged-event checks have no rows of this run to check
            run_config={
                "ops": {STAGED_EVENTS_CHECK_OP: {"config": {"only_rows_of_this_run": True}}}
            },
        )
    assert result.success


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def sensor_setup(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    settings = _settings(tmp_path, landing)
    with connect(settings.warehouse_path) as con:  # a full build ran: the load audit exists
        ensure_raw_tables(con)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_files_sensor")
    with dg.instance_for_test() as instance:
        yield sensor, landing, instance


def test_a_new_file_gives_one_run_request_for_exactly_that_file(sensor_setup):
    sensor, landing, instance = sensor_setup
    first = _write(landing / "events-1.jsonl", '{"event_id": "a"}\n')

    result = _tick(sensor, landing, None, instance)

    (request,) = result.run_requests
    assert sensor.job_name == "incremental_update"
    assert request.run_config["ops"][RAW_EVENTS_OP]["config"]["files"] == [str(first)]
    # the dbt event tests check only the events of this run's load
    for step in DBT_STEP_NAMES:
        assert request.run_config["ops"][step]["config"] == {"only_rows_of_this_run": True}
    # the publish patches the published DuckDB file with the changed rows
    assert request.run_config["ops"][PUBLISH_OP]["config"] == {"only_changed_rows": True}
    assert ONLINE_STORE_OP not in request.run_config["ops"]  # no online store configured

    second = _write(landing / "events-2.jsonl", '{"event_id": "b"}\n')
    later = _tick(sensor, landing, result.cursor, instance)

    (request,) = later.run_requests
    assert request.run_config["ops"][RAW_EVENTS_OP]["config"]["files"] == [str(second)]


def test_with_an_online_store_sensor_runs_load_only_the_changed_profiles(tmp_path):
    landing = tmp_path / "landing"
    _write(landing / "events-1.jsonl", '{"event_id": "a"}\n')
    settings = dataclasses.replace(
        _settings(tmp_path, landing), online_redis_url="redis://127.0.0.1:6379/0"
    )
    with connect(settings.warehouse_path) as con:  # a full build ran: the load audit exists
        ensure_raw_tables(con)
    definitions = build_definitions(settings)
    sensor = definitions.resolve_sensor_def("landing_files_sensor")
    with dg.instance_for_test() as instance:
        (request,) = _tick(sensor, landing, None, instance).run_requests
    assert request.run_config["ops"][ONLINE_STORE_OP]["config"] == {"only_changed_persons": True}
    # the online store is part of the sensor's job, after the publish
    job = definitions.resolve_job_def("incremental_update")
    assert ONLINE_STORE_OP in {node.name for node in job.graph.node_defs}


def test_without_events_as_a_source_the_sensor_skips_and_reads_no_folder(sensor_setup, tmp_path):
    sensor, _, instance = sensor_setup
    result = _tick(sensor, tmp_path / "no-such-folder", None, instance, enabled=False)
    assert not result.run_requests
    assert "SEGWH_SOURCES" in result.skip_message


def test_the_same_files_again_give_no_request(sensor_setup):
    sensor, landing, instance = sensor_setup
    _write(landing / "events-1.jsonl", '{"event_id": "a"}\n')
    first = _tick(sensor, landing, None, instance)

    again = _tick(sensor, landing, first.cursor, instance)

    assert again.run_requests == []
    assert "no new files" in again.skip_message


def test_the_cursor_survives_a_restart_and_run_keys_are_stable(sensor_setup, tmp_path):
    sensor, landing, instance = sensor_setup
    _write(landing / "events-1.jsonl", '{"event_id": "a"}\n')
    first = _tick(sensor, landing, None, instance)
    stored_cursor = json.loads(json.dumps(first.cursor))  # what the instance persists

    with dg.instance_for_test() as restarted:  # a new daemon process: only the cursor survives
        after_restart = _tick(sensor, landing, stored_cursor, restarted)
        # had the cursor been lost, the same request would carry the same run key, and
        # Dagster launches a run key only once
        replay = _tick(sensor, landing, None, restarted)

    assert after_restart.run_requests == []
    assert replay.run_requests[0].run_key == first.run_requests[0].run_key


def test_a_changed_file_is_requested_again(sensor_setup):
    sensor, landing, instance = sensor_setup
    path = _write(landing / "events-1.jsonl", '{"event_id": "a"}\n')
    first = _tick(sensor, landing, None, instance)
    path.write_text('{"event_id": "a"}\n{"event_id": "b"}\n')
    os.utime(path, ns=(1, 1))

    again = _tick(sensor, landing, first.cursor, instance)

    (request,) = again.run_requests
    assert request.run_key != first.run_requests[0].run_key


EVENT = (
    '{{"event_id": "{id}", "event_type": "page_view", "occurred_at": "2026-10-01T10:00:00Z", '
    '"anonymous_id": "anon-1"}}\n'
)


def test_the_first_tick_skips_files_already_loaded_and_requests_changed_and_new_ones(
    sensor_setup, tmp_path
):
    """`make run` loaded the landing files; the first tick of `make ui` does not load them again,
    but a file changed since and a new file are requested."""
    sensor, landing, instance = sensor_setup
    kept = _write(landing / "events-1.jsonl", EVENT.format(id="a"))
    changed = _write(landing / "events-2.jsonl", EVENT.format(id="b"))
    with connect(tmp_path / "warehouse.duckdb") as con:  # the sensor's settings' warehouse
        report = load_event_files(con, discover_files(landing))
    assert len(report.files) == 2
    changed.write_text(EVENT.format(id="b") + EVENT.format(id="c"))
    os.utime(changed, ns=(1, 1))
    new = _write(landing / "events-3.jsonl", EVENT.format(id="d"))

    result = _tick(sensor, landing, None, instance)

    (request,) = result.run_requests
    assert request.run_config["ops"][RAW_EVENTS_OP]["config"]["files"] == [str(changed), str(new)]
    assert str(kept) in json.loads(result.cursor)
    assert _tick(sensor, landing, result.cursor, instance).run_requests == []


def test_before_the_first_full_build_the_sensor_requests_nothing_and_seeds_later(tmp_path):
    """An incremental run needs a full build before it (it would fail); the full build loads
    every landed file, so the sensor starts from its load audit afterwards."""
    landing = tmp_path / "landing"
    _write(landing / "events-1.jsonl", EVENT.format(id="a"))
    settings = _settings(tmp_path, landing)
    sensor = build_definitions(settings).resolve_sensor_def("landing_files_sensor")
    with dg.instance_for_test() as instance:
        before = _tick(sensor, landing, None, instance)
        with connect(settings.warehouse_path) as con:  # what the full build's ingestion does
            load_event_files(con, discover_files(landing))
        after = _tick(sensor, landing, before.cursor, instance)

    assert before.run_requests == [] and before.cursor is None
    assert "first full build" in before.skip_message
    assert after.run_requests == [] and str(landing / "events-1.jsonl") in after.cursor


def test_the_first_tick_waits_while_a_run_may_be_writing_the_warehouse(sensor_setup, tmp_path):
    """DuckDB: one read-write process or many read-only ones. While a run of the instance is in
    progress the sensor does not open the warehouse (it would block the run's write) and keeps
    its cursor empty, so the next tick seeds it."""
    sensor, landing, instance = sensor_setup
    _write(landing / "events-1.jsonl", EVENT.format(id="a"))
    with connect(tmp_path / "warehouse.duckdb") as con:
        load_event_files(con, discover_files(landing))
    writing = instance.create_run_for_job(_tiny_job, status=dg.DagsterRunStatus.STARTED)

    busy = _tick(sensor, landing, None, instance)

    assert busy.run_requests == [] and busy.cursor is None
    assert "writing the warehouse" in busy.skip_message
    instance.report_run_failed(writing)
    later = _tick(sensor, landing, None, instance)
    assert later.run_requests == [] and later.cursor is not None  # seeded: nothing to load


@dg.op
def _noop() -> None:
    return None


@dg.job
def _tiny_job() -> None:
    _noop()


def test_the_nightly_schedule_runs_the_whole_graph_at_two_utc(tmp_path):
    defs = build_definitions(_settings(tmp_path, tmp_path))
    schedule = defs.resolve_schedule_def("nightly_full_build")
    job = defs.resolve_job_def(schedule.job_name)
    graph = defs.resolve_asset_graph()

    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 2 * * *", "UTC")
    assert set(job.asset_layer.executable_asset_keys) == set(graph.get_all_asset_keys())
    assert set(job.asset_layer.asset_graph.asset_check_keys) == set(graph.asset_check_keys)


def test_the_schedule_time_and_zone_are_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGWH_NIGHTLY_CRON", "30 3 * * *")
    monkeypatch.setenv("SEGWH_NIGHTLY_TIMEZONE", "Europe/Berlin")
    from warehouse.settings import load_settings

    schedule = build_definitions(load_settings()).resolve_schedule_def("nightly_full_build")

    assert (schedule.cron_schedule, schedule.execution_timezone) == (
        "30 3 * * *",
        "Europe/Berlin",
    )


@pytest.mark.integration
def test_the_incremental_run_loads_only_the_requested_files(tmp_path, small_sample):
    landing = tmp_path / "landing"
    shutil.copytree(small_sample.landing_dir, landing)
    newest = sorted(landing.iterdir())[-1]
    newest.rename(tmp_path / newest.name)  # lands later
    settings = _settings(tmp_path, landing, small_sample.crm_url)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_files_sensor")

    with dg.instance_for_test() as instance:
        _materialize_what_incremental_runs_read(defs, instance, settings)
        first = _tick(sensor, landing, None, instance)
        (tmp_path / newest.name).rename(newest)
        second = _tick(sensor, landing, first.cursor, instance)
        (request,) = second.run_requests
        job = defs.resolve_job_def(sensor.job_name)
        result = job.execute_in_process(instance=instance, run_config=request.run_config)

    assert result.success
    with connect(settings.warehouse_path, read_only=True) as con:
        loaded_files = con.execute("SELECT file_name FROM raw.event_load_audit").fetchall()
        staged = con.execute("SELECT count(*) FROM staging.stg_clickstream__events").fetchone()[0]
    assert loaded_files == [(newest.name,)]
    assert staged > 0
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert dg.AssetKey(["raw", "crm_customers"]) not in materialized  # no CRM reload
    checks = {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    for name in ("expectations_raw_events", "expectations_stg_events"):
        assert checks[name].passed, name
        # cost ~ new data: the event checks validate only the rows this run loaded
        assert checks[name].metadata["rows_validated"].value == "this run's load", name
        assert checks[name].metadata["expectations"].value > 0, name


@pytest.mark.integration
def test_an_incremental_run_before_any_full_build_fails_with_what_to_do(tmp_path, small_sample):
    """The sensor's first tick on a new warehouse requests nothing and names the full build; an
    incremental run on a new warehouse all the same (no CRM staging, no seeds yet; e.g. the
    sensor's cursor outlived a deleted warehouse) stops before dbt and says which inputs are
    missing and which job builds them; its files stay loaded."""
    landing = tmp_path / "landing"
    shutil.copytree(small_sample.landing_dir, landing)
    settings = _settings(tmp_path, landing, small_sample.crm_url)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("landing_files_sensor")

    with dg.instance_for_test() as instance:
        first = _tick(sensor, landing, None, instance)
        assert not first.run_requests
        assert "first full build" in first.skip_message
        (request,) = _tick(sensor, landing, "{}", instance).run_requests
        result = defs.resolve_job_def(sensor.job_name).execute_in_process(
            instance=instance, run_config=request.run_config, raise_on_error=False
        )

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == DBT_STEP_NAMES[0]
    message = failure.event_specific_data.error.message
    assert "staging/stg_crm__customers, staging/stg_crm__orders" in message
    assert "seeds/rfm_segments" in message
    assert "run the full_build job" in message
    with connect(settings.warehouse_path, read_only=True) as con:
        files = con.execute("SELECT count(*) FROM raw.event_load_audit").fetchone()[0]
    assert files == len(list(landing.iterdir()))


@pytest.mark.postgres
@pytest.mark.integration
def test_a_dagster_instance_on_postgresql_completes_a_run(tmp_path, small_sample, postgres_url):
    """The production instance config (default config + deploy/postgres-storage.yaml) on the
    PostgreSQL server on loopback: a run completes and is stored there."""
    import sqlalchemy as sa

    from warehouse.settings import PROJECT_DIR

    database = f"dagster_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(sa.text(f"CREATE DATABASE {database}"))
    url = sa.make_url(postgres_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        (PROJECT_DIR / ".dagster_home" / "dagster.yaml").read_text()
        + (PROJECT_DIR / "deploy" / "postgres-storage.yaml").read_text()
    )
    env = {
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port),
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USER": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
    }
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            settings = _settings(tmp_path, small_sample.landing_dir, small_sample.crm_url)
            job = build_definitions(settings).resolve_job_def("full_build")
            with dg.DagsterInstance.from_config(str(home)) as instance:
                assert type(instance.run_storage).__name__ == "PostgresRunStorage"
                assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
                # one cheap step of the real job: what is tested is the instance, not the graph
                result = job.execute_in_process(instance=instance, asset_selection=[CRM_CUSTOMERS])
                stored = instance.get_run_record_by_id(result.run_id)
                materialized = instance.get_latest_materialization_event(CRM_CUSTOMERS)
        assert result.success
        assert stored.dagster_run.status == dg.DagsterRunStatus.SUCCESS
        assert materialized is not None and materialized.run_id == result.run_id
        dagster_db = sa.create_engine(url.set(database=database))
        with dagster_db.connect() as con:
            rows = con.execute(
                sa.text("SELECT status FROM runs WHERE run_id = :run_id"),
                {"run_id": result.run_id},
            ).fetchall()
        dagster_db.dispose()
        assert rows == [("SUCCESS",)]
    finally:
        with admin.connect() as con:
            con.execute(sa.text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        admin.dispose()
