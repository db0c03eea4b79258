"""Write-audit-publish: BI-like reader processes query the published DuckDB file, the Parquet
folder and the PostgreSQL schema in a loop while new versions are published; they must see no
errors, no lock failures and never a mix of two versions."""

import json
import multiprocessing
import os
import shutil
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from orchestration.publish import (
    CURRENT,
    PARQUET_DIR,
    PUBLISHED_DUCKDB,
    PublishResult,
    new_version,
    publish_duckdb,
    publish_parquet,
    publish_postgres,
    record_publish,
    unpublished_changes,
)
from orchestration.warehouse import connect

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


@pytest.mark.postgres
def test_readers_never_see_errors_locks_or_mixed_versions(tmp_path, postgres_url):
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    schema = f"segments_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(postgres_url)

    def publish(index: int) -> None:
        version = new_version()
        _build_version(warehouse, version, index)
        with connect(warehouse) as con:
            publish_duckdb(con, TABLES, serving, version)
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
    from orchestration.publish import _with_exclusive_locks

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


# --- partitioned tables: a publish rewrites only the partitions that changed -------------------

PARTITIONED = ["marts.person_segments", "marts.sessions"]  # marts.sessions: by session_date
FIRST_DAY = date(2026, 10, 1)


def _day(n: int) -> date:
    return FIRST_DAY + timedelta(days=n)


def _partitioned_warehouse(warehouse: Path) -> None:
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA marts")
        con.execute(
            "CREATE TABLE marts.sessions AS SELECT 'session-' || i AS session_id, "
            "? + (i % 10)::INTEGER AS session_date, i % 3 AS events FROM range(100) t(i)",
            [FIRST_DAY],
        )
        con.execute("CREATE TABLE marts.person_segments AS SELECT 1 AS person_id")


def _change(warehouse: Path, sql: str, logged: list[date | None]) -> None:
    """Change the sessions as a dbt run does: the change and its log in one transaction."""
    with connect(warehouse) as con:
        con.execute("BEGIN")
        con.execute(sql)
        con.executemany(
            "INSERT INTO serving.unpublished_partitions VALUES ('marts.sessions', ?)",
            [[day] for day in logged],
        )
        con.execute("COMMIT")


def _publish_partitioned(warehouse: Path, serving: Path, *, record: bool = True):
    """One publish of the DuckDB and Parquet outputs, as the serving asset does."""
    with connect(warehouse) as con:
        changes = unpublished_changes(con)
        version = new_version()
        counts = publish_duckdb(con, PARTITIONED, serving, version, changes)
        publish_parquet(con, PARTITIONED, serving, version, changes)
        if record:
            result = PublishResult(version, datetime.now(UTC), counts)
            record_publish(con, result, run_id="test", checks_passed=[], outputs={})
    return changes


def _published_differences(warehouse: Path, serving: Path) -> dict[str, int]:
    """Rows that differ between the warehouse and each output, per table."""
    current = serving / PARQUET_DIR / CURRENT
    outputs = {
        "duckdb": lambda name: f"published.main.{name}",
        "parquet": lambda name: (
            f"'{current}/sessions/*.parquet'"
            if name == "sessions"
            else f"'{current}/{name}.parquet'"
        ),
    }
    differences = {}
    with connect(warehouse, read_only=True) as con:
        con.execute(f"ATTACH '{serving / PUBLISHED_DUCKDB}' AS published (READ_ONLY)")
        for output, relation in outputs.items():
            for table in PARTITIONED:
                name = table.split(".")[1]
                differences[f"{output}:{name}"] = con.execute(
                    f"SELECT count(*) FROM ((FROM {table} EXCEPT ALL FROM {relation(name)}) "
                    f"UNION ALL (FROM {relation(name)} EXCEPT ALL FROM {table}))"
                ).fetchone()[0]
    return differences


def _session_files(serving: Path) -> dict[str, int]:
    """Parquet file of each session date in the current version -> its inode."""
    folder = serving / PARQUET_DIR / CURRENT / "sessions"
    return {path.name: path.stat().st_ino for path in folder.glob("*.parquet")}


def test_a_publish_rewrites_only_the_partitions_logged_as_changed(tmp_path):
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    _partitioned_warehouse(warehouse)

    assert _publish_partitioned(warehouse, serving) is None  # no log yet: everything
    assert set(_session_files(serving)) == {f"{_day(n)}.parquet" for n in range(10)}
    first = _session_files(serving)
    changes = _publish_partitioned(warehouse, serving)  # nothing changed since
    assert changes is not None and changes.changed("marts.sessions") == frozenset()
    assert _session_files(serving) == first  # the same files, hard-linked

    # one date's sessions change, one date's go, a new date comes
    _change(
        warehouse,
        f"UPDATE marts.sessions SET events = events + 1 WHERE session_date = '{_day(3)}'; "
        f"DELETE FROM marts.sessions WHERE session_date = '{_day(5)}'; "
        f"INSERT INTO marts.sessions VALUES ('session-new', '{_day(10)}', 7)",
        [_day(3), _day(5), _day(10)],
    )
    changes = _publish_partitioned(warehouse, serving)
    assert changes.changed("marts.sessions") == {_day(3), _day(5), _day(10)}
    after = _session_files(serving)
    assert set(after) == set(first) - {f"{_day(5)}.parquet"} | {f"{_day(10)}.parquet"}
    kept = set(first) - {f"{_day(3)}.parquet", f"{_day(5)}.parquet"}
    assert {name: after[name] for name in kept} == {name: first[name] for name in kept}
    assert after[f"{_day(3)}.parquet"] != first[f"{_day(3)}.parquet"]
    assert set(_published_differences(warehouse, serving).values()) == {0}
    with connect(warehouse, read_only=True) as con:  # the publish emptied the log
        assert con.execute("SELECT count(*) FROM serving.unpublished_partitions").fetchone() == (0,)

    # a whole-table rebuild (logged as null) rewrites every date
    _change(warehouse, "UPDATE marts.sessions SET events = 0", [None])
    assert _publish_partitioned(warehouse, serving).changed("marts.sessions") is None
    assert not set(_session_files(serving).values()) & set(after.values())
    assert set(_published_differences(warehouse, serving).values()) == {0}


def test_a_publish_writes_a_table_whole_when_an_output_holds_another_version(tmp_path):
    """Outputs restored to an older version (a backup put back, say) miss changes the log no
    longer holds: they are written whole. So is a table whose schema changed."""
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    _partitioned_warehouse(warehouse)
    _publish_partitioned(warehouse, serving)
    _publish_partitioned(warehouse, serving)  # the log exists from here on
    backup = tmp_path / "backup.duckdb"
    shutil.copyfile(serving / PUBLISHED_DUCKDB, backup)
    older = (serving / PARQUET_DIR / CURRENT).resolve()

    _change(warehouse, f"DELETE FROM marts.sessions WHERE session_date = '{_day(1)}'", [_day(1)])
    _publish_partitioned(warehouse, serving)
    shutil.copyfile(backup, serving / PUBLISHED_DUCKDB)  # both outputs back at the older version
    (serving / PARQUET_DIR / CURRENT).unlink()
    (serving / PARQUET_DIR / CURRENT).symlink_to(older.name, target_is_directory=True)
    _change(
        warehouse,
        f"UPDATE marts.sessions SET events = 9 WHERE session_date = '{_day(2)}'",
        [_day(2)],
    )
    _publish_partitioned(warehouse, serving)
    assert set(_published_differences(warehouse, serving).values()) == {0}

    with connect(warehouse) as con:  # a new column, no partition logged
        con.execute("ALTER TABLE marts.sessions ADD COLUMN channel VARCHAR DEFAULT 'web'")
    _publish_partitioned(warehouse, serving)
    assert set(_published_differences(warehouse, serving).values()) == {0}
