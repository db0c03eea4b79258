"""Write-audit-publish: BI-like reader processes query the published DuckDB file, the Parquet
folder and the PostgreSQL schema in a loop while new versions are published; they must see no
errors, no lock failures and never a mix of two versions."""

import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa
from documentation_helpers import (
    duckdb_comments,
    expected_comments,
    parquet_comments,
    postgres_comments,
    postgres_keys,
)
from table_helpers import rows_differing

from serving.catalog import ColumnDoc, PublishedTable, TableDoc
from serving.publish import (
    CURRENT,
    JOURNAL,
    PARQUET_DIR,
    PUBLISH_VERSION_DOC,
    PUBLISHED_DUCKDB,
    PublishResult,
    journal_entry,
    new_version,
    publish_duckdb,
    publish_parquet,
    publish_postgres,
    published_duckdb_version,
    record_finished_publish,
    recover_interrupted_publish,
    switch_parquet,
    write_journal,
)
from warehouse.connection import connect

TABLES = ["marts.segment_sizes", "marts.person_segments"]
VERSIONS = 6


def _rows_for(index: int) -> int:
    return 1_000 + 137 * index  # every version has its own row count


def _build_version(warehouse: Path, version: str, index: int) -> None:
    """The working warehouse as one run leaves it: every row names its version."""
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        for table in TABLES:
            con.execute(
                f"CREATE OR REPLACE TABLE {table} AS SELECT i AS id, ? AS built_version, "
                "'segment-' || (i % 7) AS segment FROM range(?) t(i)",
                [version, _rows_for(index)],
            )


# --- readers (separate processes, like BI tools) -----------------------------------------------


def _check(observed: list[tuple], errors: list[str], where: str) -> None:
    """One consistent read: both tables and the marker name one version; counts agree."""
    (marker, sizes_version, sizes_rows, members_version, members_rows) = observed[0]
    if not (marker == sizes_version == members_version) or sizes_rows != members_rows:
        errors.append(f"{where}: mixed versions {observed[0]}")


def _read_duckdb(serving: str, stop_at: float, results) -> None:
    errors, seen, reads = [], set(), 0
    while time.time() < stop_at:
        try:
            with duckdb.connect(os.path.join(serving, PUBLISHED_DUCKDB), read_only=True) as con:
                observed = con.execute(
                    "SELECT (SELECT version FROM publish_version), "
                    "(SELECT min(built_version) || max(built_version) FROM segment_sizes), "
                    "(SELECT count(*) FROM segment_sizes), "
                    "(SELECT min(built_version) || max(built_version) FROM person_segments), "
                    "(SELECT count(*) FROM person_segments)"
                ).fetchall()
            observed = [(o[0], o[1][: len(o[0])], o[2], o[3][: len(o[0])], o[4]) for o in observed]
            _check(observed, errors, "duckdb")
            seen.add(observed[0][0])
            reads += 1
        except Exception as exc:  # any error is a failure of publishing
            errors.append(f"duckdb: {type(exc).__name__}: {exc}")
    results.put({"reader": "duckdb", "errors": errors, "versions": len(seen), "reads": reads})


def _read_parquet(serving: str, stop_at: float, results) -> None:
    errors, seen, reads = [], set(), 0
    while time.time() < stop_at:
        try:
            folder = os.path.realpath(os.path.join(serving, PARQUET_DIR, CURRENT))
            with open(os.path.join(folder, "_manifest.json")) as handle:
                marker = json.load(handle)["version"]
            con = duckdb.connect()
            row = con.execute(
                f"SELECT (SELECT max(built_version) FROM '{folder}/segment_sizes.parquet'), "
                f"(SELECT count(*) FROM '{folder}/segment_sizes.parquet'), "
                f"(SELECT max(built_version) FROM '{folder}/person_segments.parquet'), "
                f"(SELECT count(*) FROM '{folder}/person_segments.parquet')"
            ).fetchone()
            con.close()
            _check([(marker, *row)], errors, "parquet")
            seen.add(marker)
            reads += 1
        except Exception as exc:
            errors.append(f"parquet: {type(exc).__name__}: {exc}")
    results.put({"reader": "parquet", "errors": errors, "versions": len(seen), "reads": reads})


def _read_postgres(url: str, schema: str, stop_at: float, results) -> None:
    errors, seen, reads = [], set(), 0
    engine = sa.create_engine(url)
    while time.time() < stop_at:
        try:
            with engine.connect() as pg:
                row = pg.exec_driver_sql(
                    f'SELECT (SELECT version FROM "{schema}".publish_version), '
                    f'(SELECT max(built_version) FROM "{schema}".segment_sizes), '
                    f'(SELECT count(*) FROM "{schema}".segment_sizes), '
                    f'(SELECT max(built_version) FROM "{schema}".person_segments), '
                    f'(SELECT count(*) FROM "{schema}".person_segments)'
                ).fetchone()
            _check([tuple(row)], errors, "postgres")
            seen.add(row[0])
            reads += 1
        except Exception as exc:
            errors.append(f"postgres: {type(exc).__name__}: {exc}")
    engine.dispose()
    results.put({"reader": "postgres", "errors": errors, "versions": len(seen), "reads": reads})


# --- the test ----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_readers_never_see_errors_locks_or_mixed_versions(tmp_path, postgres_url):
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    schema = f"segments_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)

    def publish(index: int) -> None:
        version = new_version()
        _build_version(warehouse, version, index)
        with connect(warehouse) as con:
            # every other version patches a copy of the published file (as sensor runs do)
            publish_duckdb(con, TABLES, serving, version, patch=index % 2 == 1)
            publish_parquet(con, TABLES, serving, version)
            publish_postgres(
                con, TABLES, engine, schema, version, "segwh_bi_reader", tmp_path / "scratch"
            )

    try:
        publish(0)  # a first version exists before BI tools connect
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        stop_at = time.time() + 30
        readers = [
            spawn.Process(target=_read_duckdb, args=(str(serving), stop_at, results)),
            spawn.Process(target=_read_parquet, args=(str(serving), stop_at, results)),
            spawn.Process(target=_read_postgres, args=(postgres_url, schema, stop_at, results)),
        ]
        for reader in readers:
            reader.start()
        for index in range(1, VERSIONS):
            publish(index)
            time.sleep(1)
        reports = [results.get(timeout=120) for _ in readers]
        for reader in readers:
            reader.join(timeout=30)
    finally:
        with engine.begin() as pg:
            pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()

    for report in reports:
        assert report["errors"] == [], report["errors"][:5]
        assert report["reads"] > 10, report
        assert report["versions"] >= 2, report  # the readers did see new versions arrive
    assert len(list((serving / PARQUET_DIR).iterdir())) <= 4  # old versions pruned (+ current)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "held, opened", [("person_segments", "segment_sizes"), ("segment_sizes", "person_segments")]
)
def test_swap_does_not_deadlock_with_a_reader_opening_tables_in_another_order(
    tmp_path, postgres_url, held, opened
):
    """The lock-order cycle that once failed CI, played deterministically: a reader transaction
    holds one table while the publisher swaps, then opens another. Waiting for the locks one by
    one, the publisher would hold the second and wait for the first (in one of the two orders),
    and PostgreSQL would abort one of the two with 'deadlock detected'."""
    import threading

    warehouse = tmp_path / "warehouse.duckdb"
    schema = f"segments_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    reader = sa.create_engine(postgres_url)

    def publish(index: int) -> str:
        version = new_version()
        _build_version(warehouse, version, index)
        with connect(warehouse) as con:
            publish_postgres(
                con, TABLES, engine, schema, version, "segwh_bi_reader", tmp_path / "scratch"
            )
        return version

    try:
        first = publish(0)
        with reader.connect() as pg:
            pg.exec_driver_sql(f'SELECT count(*) FROM "{schema}".{held}').scalar()
            publisher = threading.Thread(target=publish, args=(1,))
            publisher.start()
            time.sleep(1.5)  # the publisher is retrying; PostgreSQL's deadlock_timeout is 1 s
            version_seen = pg.exec_driver_sql(
                f'SELECT max(built_version) FROM "{schema}".{opened}'
            ).scalar()
            assert publisher.is_alive(), "the swap must wait for the open reader transaction"
            pg.commit()
        publisher.join(timeout=60)
        assert not publisher.is_alive()
        assert version_seen == first  # the reader's transaction saw one version throughout
        with reader.connect() as pg:
            assert (
                pg.exec_driver_sql(f'SELECT version FROM "{schema}".publish_version').scalar()
                != first
            )
    finally:
        with engine.begin() as pg:
            pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()
        reader.dispose()


@pytest.mark.postgres
def test_swap_gives_up_with_a_clear_error_when_readers_never_let_go(postgres_url):
    from serving.publish import _with_exclusive_locks

    schema = f"segments_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as pg:
            pg.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
            pg.exec_driver_sql(f'CREATE TABLE "{schema}".t (i int)')
        with engine.connect() as holder:
            holder.exec_driver_sql(f'SELECT * FROM "{schema}".t').all()  # holds the lock
            started = time.monotonic()
            with pytest.raises(TimeoutError, match="busy for more than"):
                _with_exclusive_locks(engine, schema, lambda pg: None, timeout=1.0)
            assert time.monotonic() - started < 5
            holder.rollback()
    finally:
        with engine.begin() as pg:
            pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        engine.dispose()


# --- patching the published DuckDB file with the changed rows -----------------------------------


def test_a_patched_publish_writes_only_the_changed_rows_and_equals_the_warehouse(tmp_path):
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    published = serving / PUBLISHED_DUCKDB
    tables = ["marts.sessions", "marts.segment_sizes", "marts.retired", "marts.reshaped"]
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            # columns named like the helper's own (row_hash) and like aliases (p, c)
            "CREATE TABLE marts.sessions AS SELECT i AS id, i % 7 AS bucket, i % 2 AS p, "
            "'x' AS c, i AS row_hash, "
            "CASE WHEN i % 5 = 0 THEN NULL ELSE [i, i + 1] END AS pages, "
            "'2026-11-01'::TIMESTAMPTZ + to_minutes(i) AS started_at FROM range(1000) t(i)"
        )
        con.execute(
            "CREATE TABLE marts.segment_sizes AS SELECT i AS segment, 10 AS size "
            "FROM range(10) t(i)"
        )
        con.execute("CREATE TABLE marts.retired AS SELECT 1 AS x")
        con.execute("CREATE TABLE marts.reshaped AS SELECT 1 AS x")
        first = publish_duckdb(con, tables, serving, "v1", patch=True)  # nothing to patch yet
        assert not any(t.patched for t in first.values())

        # what the next run changes: 10 rows updated, 3 deleted, 1 duplicated, 2 added;
        # a table retired, a new one, a column type changed, a table changed for the most part
        con.execute("UPDATE marts.sessions SET bucket = 99 WHERE id < 10")
        con.execute("DELETE FROM marts.sessions WHERE id IN (500, 501, 502)")
        con.execute("INSERT INTO marts.sessions SELECT * FROM marts.sessions WHERE id = 600")
        con.execute(
            "INSERT INTO marts.sessions VALUES (1000, 1, 0, 'x', 0, NULL, NULL), "
            "(1001, 1, 0, 'x', 0, [], NULL)"
        )
        con.execute("UPDATE marts.segment_sizes SET size = 11 WHERE segment < 8")
        con.execute("DROP TABLE marts.retired")
        con.execute("CREATE TABLE marts.added AS SELECT 2 AS y")
        con.execute("CREATE OR REPLACE TABLE marts.reshaped AS SELECT 1::BIGINT AS x")
        os.link(published, tmp_path / "v1.duckdb")  # the inode readers of v1 hold open
        v1_bytes = hashlib.sha256((tmp_path / "v1.duckdb").read_bytes()).hexdigest()

        tables = ["marts.sessions", "marts.segment_sizes", "marts.added", "marts.reshaped"]
        second = publish_duckdb(con, tables, serving, "v2", patch=True)

        assert second["marts.sessions"].patched
        # 10 updated (10 out, 10 in), 3 deleted, row 600 now twice (1 out, 2 in), 2 added
        assert second["marts.sessions"].rows_written == 20 + 3 + 3 + 2
        assert second["marts.sessions"].rows == 1000 - 3 + 1 + 2
        for name in ("marts.segment_sizes", "marts.added", "marts.reshaped"):
            assert not second[name].patched, name  # mostly changed / new / other columns
            assert second[name].rows_written == second[name].rows, name
        con.execute(f"ATTACH '{published}' AS published (READ_ONLY)")
        try:
            for table in tables:
                assert rows_differing(con, table, f"published.main.{table.split('.')[1]}") == 0
            assert con.execute(
                "SELECT table_name, data_type FROM duckdb_columns() "
                "WHERE database_name = 'published' ORDER BY ALL"
            ).fetchall() == [
                ("added", "INTEGER"),
                ("publish_version", "TIMESTAMP WITH TIME ZONE"),
                ("publish_version", "VARCHAR"),
                ("reshaped", "BIGINT"),
                ("segment_sizes", "BIGINT"),
                ("segment_sizes", "INTEGER"),
                ("sessions", "BIGINT"),
                ("sessions", "BIGINT"),
                ("sessions", "BIGINT"),
                ("sessions", "BIGINT"),
                ("sessions", "BIGINT[]"),
                ("sessions", "TIMESTAMP WITH TIME ZONE"),
                ("sessions", "VARCHAR"),
            ]  # marts.retired is gone
            assert con.execute("SELECT version FROM published.publish_version").fetchall() == [
                ("v2",)
            ]
        finally:
            con.execute("DETACH published")

        # unchanged tables write nothing; the file readers of v1 hold was never written to
        third = publish_duckdb(con, tables, serving, "v3", patch=True)
    assert {t: p.rows_written for t, p in third.items()} == dict.fromkeys(tables, 0)
    assert all(p.patched for p in third.values())
    assert hashlib.sha256((tmp_path / "v1.duckdb").read_bytes()).hexdigest() == v1_bytes
    assert not list(serving.glob(".*.tmp"))


@pytest.mark.parametrize("patch", [False, True])
def test_a_failed_publish_leaves_the_published_file_and_no_temporary_copy(tmp_path, patch):
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.sizes AS SELECT i AS segment FROM range(10) t(i)")
        publish_duckdb(con, ["marts.sizes"], serving, "v1")
        before = (serving / PUBLISHED_DUCKDB).read_bytes()
        con.execute("INSERT INTO marts.sizes VALUES (10)")

        with pytest.raises(duckdb.CatalogException, match="missing"):
            publish_duckdb(con, ["marts.sizes", "marts.missing"], serving, "v2", patch=patch)

    assert (serving / PUBLISHED_DUCKDB).read_bytes() == before
    assert sorted(p.name for p in serving.iterdir()) == [PUBLISHED_DUCKDB]


@pytest.fixture(scope="session")
def duckdb_1x_python(tmp_path_factory) -> Path:
    """A Python of its own with the newest DuckDB 1.x, as BI tools' drivers are (installed by
    uv from PyPI, cached across runs)."""
    env = tmp_path_factory.mktemp("duckdb_1x") / "venv"
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "venv", "-q", str(env)], check=True)
    python = env / "bin" / "python"
    subprocess.run(
        [str(uv), "pip", "install", "-q", "--python", str(python), "duckdb<2"], check=True
    )
    return python


@pytest.mark.slow
def test_the_published_file_opens_in_duckdb_1x(tmp_path, duckdb_1x_python):
    """A whole write and a patch of it (the sensor's) stay readable by a DuckDB 1.x client,
    documentation included."""
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    docs = {"marts.sizes": TableDoc("Sizes_of_segments.", (ColumnDoc("size", "INTEGER", "n"),))}
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.sizes AS SELECT i AS segment, 10 AS size FROM range(5) t(i)"
        )
        publish_duckdb(
            con, ["marts.sizes"], serving, "v1", storage_version="v1.4.0", documentation=docs
        )
        con.execute("UPDATE marts.sizes SET size = 11 WHERE segment = 0")
        publish_duckdb(
            con,
            ["marts.sizes"],
            serving,
            "v2",
            patch=True,
            storage_version="v1.4.0",
            documentation=docs,
        )
    read = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print(duckdb.__version__, con.execute('SELECT sum(size) FROM sizes').fetchone()[0], "
        "con.execute('SELECT version FROM publish_version').fetchone()[0], "
        "con.execute(\"SELECT comment FROM duckdb_tables() WHERE table_name = 'sizes'\")"
        ".fetchone()[0])"
    )
    published = serving / "segments.duckdb"
    out = subprocess.run(
        [str(duckdb_1x_python), "-c", read, str(published)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out[0].startswith("1.") and out[1:] == ["51", "v2", "Sizes_of_segments."]

    # this DuckDB's own storage version (the setting left empty) is one a 1.x client refuses
    with connect(warehouse) as con:
        publish_duckdb(con, ["marts.sizes"], serving, "v3", storage_version="")
    refused = subprocess.run(
        [str(duckdb_1x_python), "-c", read, str(published)], capture_output=True, text=True
    )
    assert refused.returncode != 0 and "version" in refused.stderr


# --- documentation, keys and indexes in every output --------------------------------------------

DOCS = {
    "marts.person_features": TableDoc(
        "One row per person: what they did up to the run's as_of.",
        (
            ColumnDoc("person_id", "VARCHAR", "The person."),
            ColumnDoc("session_count", "BIGINT", "Sessions of the person (it's a count)."),
            ColumnDoc("Mixed Case", "VARCHAR", "A column whose name needs quoting."),
        ),
    ),
    "marts.person_segments": TableDoc(
        "One row per person and segment they hold.",
        (
            ColumnDoc("person_id", "VARCHAR", "The person."),
            ColumnDoc("segment_key", "VARCHAR", "The segment."),
        ),
    ),
}
DOCUMENTED_TABLES = list(DOCS)
KEYS = {
    "marts.person_features": PublishedTable("marts.person_features", ("person_id",)),
    "marts.person_segments": PublishedTable(
        "marts.person_segments", ("person_id", "segment_key"), (("segment_key",),)
    ),
}


def _documented_warehouse(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA marts")
    con.execute(
        "CREATE TABLE marts.person_features AS SELECT 'p' || i AS person_id, "
        "i AS session_count, 'x' AS \"Mixed Case\" FROM range(100) t(i)"
    )
    con.execute(
        "CREATE TABLE marts.person_segments AS SELECT 'p' || i AS person_id, "
        "'segment-' || j AS segment_key FROM range(100) t(i), range(3) s(j)"
    )


def _publish_documented(con, serving: Path) -> None:
    """The documented warehouse, published as version v1 to the DuckDB file and Parquet."""
    _documented_warehouse(con)
    publish_duckdb(con, DOCUMENTED_TABLES, serving, "v1", documentation=DOCS)
    publish_parquet(con, DOCUMENTED_TABLES, serving, "v1", documentation=DOCS)


def test_every_table_and_column_is_documented_in_the_duckdb_file_and_parquet(tmp_path):
    """Whole write, then a patch of it as sensor runs do (rows and descriptions changed)."""
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    expected = expected_comments({**DOCS, "serving.publish_version": PUBLISH_VERSION_DOC})
    with connect(warehouse) as con:
        _publish_documented(con, serving)

        assert duckdb_comments(serving / PUBLISHED_DUCKDB) == expected
        assert all(expected.values())  # every table and column has a non-empty comment
        parquet = parquet_comments(serving / PARQUET_DIR / CURRENT)
        assert parquet == {k: v for k, v in expected.items() if not k.startswith("publish_")}

        # a sensor run: a few rows change, one description is rewritten, one column loses its
        con.execute("UPDATE marts.person_features SET session_count = 0 WHERE session_count < 3")
        features = DOCS["marts.person_features"]
        rewritten = {
            **DOCS,
            "marts.person_features": TableDoc(
                "One row per person, rewritten.",
                (
                    ColumnDoc("person_id", "VARCHAR", "The person, rewritten."),
                    ColumnDoc("session_count", "BIGINT", ""),
                    features.columns[2],
                ),
            ),
        }
        patched = publish_duckdb(
            con, DOCUMENTED_TABLES, serving, "v2", patch=True, documentation=rewritten
        )

    assert patched["marts.person_features"].patched and patched["marts.person_segments"].patched
    after_patch = duckdb_comments(serving / PUBLISHED_DUCKDB)
    assert after_patch == {
        **expected,
        "person_features": "One row per person, rewritten.",
        "person_features.person_id": "The person, rewritten.",
        "person_features.session_count": None,  # no stale comment left from the copied file
    }


@pytest.mark.postgres
def test_postgres_gets_comments_primary_keys_and_indexes_and_refuses_duplicate_keys(
    tmp_path, postgres_url
):
    warehouse = tmp_path / "warehouse.duckdb"
    schema = f"docs_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)

    def publish(con, version: str) -> None:
        publish_postgres(
            con,
            DOCUMENTED_TABLES,
            engine,
            schema,
            version,
            "segwh_bi_reader",
            tmp_path / "scratch",
            documentation=DOCS,
            keys=KEYS,
        )

    try:
        with connect(warehouse) as con:
            _documented_warehouse(con)
            publish(con, "v1")
            assert postgres_comments(engine, schema) == expected_comments(
                {**DOCS, "serving.publish_version": PUBLISH_VERSION_DOC}
            )
            assert postgres_keys(engine, schema) == {
                "person_features": [["pk", "person_id"]],
                "person_segments": [["index", "segment_key"], ["pk", "person_id", "segment_key"]],
            }
            with engine.connect() as pg:  # a person lookup uses the key, not a scan
                pg.exec_driver_sql("SET enable_seqscan = off")
                plan = pg.exec_driver_sql(
                    f'EXPLAIN SELECT * FROM "{schema}".person_segments WHERE person_id = %s',
                    ("p1",),
                ).all()
            assert "Index" in " ".join(row[0] for row in plan)

            # a duplicate key fails the publish before the swap: the served version stays
            con.execute(
                "INSERT INTO marts.person_features SELECT * FROM marts.person_features LIMIT 1"
            )
            with pytest.raises(sa.exc.IntegrityError, match="is duplicated"):
                publish(con, "v2")
        with engine.connect() as pg:
            served = pg.exec_driver_sql(f'SELECT version FROM "{schema}".publish_version')
            assert served.scalar() == "v1"
    finally:
        with engine.begin() as pg:
            pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}__loading_v2" CASCADE')
        engine.dispose()


def test_an_erasure_keeps_the_documentation_of_the_outputs_it_rewrites(tmp_path):
    from serving.erasure import erase_in_serving

    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    expected = expected_comments({**DOCS, "serving.publish_version": PUBLISH_VERSION_DOC})
    with connect(warehouse) as con:
        _publish_documented(con, serving)
        con.execute("CREATE TEMP TABLE _erase_persons AS SELECT 'p1' AS person_id")
        con.execute("CREATE TEMP TABLE _erase_pseudonyms (pseudonym VARCHAR)")
        removed = erase_in_serving(con, serving)

    assert removed["parquet:person_features.parquet"] == 1
    assert removed["parquet:person_segments.parquet"] == 3
    assert duckdb_comments(serving / PUBLISHED_DUCKDB) == expected
    parquet = parquet_comments(serving / PARQUET_DIR / CURRENT)
    assert parquet == {k: v for k, v in expected.items() if not k.startswith("publish_")}


@pytest.mark.postgres
def test_postgres_names_from_the_settings_are_quoted_identifiers_never_pasted_sql(
    tmp_path, postgres_url
):
    """SEGWH_SERVING_POSTGRES_SCHEMA and SEGWH_SERVING_READER_ROLE (and column names) with a
    quote, a double quote and a space: published and granted as named (pasted into SQL, such a
    name broke the statements, or could have injected SQL)."""
    token = uuid.uuid4().hex[:8]
    schema = f'bi "segments" {token}'
    role = f'bi reader\'s "{token}"'
    engine = sa.create_engine(postgres_url)
    try:
        with connect(tmp_path / "warehouse.duckdb") as con:
            con.execute("CREATE SCHEMA marts")
            con.execute(
                """CREATE TABLE marts.person_features AS
                SELECT 'p1' AS person_id, 2 AS "odd ""name"" col" """
            )
            publish_postgres(
                con, ["marts.person_features"], engine, schema, "v1", role, tmp_path / "scratch"
            )
        with engine.connect() as pg:
            quoted = '"' + schema.replace('"', '""') + '"'
            row = pg.exec_driver_sql(
                f'SELECT person_id, "odd ""name"" col" FROM {quoted}.person_features'
            ).one()
            assert tuple(row) == ("p1", 2)
            granted = pg.exec_driver_sql(
                "SELECT has_table_privilege(%s, %s, 'SELECT')",
                (role, f"{quoted}.person_features"),
            ).scalar()
            assert granted
    finally:
        with engine.begin() as pg:
            quoted = '"' + schema.replace('"', '""') + '"'
            pg.exec_driver_sql(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
            if pg.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).first():
                pg.exec_driver_sql(f'DROP ROLE "{role.replace(chr(34), chr(34) * 2)}"')
        engine.dispose()


# --- a publish killed between its steps --------------------------------------------------------


def _publish_steps(con, serving: Path, version: str, *, until: str) -> None:
    """The publish asset's steps in its order, stopping (as a kill would) before ``until``."""
    steps = ["parquet", "journal", "duckdb", "switch", "record"]
    tables = ["marts.sizes"]
    for step in steps[: steps.index(until)]:
        if step == "parquet":
            publish_parquet(con, tables, serving, version, switch=False)
        elif step == "journal":
            result = PublishResult(version, datetime.now(UTC), {"marts.sizes": 1})
            write_journal(
                serving,
                journal_entry(result, run_id="run-" + version, checks_passed=[], outputs={}),
            )
        elif step == "duckdb":
            publish_duckdb(con, tables, serving, version)
        elif step == "switch":
            switch_parquet(serving, version)


def _parquet_version(serving: Path) -> str:
    return (serving / PARQUET_DIR / CURRENT).resolve().name


def test_a_publish_killed_after_its_duckdb_switch_is_finished_and_recorded_by_the_next(tmp_path):
    """Killed between the DuckDB rename and the Parquet switch, a publish left DuckDB at N+1,
    Parquet at N and N+1 missing from serving.publish_log. The journal lets the next publish
    finish it: both outputs at N+1, recorded once."""
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.sizes AS SELECT 1 AS segment")
        _publish_steps(con, serving, "v1", until="record")
        (serving / JOURNAL).unlink()
        _publish_steps(con, serving, "v2", until="switch")  # killed here
        assert (published_duckdb_version(serving), _parquet_version(serving)) == ("v2", "v1")

        finished = recover_interrupted_publish(serving)
        record_finished_publish(con, finished)
        record_finished_publish(con, finished)  # recorded once, however often it is called

        assert (published_duckdb_version(serving), _parquet_version(serving)) == ("v2", "v2")
        logged = con.execute("SELECT version, run_id FROM serving.publish_log").fetchall()
        assert logged == [("v2", "run-v2")]
    assert not (serving / JOURNAL).exists()


@pytest.mark.parametrize("until", ["journal", "duckdb"])
def test_a_publish_killed_before_its_duckdb_switch_is_undone_and_leaves_no_debris(tmp_path, until):
    """Killed before the commit point, the new version never reached a reader: the next publish
    removes its Parquet folder and the temporary DuckDB copy (and its WAL), which hold published
    rows; the previous version stays whole everywhere and retention counts only whole versions."""
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute("CREATE TABLE marts.sizes AS SELECT 1 AS segment")
        _publish_steps(con, serving, "v1", until="record")
        (serving / JOURNAL).unlink()
        _publish_steps(con, serving, "v2", until=until)
    (serving / f".{PUBLISHED_DUCKDB}.v2.tmp").write_bytes(b"half a copy of the published rows")
    (serving / f".{PUBLISHED_DUCKDB}.v2.tmp.wal").write_bytes(b"its WAL")
    (serving / PARQUET_DIR / ".v3.partial").mkdir()  # a Parquet folder half written
    (serving / PARQUET_DIR / f".{CURRENT}.v3.tmp").symlink_to("v3")

    assert recover_interrupted_publish(serving) is None

    assert (published_duckdb_version(serving), _parquet_version(serving)) == ("v1", "v1")
    assert sorted(p.name for p in serving.iterdir()) == [PARQUET_DIR, PUBLISHED_DUCKDB]
    assert sorted(p.name for p in (serving / PARQUET_DIR).iterdir()) == [CURRENT, "v1"]
