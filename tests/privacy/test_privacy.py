"""Privacy: keyed pseudonyms, consent, minimization (a scan for planted personal values),
erasure with suppression, and raw-event retention, on a real Dagster run of the whole graph
with every published output (DuckDB file, Parquet, PostgreSQL on loopback)."""

import dataclasses
import hashlib
import hmac
import json
import shutil
import sqlite3
import uuid
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa
from documentation_helpers import (
    assert_documented_as_declared,
    duckdb_comments,
    parquet_comments,
    postgres_comments,
    postgres_keys,
    published_expectation,
)
from online_helpers import online_store_on
from run_helpers import settings_without_data
from scan_helpers import files_holding
from table_helpers import rows_differing

from ingestion.events import discover_files, load_event_files
from orchestration.definitions import build_definitions
from orchestration.defs.automation import ONLINE_STORE_OP, PUBLISH_OP
from orchestration.defs.privacy import ERASURE_OP
from privacy import pseudonyms
from privacy.erasure import ErasureRequestError, erase_in_warehouse
from privacy.pseudonyms import PseudonymizationKeyError
from sample_data import DEFAULT_AS_OF
from serving.catalog import load_published_tables
from serving.online import store as online_store
from serving.online.store import OnlineStore
from warehouse.connection import connect
from warehouse.settings import ONLINE_REDIS_URL_VARIABLE, Settings

pytestmark = pytest.mark.integration

TEST_KEY = pseudonyms.key_from_environment()  # conftest sets the test suite's key

# Schemas allowed to hold raw identifiers and personal data: only raw (ingested as delivered).
RAW_SCHEMAS = ("raw",)


# --- pseudonyms -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"k" * 32, b"a-very-long-key-" * 8])  # short and > block size
def test_the_warehouse_macro_is_hmac_sha256_of_python(key):
    con = duckdb.connect()
    pseudonyms.install(con, key)
    values = ["C000123", "anon-9f8e", "ü-ñ", ""]
    got = [con.execute("SELECT segwh_pseudonymize(?)", [v]).fetchone()[0] for v in values]
    expected = [hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32] for v in values]
    assert got == expected == [pseudonyms.pseudonym(v, key) for v in values]
    assert con.execute("SELECT segwh_pseudonymize(NULL::VARCHAR)").fetchone()[0] is None


def test_a_missing_short_or_changed_key_is_refused_with_an_explanation(tmp_path):
    with pytest.raises(PseudonymizationKeyError, match="SEGWH_PSEUDONYMIZATION_KEY is not set"):
        pseudonyms.validated_key("")
    with pytest.raises(PseudonymizationKeyError, match="at least 32"):
        pseudonyms.validated_key("short")
    with connect(tmp_path / "w.duckdb") as con:
        pseudonyms.install(con, b"x" * 32)
        pseudonyms.install(con, b"x" * 32)  # the same key again is fine
        with pytest.raises(PseudonymizationKeyError, match="not the key this warehouse"):
            pseudonyms.install(con, b"y" * 32)


def test_the_code_location_with_the_privacy_job_and_assets_loads(tmp_path):
    """What the webserver does on load (names of ops and jobs must not collide, ...)."""
    settings = settings_without_data(tmp_path, as_of="")
    definitions = build_definitions(settings)
    dg.Definitions.validate_loadable(definitions)
    assert definitions.resolve_job_def("erase_person")
    groups = {s.group_name for s in definitions.resolve_all_asset_specs()}
    assert "privacy" in groups


@pytest.mark.parametrize(
    "request_",
    [
        {},
        {"customer_id": "C1", "email": "a@example.com"},
        {"email": "a@example.com", "email_pseudonym": "ab12"},
        {"customer_id": "  "},
    ],
)
def test_an_erasure_request_names_exactly_one_subject(request_):
    con = duckdb.connect()
    with pytest.raises(ErasureRequestError, match="exactly one customer_id, email or email_"):
        erase_in_warehouse(con, TEST_KEY, **request_)


# --- the whole graph ----------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    settings: Settings
    instance: dg.DagsterInstance
    sample: object
    postgres_url: str
    online: OnlineStore

    def run(self, job: str, run_config: dict | None = None):
        definitions = build_definitions(self.settings)
        result = definitions.resolve_job_def(job).execute_in_process(
            instance=self.instance, run_config=run_config or {}, raise_on_error=False
        )
        failed_checks = [
            (e.event_specific_data.check_name, e.event_specific_data.metadata)
            for e in result.all_events
            if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
        ]
        assert result.success, failed_checks
        return result


@pytest.fixture(scope="module")
def world(tmp_path_factory, small_sample, postgres_url, redis_url):
    with (
        online_store_on(redis_url) as online,
        pytest.MonkeyPatch.context() as environment,
    ):
        # Dagster reads the Redis URL from the environment at run time (dg.EnvVar)
        environment.setenv(ONLINE_REDIS_URL_VARIABLE, online.url)
        yield from _world(tmp_path_factory, small_sample, postgres_url, online)


def _world(tmp_path_factory, small_sample, postgres_url, online):
    root = tmp_path_factory.mktemp("privacy")
    landing = root / "landing"  # a landing folder of its own: the tests add files
    shutil.copytree(small_sample.landing_dir, landing)
    crm = root / "crm.sqlite"
    shutil.copy(small_sample.crm_path, crm)
    settings = Settings.in_folder(
        root,
        landing,
        f"sqlite:///{crm}",
        as_of=DEFAULT_AS_OF.isoformat(),
        serving_postgres_url=postgres_url,
        serving_postgres_schema=f"privacy_{uuid.uuid4().hex[:8]}",
        online_redis_url=online.url,
        online_redis_prefix=online.prefix,
    )
    with dg.instance_for_test() as instance:
        world = World(settings, instance, small_sample, postgres_url, online)
        world.run("full_build")
        yield world
    engine = sa.create_engine(postgres_url)
    with engine.begin() as pg:
        pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{settings.serving_postgres_schema}" CASCADE')
    engine.dispose()


def _crm(world: World, sql: str, params=()) -> list[tuple]:
    with sqlite3.connect(world.settings.crm_url.removeprefix("sqlite:///")) as con:
        return con.execute(sql, params).fetchall()


def _personal_values(world: World, where: str = "true", params=()) -> dict[str, set[str]]:
    """Raw identifiers and personal data of the customers matching ``where`` (all by default):
    CRM values and the anonymous ids, ips and user agents on their events."""
    rows = _crm(
        world,
        f"SELECT customer_id, email, first_name || ' ' || last_name, phone FROM customers "
        f"WHERE {where}",
        params,
    )
    values = {
        "customer_id": {r[0] for r in rows},
        "email": {r[1] for r in rows if r[1]},
        "full_name": {r[2] for r in rows if r[2]},
        "phone": {r[3] for r in rows if r[3]},
    }
    with connect(world.settings.warehouse_path, read_only=True) as con:
        con.execute("CREATE TEMP TABLE ids (v VARCHAR)")
        con.executemany("INSERT INTO ids VALUES (?)", [[v] for v in values["customer_id"]])
        devices = con.execute(
            "SELECT DISTINCT anonymous_id, ip, user_agent FROM raw.events "
            "WHERE user_id IN (SELECT v FROM ids) OR "
            "anonymous_id IN (SELECT anonymous_id FROM raw.events WHERE user_id IN "
            "(SELECT v FROM ids))"
        ).fetchall()
    values["anonymous_id"] = {d[0] for d in devices if d[0]}
    values["ip"] = {d[1] for d in devices if d[1]}
    return values


def _string_columns(con, database: str) -> list[tuple[str, str, str]]:
    return con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = ? AND data_type IN ('VARCHAR', 'JSON') ORDER BY ALL",
        [database],
    ).fetchall()


def _scan_duckdb(con, database: str, values: set[str], skip_schemas=RAW_SCHEMAS) -> list[str]:
    """Every column of every table and view of ``database`` holding one of ``values``
    (whole value, or inside a JSON / free text column)."""
    con.execute("CREATE OR REPLACE TEMP TABLE planted (v VARCHAR)")
    con.executemany("INSERT INTO planted VALUES (?)", [[v] for v in values])
    found = []
    for schema, table, column in _string_columns(con, database):
        if schema in skip_schemas or (database, schema) == ("temp", "main"):
            continue
        hits = con.execute(
            f'SELECT count(*) FROM {database}."{schema}"."{table}" t '
            f'WHERE "{column}"::VARCHAR IN (SELECT v FROM planted) '
            f"OR (\"{column}\"::VARCHAR LIKE '%@%' AND EXISTS (SELECT 1 FROM planted "
            f"WHERE contains(t.\"{column}\"::VARCHAR, planted.v) AND planted.v LIKE '%@%'))"
        ).fetchone()[0]
        if hits:
            found.append(f"{database}.{schema}.{table}.{column}: {hits}")
    return found


def _scan_redis(online: OnlineStore, values: set[str]) -> list[str]:
    """Every key of the online store (every version) whose name or content holds a value."""
    client = online.connect()
    found = []
    for key in client.scan_iter(match=f"{online.prefix}:*", count=1000):
        kind = client.type(key).decode()
        if kind == "hash":
            content = [x for pair in client.hgetall(key).items() for x in pair]
        elif kind == "zset":
            content = client.zrange(key, 0, -1)
        else:
            content = [client.get(key)] if kind == "string" else []
        text = b"\n".join([key, *content]).decode()
        hits = [v for v in values if v in text]
        if hits:
            found.append(f"redis {key.decode()}: {len(hits)}")
    client.close()
    return found


def _scan_everything(world: World, values: set[str], skip_schemas=RAW_SCHEMAS) -> list[str]:
    """The warehouse, the published DuckDB file, the current Parquet files, PostgreSQL and the
    online store in Redis."""
    serving = world.settings.resolved_serving_dir
    found = []
    with connect(world.settings.warehouse_path, read_only=True) as con:
        found += _scan_duckdb(
            con, con.execute("SELECT current_database()").fetchone()[0], values, skip_schemas
        )
        con.execute(f"ATTACH '{serving / 'segments.duckdb'}' AS published (READ_ONLY)")
        found += _scan_duckdb(con, "published", values, ())
        for path in sorted((serving / "parquet").glob("*/*.parquet")):
            con.execute(f"CREATE OR REPLACE TEMP VIEW pq AS SELECT * FROM '{path}'")
            for (column,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = 'pq' "
                "AND data_type = 'VARCHAR'"
            ).fetchall():
                hits = con.execute(
                    f'SELECT count(*) FROM pq WHERE "{column}" IN (SELECT v FROM planted)'
                ).fetchone()[0]
                if hits:
                    found.append(f"{path}:{column}: {hits}")
    engine = sa.create_engine(world.postgres_url)
    schema = world.settings.serving_postgres_schema
    with engine.connect() as pg:
        columns = pg.execute(
            sa.text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = :s AND data_type IN ('text', 'jsonb')"
            ),
            {"s": schema},
        ).fetchall()
        for table, column in columns:
            hits = pg.execute(
                sa.text(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text = ANY(:v)'
                ),
                {"v": sorted(values)},
            ).scalar()
            if hits:
                found.append(f"postgres.{schema}.{table}.{column}: {hits}")
    engine.dispose()
    return found + _scan_redis(world.online, values)


def test_no_identifier_or_personal_value_leaves_the_raw_layer(world):
    planted = _personal_values(world)
    with connect(world.settings.warehouse_path, read_only=True) as con:
        planted["user_agent"] = {
            r[0]
            for r in con.execute("SELECT DISTINCT user_agent FROM raw.events").fetchall()
            if r[0]
        }
        planted["ip"] |= {
            r[0] for r in con.execute("SELECT DISTINCT ip FROM raw.events").fetchall() if r[0]
        }
        planted["anonymous_id"] |= {
            r[0]
            for r in con.execute("SELECT DISTINCT anonymous_id FROM raw.events").fetchall()
            if r[0]
        }
    assert all(len(v) > 10 for v in planted.values()), {k: len(v) for k, v in planted.items()}
    values = set().union(*planted.values())
    # the scan finds what is there: raw holds every planted value
    with connect(world.settings.warehouse_path, read_only=True) as con:
        assert _scan_duckdb(con, "warehouse", values, skip_schemas=())

    assert _scan_everything(world, values) == []
    # identifiers do reach the marts, as keyed pseudonyms
    customer = sorted(planted["customer_id"])[0]
    with connect(world.settings.warehouse_path, read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM intermediate.int_identifiers_stitched WHERE identifier = ?",
                [pseudonyms.pseudonym(customer, TEST_KEY)],
            ).fetchone()[0]
            == 1
        )


def test_persons_without_consent_are_not_profiled_nor_personalized(world):
    no_analytics = _crm(
        world, "SELECT customer_id FROM consents WHERE purpose = 'analytics' AND NOT granted"
    )
    no_personalization = _crm(
        world,
        "SELECT c.customer_id FROM consents c JOIN consents a USING (customer_id) WHERE "
        "c.purpose = 'personalization' AND NOT c.granted AND a.purpose = 'analytics' "
        "AND a.granted",
    )
    assert no_analytics and no_personalization
    with connect(world.settings.warehouse_path, read_only=True) as con:
        con.execute("CREATE TEMP TABLE ids (v VARCHAR, analytics BOOLEAN)")
        con.executemany(
            "INSERT INTO ids VALUES (segwh_pseudonymize(?), ?)",
            [[c, False] for (c,) in no_analytics] + [[c, True] for (c,) in no_personalization],
        )
        person = (
            "SELECT person_id FROM intermediate.int_identifiers_stitched i JOIN ids "
            "ON i.identifier = ids.v AND i.identifier_type = 'user_id' WHERE ids.analytics = {}"
        )
        unprofiled = person.format("false")
        for table in (
            "marts.person_features",
            "marts.person_segments",
            "marts.person_rfm_scores",
            "marts.content_decisions",
            "marts.churn_snapshots",
            "marts.churn_scoring_snapshot",
            "ml.churn_scores",
            "ml.person_clusters",
        ):
            assert (
                con.execute(
                    f"SELECT count(*) FROM {table} WHERE person_id IN ({unprofiled})"
                ).fetchone()[0]
                == 0
            ), table
        # ... while their sessions are kept (site analytics in aggregate), not profiled
        assert (
            con.execute(
                f"SELECT count(*) FROM marts.sessions WHERE person_id IN ({unprofiled})"
            ).fetchone()[0]
            > 0
        )
        personalizable_not = person.format("true")
        decisions = con.execute(
            "SELECT decision_segment_key IS NULL, count(*) FROM marts.content_decisions "
            f"WHERE person_id IN ({personalizable_not}) GROUP BY 1"
        ).fetchall()
        assert dict(decisions) == {True: dict(decisions)[True]}  # the default rules only
        segmented = con.execute(
            f"SELECT count(*) FROM marts.person_segments WHERE person_id IN ({personalizable_not})"
        ).fetchone()[0]
        assert segmented > 0  # they are profiled, so a segment could have been used


def _events_file(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _published_version(world: World) -> str:
    published = world.settings.resolved_serving_dir / "segments.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        return con.execute("SELECT version FROM publish_version").fetchone()[0]


def _tables_holding(con, person_id: str, tables: list[str]) -> list[str]:
    """Those of ``tables`` with a row of ``person_id``."""
    sql = "SELECT count(*) FROM {} WHERE person_id = ?"
    return [t for t in tables if con.execute(sql.format(t), [person_id]).fetchone()[0]]


def test_a_consent_event_withdrawal_takes_effect_in_the_next_incremental_run(world):
    with connect(world.settings.warehouse_path, read_only=True) as con:
        customer_pseudonym, person_id = con.execute(
            "SELECT f.customer_id, f.person_id FROM marts.person_features f "
            "JOIN ml.person_clusters USING (person_id) JOIN ml.churn_scores USING (person_id) "
            "WHERE f.customer_id IS NOT NULL "
            "AND f.person_id IN (SELECT person_id FROM marts.churn_snapshots) "
            "ORDER BY f.event_count DESC LIMIT 1"
        ).fetchone()
    (customer,) = [
        c
        for (c,) in _crm(world, "SELECT customer_id FROM customers")
        if pseudonyms.pseudonym(c, TEST_KEY) == customer_pseudonym
    ]
    new_file = _events_file(
        world.settings.landing_dir / "consent-withdrawal.jsonl",
        [
            {
                "event_id": f"consent-{uuid.uuid4().hex}",
                "event_type": "consent_updated",
                "occurred_at": "2026-10-31T12:00:00Z",
                "user_id": customer,
                "properties": {"purpose": "analytics", "granted": False},
            }
        ],
    )
    result = world.run(
        "incremental_update",
        {
            "ops": {
                "raw__events": {"config": {"files": [str(new_file)]}},
                # as the landing sensor asks: patch the published DuckDB file, load the
                # changed profiles into the online store
                PUBLISH_OP: {"config": {"only_changed_rows": True}},
                ONLINE_STORE_OP: {"config": {"only_changed_persons": True}},
            }
        },
    )
    # the API no longer knows the person: their customer id resolves to nothing in Redis
    client, keys = world.online.connect(), world.online.keys
    served = online_store.current_version(client, keys)
    assert served == _published_version(world)
    assert client.hget(keys.identifiers(served, customer_pseudonym[:3]), customer_pseudonym) is None
    assert client.hget(keys.profiles(served, person_id[:3]), person_id) is None
    (load,) = [
        m.materialization.metadata
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["serving", "online_profile_store"])
    ]
    assert load["mode"].value == "changes" and load["profiles_removed"].value >= 1
    with connect(world.settings.warehouse_path, read_only=True) as con:
        assert con.execute(
            "SELECT has_analytics_consent, analytics_stated_at FROM marts.person_consents "
            "WHERE person_id = ?",
            [person_id],
        ).fetchone() == (
            False,
            duckdb.execute("SELECT TIMESTAMP '2026-10-31 12:00:00'").fetchone()[0],
        )
        assert (
            _tables_holding(
                con,
                person_id,
                [
                    "marts.person_features",
                    "ml.churn_scores",
                    "ml.person_clusters",
                    "marts.person_segments",
                    "marts.content_decisions",
                    # the churn training snapshots: dbt rebuilds the mart from the nightly ones
                    "marts.churn_snapshots",
                ],
            )
            == []
        )
    published = world.settings.resolved_serving_dir / "segments.duckdb"
    with duckdb.connect(str(published), read_only=True) as con:
        assert (
            _tables_holding(
                con,
                person_id,
                [
                    "person_features",
                    "person_clusters",
                    "churn_scores",
                    "person_segments",
                ],
            )
            == []
        )
    # the patch removed the withdrawn person's rows and left every published table equal to
    # the warehouse's, writing far fewer rows than a whole publish
    (publish,) = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["serving", "published_segments"])
    ]
    metadata = publish.materialization.metadata
    assert "marts.sessions" not in metadata["duckdb_tables_written_whole"].value
    listed = {t.published_name: t.name for t in load_published_tables()}
    with connect(world.settings.warehouse_path, read_only=True) as con:
        con.execute(f"ATTACH '{published}' AS published (READ_ONLY)")
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables() "
            "WHERE database_name = 'published' AND table_name <> 'publish_version'"
        ).fetchall()
        rows = 0
        for (table,) in tables:
            rows += con.execute(f"SELECT count(*) FROM {listed[table]}").fetchone()[0]
            assert rows_differing(con, listed[table], f"published.main.{table}") == 0, table
    assert 0 < metadata["duckdb_rows_written"].value < rows / 4, rows
    # the patched file is documented like a whole write
    assert_documented_as_declared(duckdb_comments(published), published_expectation())


def test_postgres_gets_only_the_listed_tables_documented_with_keys_and_person_indexes(world):
    schema = world.settings.serving_postgres_schema
    engine = sa.create_engine(world.postgres_url)
    try:
        assert_documented_as_declared(postgres_comments(engine, schema), published_expectation())
        keys = postgres_keys(engine, schema)
    finally:
        engine.dispose()
    assert "churn_snapshots" not in keys and "churn_scoring_snapshot" not in keys
    for table in load_published_tables():
        if table.published_name not in keys:
            continue  # listed but not built by this version (the publish warned)
        expected = [["pk", *table.primary_key]] if table.primary_key else []
        expected += [["index", *index] for index in table.indexes]
        assert keys[table.published_name] == sorted(expected), table.name
    # a person lookup finds an index wherever person_id is a column
    with_person = [t for t, entries in keys.items() if any(e[1] == "person_id" for e in entries)]
    assert {"person_features", "sessions", "person_identifiers", "churn_scores"} <= set(with_person)


def test_erasure_removes_every_trace_and_later_loads_do_not_bring_the_person_back(world):
    # a customer with events, orders and consents, erased by email
    (customer, email) = _crm(
        world,
        "SELECT c.customer_id, c.email FROM customers c JOIN orders o USING (customer_id) "
        "JOIN consents k USING (customer_id) WHERE k.purpose = 'analytics' AND k.granted "
        "AND c.email IS NOT NULL AND c.phone IS NOT NULL "
        "GROUP BY c.customer_id, c.email ORDER BY count(DISTINCT o.order_id) DESC, 1 LIMIT 1",
    )[0]
    values = _personal_values(world, "customer_id = ?", [customer])
    assert values["anonymous_id"], "the chosen customer has web events"
    with connect(world.settings.warehouse_path, read_only=True) as con:
        events_before = con.execute(
            "SELECT * FROM raw.events WHERE user_id = ? OR anonymous_id IN ?",
            [customer, sorted(values["anonymous_id"])],
        ).df()
        person_ids = {
            r[0]
            for r in con.execute(
                "SELECT person_id FROM intermediate.int_identifiers_stitched WHERE identifier IN ?",
                [
                    [
                        pseudonyms.pseudonym(v, TEST_KEY)
                        for v in values["customer_id"] | values["anonymous_id"]
                    ]
                ],
            ).fetchall()
        }
    assert len(events_before) > 0 and person_ids
    identifiers = (
        values["customer_id"]
        | values["email"]
        | values["phone"]
        | values["anonymous_id"]
        | {
            pseudonyms.pseudonym(v, TEST_KEY)
            for v in values["customer_id"] | values["anonymous_id"]
        }
        | person_ids
    )
    assert _scan_everything(world, identifiers, skip_schemas=())  # present before

    # the job takes the email's keyed hash (what `segwh erase --email` computes): the address
    # itself never enters Dagster's run storage
    hashed = pseudonyms.pseudonym(email.lower(), TEST_KEY)
    config = {"ops": {ERASURE_OP: {"config": {"email_pseudonym": hashed}}}}
    result = world.run("erase_person", config)
    stored = world.instance.get_run_by_id(result.run_id)
    assert email.lower() not in json.dumps(stored.run_config).lower()
    # bytes, not only rows: the published file is rewritten (a patched copy kept the deleted
    # rows in its free blocks), and no temporary copy is left in the serving folder
    serving = world.settings.resolved_serving_dir
    long_enough = {v for v in identifiers if len(v) >= 12}  # ids, pseudonyms, addresses
    assert files_holding(serving, long_enough) == []
    # the warehouse file too: compacted after the erasure (deleted rows stayed in free blocks)
    warehouse = world.settings.warehouse_path
    assert files_holding(warehouse, long_enough | values["email"] | values["phone"]) == []
    assert [p.name for p in warehouse.parent.glob(f"*{warehouse.name}*")] == [warehouse.name]

    # the suppression list keeps hashes of the pseudonyms, not the pseudonyms: no schema holds
    # the person any more, privacy included
    assert _scan_everything(world, identifiers, skip_schemas=()) == []
    with connect(world.settings.warehouse_path, read_only=True) as con:
        assert (
            con.execute(
                "SELECT count(*) FROM raw.crm_customers WHERE first_name || ' ' || last_name = ? "
                "AND phone = ?",
                [next(iter(values["full_name"])), next(iter(values["phone"]))],
            ).fetchone()[0]
            == 0
        )
        (audit,) = con.execute("SELECT * FROM privacy.erasure_requests").df().to_dict("records")
    assert audit["subject_type"] == "email"
    assert audit["subject_pseudonym"] == pseudonyms.pseudonym(email.lower(), TEST_KEY)
    removed = json.loads(audit["rows_removed"])
    assert removed["raw.events"] == len(events_before)
    assert removed["raw.crm_customers"] == 1 and removed.get("marts.person_features"), removed
    assert removed.get("duckdb:person_features") and removed.get("parquet:person_features.parquet")
    # the rewritten Parquet files keep their documentation
    current = world.settings.resolved_serving_dir / "parquet" / "current"
    assert_documented_as_declared(parquet_comments(current), published_expectation(False))
    assert any(k.startswith("postgres:") for k in removed)
    audit_text = json.dumps(audit, default=str)
    assert not any(v in audit_text for v in values["customer_id"] | values["email"])
    (observation,) = [
        e.event_specific_data.asset_observation.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert observation["customers_found"].value == 1
    assert observation["rows_removed"].value == sum(removed.values())

    # later loads: a re-delivery of the person's events and the unchanged CRM export
    redelivered = _events_file(
        world.settings.landing_dir / "redelivered.jsonl",
        [
            {
                k: (v.isoformat() if hasattr(v, "isoformat") else v)
                for k, v in row.items()
                if k in ("event_id", "event_type", "occurred_at", "anonymous_id", "user_id")
                and v is not None
            }
            for row in events_before.to_dict("records")
        ],
    )
    with connect(world.settings.warehouse_path) as con:
        pseudonyms.install(con, TEST_KEY)
        report = load_event_files(
            con, [f for f in discover_files(world.settings.landing_dir) if f.path == redelivered]
        )
        audit_row = con.execute(
            "SELECT landed, loaded, suppressed FROM raw.event_load_audit WHERE file_name = ?",
            [redelivered.name],
        ).fetchone()
    assert report.total("suppressed") == len(events_before) == audit_row[2]
    assert report.total("loaded") == 0 and audit_row[:2] == (len(events_before), 0)
    world.run("full_build")
    assert _scan_everything(world, identifiers, skip_schemas=()) == []

    # a request for an unknown customer removes nothing and is recorded all the same
    world.run("erase_person", {"ops": {ERASURE_OP: {"config": {"customer_id": "NO-SUCH-ID"}}}})
    with connect(world.settings.warehouse_path, read_only=True) as con:
        assert con.execute(
            "SELECT count(*), max(rows_removed::VARCHAR) FILTER (WHERE requested_at = "
            "(SELECT max(requested_at) FROM privacy.erasure_requests)) "
            "FROM privacy.erasure_requests"
        ).fetchone() == (2, "{}")


def test_retention_deletes_raw_events_older_than_the_period_and_keeps_identities(world):
    as_of = DEFAULT_AS_OF
    with connect(world.settings.warehouse_path, read_only=True) as con:
        older, newer, staged_older = (
            con.execute(sql, [as_of]).fetchone()[0]
            for sql in (
                "SELECT count(*) FROM raw.events "
                "WHERE occurred_at < ?::TIMESTAMPTZ - INTERVAL 30 DAY",
                "SELECT count(*) FROM raw.events "
                "WHERE occurred_at >= ?::TIMESTAMPTZ - INTERVAL 30 DAY",
                "SELECT count(*) FROM staging.stg_clickstream__events "
                "WHERE occurred_at < timezone('UTC', ?::TIMESTAMPTZ) - INTERVAL 30 DAY",
            )
        )
        features_before = con.execute("SELECT count(*) FROM marts.person_features").fetchone()[0]
    assert older > 0 and newer > 0 and staged_older > 0
    short = dataclasses.replace(world.settings, raw_retention_days=30)
    definitions = build_definitions(short)
    job = definitions.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=world.instance,
        asset_selection=[dg.AssetKey(["privacy", "raw_events_retention"])],
    )
    assert result.success
    with connect(world.settings.warehouse_path, read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FILTER (WHERE occurred_at < ?::TIMESTAMPTZ - INTERVAL 30 DAY), "
            "count(*) FROM raw.events",
            [as_of],
        ).fetchone() == (0, newer)
        # the pseudonymized, minimized staged events and what is built from them are kept
        assert (
            con.execute(
                "SELECT count(*) FROM staging.stg_clickstream__events "
                "WHERE occurred_at < timezone('UTC', ?::TIMESTAMPTZ) - INTERVAL 30 DAY",
                [as_of],
            ).fetchone()[0]
            == staged_older
        )
        assert con.execute("SELECT count(*) FROM marts.person_features").fetchone()[0] == (
            features_before
        )
    # the cut is recorded as the tables' new row counts: the next run's checks (raw.events may
    # never shrink) do not take it for data loss; identities stay whole, so nobody is lost
    world.run("full_build")
    with connect(world.settings.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marts.person_features").fetchone()[0] == (
            features_before
        )
