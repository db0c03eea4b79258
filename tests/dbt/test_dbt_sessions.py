"""Incremental models equal a full rebuild after any sequence of incremental runs.

The incremental models: int_identifier_pairs, int_events_stitched, int_events_sessionized (the
sessions marts.sessions publishes), and the per-person
aggregates (int_events_aggregated_to_persons, int_sessions_aggregated_to_persons and the churn
features at as_of, int_churn_features_at_as_of, which recompute only the persons whose data,
windows or day counts changed).

Generated events are loaded into raw.events in five batches by arrival time, with out-of-order
and late deliveries: 3% of the events arrive one to three batches late (weeks, far beyond the
3-day lookback), the generator's own late events arrive days late, "bridge" events arrive after
the two sessions they join, and login events link anonymous visitors to customers after both
have sessions (an identity merge). After every batch the incremental sessions table must equal
a full rebuild over the same events, column for column.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import pytest
from dbt_helpers import Dbt, load_sample, release_dbt_duckdb, warehouse_connection

from sample_data import DEFAULT_AS_OF, generate

SAMPLE_EVENTS = 20_000
BATCHES = 5
LATE_SHARE_PERCENT = 3
BRIDGED_GAPS = 12
BRIDGE_BATCH = 4
LOGINS = 5
LOGIN_BATCH = 5
BRIDGE_STEP = timedelta(minutes=20)  # below the 30-minute inactivity timeout
IDENTIFIERS_LOST_BATCH = 3  # int_identifiers_stitched rebuilt without its previous state


def _plan_batches(con) -> None:
    """Which batch each event arrives in, plus the bridge and login events (table extra)."""
    con.execute(
        f"""
        CREATE OR REPLACE TABLE src.plan AS
        WITH ordered AS (
            SELECT event_id, ntile({BATCHES}) OVER (ORDER BY received_at, event_id) AS batch
            FROM src.raw.events
        )
        SELECT
            event_id,
            CASE WHEN hash(event_id) % 100 < {LATE_SHARE_PERCENT}
                 THEN least({BATCHES}, batch + 1 + hash(event_id || 'late') % 3)
                 ELSE batch END AS batch
        FROM ordered
        """
    )
    human = "NOT regexp_matches(coalesce(user_agent, ''), 'bot|headless|crawl', 'i')"
    # gaps between consecutive events of anonymous-only devices (a person of their own)
    con.execute(
        f"""
        CREATE OR REPLACE TABLE src.bridges AS
        WITH anonymous_only AS (
            SELECT anonymous_id FROM src.raw.events
            WHERE anonymous_id IS NOT NULL AND {human}
            GROUP BY anonymous_id HAVING count(user_id) = 0
        ),
        device_events AS (
            SELECT e.*, p.batch,
                   lead(e.occurred_at) OVER w AS next_at,
                   lead(p.batch) OVER w AS next_batch
            FROM src.raw.events AS e
            JOIN src.plan AS p USING (event_id)
            SEMI JOIN anonymous_only AS a USING (anonymous_id)
            WINDOW w AS (PARTITION BY e.anonymous_id ORDER BY e.occurred_at, e.event_id)
        )
        SELECT event_id, anonymous_id, occurred_at, next_at
        FROM device_events
        WHERE next_at - occurred_at BETWEEN INTERVAL 40 MINUTE AND INTERVAL 3 HOUR
          AND batch < {BRIDGE_BATCH} AND next_batch < {BRIDGE_BATCH}
        QUALIFY row_number() OVER (PARTITION BY anonymous_id ORDER BY md5(event_id)) = 1
        ORDER BY md5(event_id)
        LIMIT {BRIDGED_GAPS}
        """
    )
    gaps = con.execute("SELECT * FROM src.bridges ORDER BY md5(event_id)").fetchall()
    con.execute(
        "CREATE OR REPLACE TABLE src.extra AS SELECT *, 0 AS batch FROM src.raw.events WHERE false"
    )
    for number, (event_id, _, start, end) in enumerate(gaps):
        steps = math.ceil((end - start) / BRIDGE_STEP)
        for step in range(1, steps):
            con.execute(
                f"""
                INSERT INTO src.extra
                SELECT * REPLACE (
                    'bridge-{number}-{step}' AS event_id,
                    'page_view' AS event_type,
                    occurred_at + to_milliseconds(?) AS occurred_at,
                    NULL AS order_id, NULL AS revenue
                ), {BRIDGE_BATCH}
                FROM src.raw.events WHERE event_id = ?
                """,
                [round((end - start).total_seconds() * 1000 * step / steps), event_id],
            )
    logins = con.execute(
        f"""
        WITH anonymous_only AS (
            SELECT anonymous_id, min(occurred_at) AS first_at, arg_min(event_id, occurred_at) AS id
            FROM src.raw.events
            WHERE anonymous_id IS NOT NULL AND {human}
              AND anonymous_id NOT IN (SELECT anonymous_id FROM src.bridges)
            GROUP BY anonymous_id
            HAVING count(user_id) = 0 AND count(*) >= 3
        ),
        customers AS (
            SELECT DISTINCT user_id FROM src.raw.events WHERE user_id IS NOT NULL
        )
        SELECT a.id, c.user_id
        FROM (SELECT *, row_number() OVER (ORDER BY md5(anonymous_id)) AS n FROM anonymous_only) a
        JOIN (SELECT *, row_number() OVER (ORDER BY md5(user_id)) AS n FROM customers) c USING (n)
        LIMIT {LOGINS}
        """
    ).fetchall()
    for number, (event_id, user_id) in enumerate(logins):
        con.execute(
            f"""
            INSERT INTO src.extra
            SELECT * REPLACE (
                'login-{number}' AS event_id, ? AS user_id,
                occurred_at + INTERVAL 1 SECOND AS occurred_at
            ), {LOGIN_BATCH}
            FROM src.raw.events WHERE event_id = ?
            """,
            [user_id, event_id],
        )
    return gaps, logins


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt_sessions")
    sample = generate(root / "sample", n_events=SAMPLE_EVENTS, seed=11)
    source = root / "source.duckdb"
    load_sample(sample, source)
    warehouse = root / "warehouse.duckdb"
    with warehouse_connection(warehouse) as con:
        con.execute(f"ATTACH '{source}' AS src")
        gaps, logins = _plan_batches(con)
        con.execute("CREATE SCHEMA raw")
        for table in ("crm_customers", "crm_orders", "crm_consents"):
            con.execute(f"CREATE TABLE raw.{table} AS SELECT * FROM src.raw.{table}")
        con.execute("CREATE TABLE raw.events AS SELECT * FROM src.raw.events WHERE false")
        con.execute("DETACH src")
    # the seeds the stitched events read: their roles, the exchange rates of their money
    Dbt(warehouse, root).invoke("seed", "--select", "event_taxonomy", "exchange_rates")
    yield {"root": root, "source": source, "warehouse": warehouse, "gaps": gaps, "logins": logins}
    release_dbt_duckdb()


def _deliver(warehouse: Path, source: Path, batch: int) -> None:
    with warehouse_connection(warehouse) as con:
        con.execute(f"ATTACH IF NOT EXISTS '{source}' AS src (READ_ONLY)")
        # each delivery is one load, as ingestion records it: its own load id and time
        load = f"* REPLACE ('batch-{batch}' AS _load_id, now() AS _loaded_at)"
        con.execute(
            f"INSERT INTO raw.events SELECT e.{load} FROM src.raw.events e "
            "JOIN src.plan p USING (event_id) WHERE p.batch = ?",
            [batch],
        )
        con.execute(
            f"INSERT INTO raw.events SELECT {load} FROM "
            "(SELECT * EXCLUDE (batch) FROM src.extra WHERE batch = ?)",
            [batch],
        )


def _deliver_every_batch_once(world) -> None:
    """For a test run alone (pytest -k): deliver every batch unless earlier tests did."""
    with warehouse_connection(world["warehouse"]) as con:
        delivered = con.execute("SELECT count(*) FROM raw.events").fetchone()[0]
    if not delivered:
        for batch in range(1, BATCHES + 1):
            _deliver(world["warehouse"], world["source"], batch)


SESSIONS = "intermediate.int_events_sessionized"  # marts.sessions publishes it as it is
STITCHED_EVENTS = "intermediate.int_events_stitched"
SESSIONS_MODEL = "int_events_sessionized"
IDENTIFIERS = "intermediate.int_identifiers_stitched"
PAIRS = "intermediate.int_identifier_pairs"
PERSON_AGGREGATES = {
    "int_events_aggregated_to_persons": "intermediate.int_events_aggregated_to_persons",
    "int_sessions_aggregated_to_persons": "intermediate.int_sessions_aggregated_to_persons",
    "int_churn_features_at_as_of": "intermediate.int_churn_features_at_as_of",
}


def _keep(warehouse: Path, name: str, table: str = SESSIONS) -> None:
    with warehouse_connection(warehouse) as con:
        con.execute(f"CREATE OR REPLACE TABLE main.{name} AS SELECT * FROM {table}")


def _differences(
    warehouse: Path, left: str, right: str, ignore: tuple[str, ...] = ()
) -> tuple[int, int, int]:
    """(rows only in left, rows only in right, rows in left), comparing every column but
    ``ignore``."""
    columns = f"* EXCLUDE ({', '.join(ignore)})" if ignore else "*"
    with warehouse_connection(warehouse) as con:
        only_left = con.execute(
            f"SELECT count(*) FROM (SELECT {columns} FROM main.{left} "
            f"EXCEPT ALL SELECT {columns} FROM main.{right})"
        ).fetchone()[0]
        only_right = con.execute(
            f"SELECT count(*) FROM (SELECT {columns} FROM main.{right} "
            f"EXCEPT ALL SELECT {columns} FROM main.{left})"
        ).fetchone()[0]
        rows = con.execute(f"SELECT count(*) FROM main.{left}").fetchone()[0]
    return only_left, only_right, rows


def _restore(warehouse: Path, name: str, table: str = SESSIONS) -> None:
    with warehouse_connection(warehouse) as con:
        con.execute(f"DELETE FROM {table}; INSERT INTO {table} FROM main.{name}")


def _assert_incremental_equals_rebuild(
    dbt: Dbt, warehouse: Path, model: str, table: str, *vars_args: str, ignore: tuple[str, ...] = ()
) -> int:
    """Run ``model`` incrementally, keep it, rebuild it in full, compare every column (but
    ``ignore``), then put the incremental result back (later runs continue from it). Returns the
    row count."""
    dbt.invoke("run", "--select", model, *vars_args)
    _keep(warehouse, "incremental", table)
    dbt.invoke("run", "--select", model, "--full-refresh", *vars_args)
    _keep(warehouse, "rebuilt", table)
    only_incremental, only_rebuilt, rows = _differences(warehouse, "incremental", "rebuilt", ignore)
    assert (only_incremental, only_rebuilt) == (0, 0), f"{model}: {rows} rows"
    _restore(warehouse, "incremental", table)
    return rows


def _assert_person_aggregates_equal_a_rebuild(dbt: Dbt, warehouse: Path, *vars_args: str):
    """Each per-person aggregate, run incrementally, equals a full rebuild. Returns how many
    persons each run recomputed and how many rows the table has: {model: (refreshed, rows)}."""
    dbt.invoke("run", "--select", "int_orders_deduplicated", *vars_args)
    counts = {}
    for model, table in PERSON_AGGREGATES.items():
        refreshed = _persons_to_refresh(dbt, warehouse, model, *vars_args)
        rows = _assert_incremental_equals_rebuild(dbt, warehouse, model, table, *vars_args)
        counts[model] = (refreshed, rows)
    return counts


def _persons_to_refresh(dbt: Dbt, warehouse: Path, model: str, *vars_args: str) -> int | None:
    """How many persons the next incremental run of ``model`` recomputes (None: a first run)."""
    with warehouse_connection(warehouse) as con:
        if not con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'intermediate' "
            "AND table_name = ?",
            [model],
        ).fetchone()[0]:
            return None
    result = dbt.invoke("compile", "--select", model, *vars_args)
    refresh_set = _cte_body(result.result.results[0].node.compiled_code, "persons_to_refresh")
    with warehouse_connection(warehouse) as con:
        return con.execute(f"SELECT count(*) FROM ({refresh_set})").fetchone()[0]


def _cte_body(sql: str, name: str) -> str:
    """The query of the CTE ``name`` in ``sql``: up to its balancing parenthesis."""
    start = sql.index(f"{name} as (") + len(f"{name} as (")
    depth = 1
    for end in range(start, len(sql)):
        depth += {"(": 1, ")": -1}.get(sql[end], 0)
        if depth == 0:
            return sql[start:end]
    raise ValueError(f"unbalanced CTE {name}")


def _bridged_gaps_in_one_session(warehouse: Path, gaps) -> int:
    with warehouse_connection(warehouse) as con:
        return sum(
            con.execute(
                """
                SELECT count(*) FROM intermediate.int_events_sessionized s
                JOIN intermediate.int_identifiers_stitched i USING (person_id)
                WHERE i.identifier_type = 'anonymous_id'
                  AND i.identifier = segwh_pseudonymize(?)  -- staging's keyed pseudonym
                  AND s.started_at <= timezone('UTC', ?::TIMESTAMPTZ)
                  AND s.ended_at >= timezone('UTC', ?::TIMESTAMPTZ)
                """,
                [anonymous_id, start, end],
            ).fetchone()[0]
            for _, anonymous_id, start, end in gaps
        )


def _identifiers_to_restitch(con) -> tuple[int, int]:
    """(identifiers the next run of int_events_stitched treats as moved, all identifiers): those
    that got their person after the events' last stitching run."""
    return con.execute(
        f"SELECT count(*) FILTER (WHERE person_assigned_at > "
        f"(SELECT max(stitched_at) FROM {STITCHED_EVENTS})), count(*) FROM {IDENTIFIERS}"
    ).fetchone()


def _windows_sql(dbt: Dbt) -> str:
    result = dbt.invoke(
        "compile",
        "--inline",
        "select count(*) as persons, count(reprocess_from) as from_cutoff "
        "from ({{ sessions_reprocess_windows(ref('int_events_sessionized'), "
        "ref('int_events_stitched')) }})",
    )
    return result.result.results[0].node.compiled_code


def test_incremental_sessions_equal_a_full_rebuild_after_every_batch(world):
    warehouse, source = world["warehouse"], world["source"]
    dbt = Dbt(warehouse, world["root"])
    assert len(world["gaps"]) == BRIDGED_GAPS and len(world["logins"]) == LOGINS
    windows_sql = None
    reprocessed = []

    for batch in range(1, BATCHES + 1):
        _deliver(warehouse, source, batch)
        if batch == IDENTIFIERS_LOST_BATCH:  # no previous state: every identifier is new
            with warehouse_connection(warehouse) as con:
                con.execute(f"DROP TABLE {IDENTIFIERS}")
        dbt.invoke("run", "--select", "+int_identifiers_stitched")
        if batch > 1:  # the identifiers whose events the run re-stitches: new or moved ones
            with warehouse_connection(warehouse) as con:
                moved, identifiers = _identifiers_to_restitch(con)
            if batch == IDENTIFIERS_LOST_BATCH:
                assert moved == identifiers
            else:
                assert 0 < moved < identifiers, (moved, identifiers)
        # each row keeps the latest load its run had seen; a rebuild has seen them all at once
        pairs = _assert_incremental_equals_rebuild(
            dbt, warehouse, "int_identifier_pairs", PAIRS, ignore=("events_loaded_through",)
        )
        assert pairs > 0
        assert _assert_incremental_equals_rebuild(
            dbt, warehouse, "int_events_stitched", STITCHED_EVENTS, ignore=("stitched_at",)
        )
        # the next run re-stitches nothing unless identifiers move
        with warehouse_connection(warehouse) as con:
            assert _identifiers_to_restitch(con)[0] == 0
        if batch > 1:
            windows_sql = windows_sql or _windows_sql(dbt)
            with warehouse_connection(warehouse) as con:
                persons_to_rebuild, from_cutoff = con.execute(windows_sql).fetchone()
                persons = con.execute(
                    "SELECT count(DISTINCT person_id) FROM intermediate.int_events_stitched"
                ).fetchone()[0]
            reprocessed.append((persons_to_rebuild, from_cutoff, persons))
        if batch == BRIDGE_BATCH:
            assert _bridged_gaps_in_one_session(warehouse, world["gaps"]) == 0  # still split
        assert _assert_incremental_equals_rebuild(dbt, warehouse, SESSIONS_MODEL, SESSIONS)
        aggregates = _assert_person_aggregates_equal_a_rebuild(dbt, warehouse)
        if batch > 1:  # recomputed: the persons with new events, not everyone
            for refreshed, rows in aggregates.values():
                assert 0 < refreshed < rows

    # late bridge events merged the sessions on both sides of each gap
    assert _bridged_gaps_in_one_session(warehouse, world["gaps"]) == BRIDGED_GAPS
    # runs were incremental: most persons kept their sessions, some were rebuilt from a cutoff
    # (recent activity) and some in full (late events beyond the lookback, identity merges)
    for persons_to_rebuild, from_cutoff, persons in reprocessed:
        assert 0 < from_cutoff < persons_to_rebuild < persons
    # the mart publishes the intermediate sessions as they are
    dbt.invoke("run", "--select", "sessions")
    _keep(warehouse, "sessionized")
    _keep(warehouse, "published", "marts.sessions")
    assert _differences(warehouse, "sessionized", "published")[:2] == (0, 0)


def test_an_incremental_run_without_new_events_changes_nothing(world):
    warehouse = world["warehouse"]
    dbt = Dbt(warehouse, world["root"])
    _keep(warehouse, "before")

    dbt.invoke("run", "--select", SESSIONS_MODEL)

    _keep(warehouse, "after")
    assert _differences(warehouse, "before", "after")[:2] == (0, 0)


def test_an_earlier_as_of_still_equals_a_full_rebuild(world):
    """A backtest: as_of moves back, events after it stop counting, sessions follow; then
    forward again, and the events after the earlier as_of count again."""
    warehouse = world["warehouse"]
    dbt = Dbt(warehouse, world["root"])
    earlier = DEFAULT_AS_OF - timedelta(days=60)
    as_of = ("--vars", json.dumps({"as_of": earlier.isoformat()}))

    dbt.invoke("run", "--select", "+int_identifiers_stitched", *as_of)
    events = _assert_incremental_equals_rebuild(
        dbt, warehouse, "int_events_stitched", STITCHED_EVENTS, *as_of, ignore=("stitched_at",)
    )
    sessions = _assert_incremental_equals_rebuild(dbt, warehouse, SESSIONS_MODEL, SESSIONS, *as_of)
    with warehouse_connection(warehouse) as con:
        latest = con.execute(f"SELECT max(ended_at) FROM {SESSIONS}").fetchone()[0]
    assert sessions > 0 and latest <= earlier.replace(tzinfo=None)

    dbt.invoke("run", "--select", "+int_identifiers_stitched")  # back to the sample's as_of
    assert (
        _assert_incremental_equals_rebuild(
            dbt, warehouse, "int_events_stitched", STITCHED_EVENTS, ignore=("stitched_at",)
        )
        > events
    )
    assert _assert_incremental_equals_rebuild(dbt, warehouse, SESSIONS_MODEL, SESSIONS) > sessions


@pytest.mark.parametrize("step", [timedelta(minutes=4), timedelta(hours=5), timedelta(days=2)])
def test_person_aggregates_follow_a_moving_as_of(world, step):
    """Sensor runs move as_of forward a little: windowed counts (the last 5 minutes, hour, day,
    7/30/90 days, the cart abandonment window) change for the persons with events at a window's
    edge, whole-day counts (days since the last order, tenure) for the persons whose last or
    first activity lies at that time of day; only those are recomputed, and the result equals a
    full rebuild. A step of a day or more moves every whole-day count."""
    warehouse = world["warehouse"]
    dbt = Dbt(warehouse, world["root"])
    _deliver_every_batch_once(world)
    before = DEFAULT_AS_OF - timedelta(days=3)
    as_of = ("--vars", json.dumps({"as_of": before.isoformat()}))
    dbt.invoke("run", "--select", "+int_identifiers_stitched", "int_events_stitched", *as_of)
    dbt.invoke("run", "--select", SESSIONS_MODEL, *as_of)
    _assert_person_aggregates_equal_a_rebuild(dbt, warehouse, *as_of)

    moved = ("--vars", json.dumps({"as_of": (before + step).isoformat()}))
    dbt.invoke("run", "--select", "+int_identifiers_stitched", "int_events_stitched", *moved)
    dbt.invoke("run", "--select", SESSIONS_MODEL, *moved)
    counts = _assert_person_aggregates_equal_a_rebuild(dbt, warehouse, *moved)
    for model, (refreshed, rows) in counts.items():
        if step < timedelta(days=1) or model != "int_churn_features_at_as_of":
            assert 0 < refreshed < rows / 2, (model, refreshed, rows)


def test_sensor_runs_test_only_the_events_they_loaded(world):
    """With SEGWH_DBT_TESTED_LOAD_ID (the sensor's runs: the run id, their events' load_id), the
    event tests check only that load's events; without it, every event."""
    warehouse = world["warehouse"]
    dbt = Dbt(warehouse, world["root"])
    _deliver_every_batch_once(world)
    dbt.invoke("run", "--select", "stg_clickstream__events")
    event_tests = ("test", "--select", "stg_clickstream__events,test_type:data")

    def break_one_event(load_id: str) -> str:
        with warehouse_connection(warehouse) as con:
            (event_id,) = con.execute(
                "SELECT min(event_id) FROM staging.stg_clickstream__events WHERE load_id = ?",
                [load_id],
            ).fetchone()
            con.execute(
                "UPDATE staging.stg_clickstream__events SET event_type = NULL WHERE event_id = ?",
                [event_id],
            )
        return event_id

    def failed_tests(tested_load_id: str) -> list[str]:
        result = dbt.invoke(*event_tests, expect_success=False, tested_load_id=tested_load_id)
        assert len(result.result.results) >= 4  # unique and not-null tests of the events
        return [r.node.name for r in result.result.results if r.status == "fail"]

    break_one_event("batch-2")  # an earlier load
    assert failed_tests("batch-5") == []
    assert failed_tests("") == ["not_null_stg_clickstream__events_event_type"]
    break_one_event("batch-5")  # this run's load
    assert failed_tests("batch-5") == ["not_null_stg_clickstream__events_event_type"]
    dbt.invoke("run", "--select", "stg_clickstream__events", "--full-refresh")  # repair
