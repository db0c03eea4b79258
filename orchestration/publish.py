"""Publishing the BI-facing tables: write, then swap atomically, so readers never see a mix.

The working warehouse is never opened by BI tools. A publish copies the published tables into
serving outputs that readers use instead:

- a DuckDB file, ``<serving>/segments.duckdb``: written under a temporary name, then renamed over
  the previous file (``os.replace`` is atomic on POSIX). A reader that opened the old file keeps
  reading it; the next open sees the new one. The publisher never opens the published file, so
  readers never meet a lock.
- Parquet files, ``<serving>/parquet/<version>/<schema>__<table>.parquet``; the ``current``
  symlink is switched atomically to the new version folder. Readers resolve ``current`` once per
  query (``os.path.realpath``) to read one version throughout.

Every output carries the version in a ``publish_version`` table (DuckDB file) or a
``_manifest.json`` (Parquet folder).

Large tables that incremental runs change only in part (``PARTITIONED_TABLES``: sessions, by
session_date) are published by partition, so a sensor run publishes in proportion to what it
changed, not to the whole history. Their models log every partition they change in
``serving.unpublished_partitions`` (dbt macro ``log_unpublished_partitions``). When an output
still holds the last published version, the publish starts from it: the DuckDB file is copied
(a plain file copy) and only the changed partitions' rows are replaced; the Parquet folder of such
a table holds one file per partition value (``<table>/<value>.parquet``), the unchanged ones are
hard links to the previous version's files (never modified in place), the changed ones are
written anew. Any doubt (no previous output, another version in it, no log yet, a whole-table
rebuild, a changed schema) and the table is written whole.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa

log = logging.getLogger(__name__)

PUBLISHED_DUCKDB = "segments.duckdb"
PARQUET_DIR = "parquet"
CURRENT = "current"
KEEP_PARQUET_VERSIONS = 3
SWAP_LOCK_TIMEOUT_SECONDS = 120.0  # how long a PostgreSQL swap waits for busy readers
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE raised by LOCK ... NOWAIT

# table -> its date partition column; its model logs the partitions it changes (see above)
PARTITIONED_TABLES = {"marts.sessions": "session_date"}
# written by the dbt macro log_unpublished_partitions (macros/unpublished_partitions.sql)
UNPUBLISHED_PARTITIONS_DDL = """
CREATE SCHEMA IF NOT EXISTS serving;
CREATE TABLE IF NOT EXISTS serving.unpublished_partitions (
    table_name VARCHAR NOT NULL,   -- "marts.sessions"
    partition_value DATE           -- null: the whole table was rebuilt
);
"""

PUBLISH_LOG_DDL = """
CREATE SCHEMA IF NOT EXISTS serving;
CREATE TABLE IF NOT EXISTS serving.publish_log (
    version VARCHAR NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    run_id VARCHAR,
    tables JSON NOT NULL,          -- {"marts.x": rows, ...}
    checks_passed JSON NOT NULL,   -- ["asset:check", ...]
    outputs JSON NOT NULL          -- {"duckdb": path, "parquet": path, "postgres": schema}
);
"""


@dataclass(frozen=True)
class PublishResult:
    version: str
    published_at: datetime
    row_counts: dict[str, int]


@dataclass(frozen=True)
class UnpublishedChanges:
    """What changed in the partitioned tables since the published version ``since``: per
    table, the changed partition values, or None when the whole table may have changed."""

    since: str
    partitions: dict[str, frozenset[date] | None] = field(default_factory=dict)

    def changed(self, table: str) -> frozenset[date] | None:
        return self.partitions.get(table, frozenset())


def partitions_to_rewrite(changes: UnpublishedChanges | None) -> dict[str, int | str]:
    """Per partitioned table, how many partitions a publish on top of the last version
    rewrites, or "all"."""
    planned = {
        table: None if changes is None else changes.changed(table) for table in PARTITIONED_TABLES
    }
    return {table: "all" if changed is None else len(changed) for table, changed in planned.items()}


def unpublished_changes(con: duckdb.DuckDBPyConnection) -> UnpublishedChanges | None:
    """The changes logged since the last publish, or None when they are not known: nothing
    published yet, or no log (the publish that creates it writes everything)."""
    logged = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'serving' AND table_name IN ('publish_log', 'unpublished_partitions')"
    ).fetchone()[0]
    if logged < 2:
        return None
    last = con.execute(
        "SELECT version FROM serving.publish_log ORDER BY published_at DESC, version DESC LIMIT 1"
    ).fetchone()
    if last is None:
        return None
    partitions = {
        table: None if whole else frozenset(values)
        for table, values, whole in con.execute(
            "SELECT table_name, list(DISTINCT partition_value) FILTER (partition_value IS NOT "
            "NULL), bool_or(partition_value IS NULL) FROM serving.unpublished_partitions "
            "GROUP BY table_name"
        ).fetchall()
    }
    return UnpublishedChanges(last[0], partitions)


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique-enough version id: UTC time to the microsecond."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def published_name(table: str) -> str:
    """``marts.segment_membership`` -> ``segment_membership`` in the outputs' flat namespace."""
    return table.split(".", 1)[-1]


def publish_duckdb(
    con: duckdb.DuckDBPyConnection,
    tables: list[str],
    serving_dir: Path,
    version: str,
    changes: UnpublishedChanges | None = None,
) -> dict[str, int]:
    """Write ``tables`` into a new DuckDB file and swap it in atomically; return row counts.

    With ``changes`` and a published file of version ``changes.since``, the new file starts as
    a copy of it and the partitioned tables get only their changed partitions replaced."""
    serving_dir.mkdir(parents=True, exist_ok=True)
    target = serving_dir / PUBLISHED_DUCKDB
    temporary = serving_dir / f".{PUBLISHED_DUCKDB}.{version}.tmp"
    temporary.unlink(missing_ok=True)
    if changes is not None and target.exists():
        shutil.copyfile(target, temporary)  # readers keep the original; this copy is ours
    counts: dict[str, int] = {}
    con.execute(f"ATTACH '{temporary}' AS publishing")
    try:
        previous = _published_schemas(con, "publishing", changes)
        for table in tables:
            name = published_name(table)
            target_table = f'publishing.main."{name}"'
            changed = _changed_partitions(con, table, previous.get(name), changes)
            if changed is None:
                con.execute(f"CREATE OR REPLACE TABLE {target_table} AS SELECT * FROM {table}")
            elif changed:
                in_changed = f"{PARTITIONED_TABLES[table]} IN (SELECT unnest(?::DATE[]))"
                con.execute(f"DELETE FROM {target_table} WHERE {in_changed}", [list(changed)])
                con.execute(
                    f"INSERT INTO {target_table} SELECT * FROM {table} WHERE {in_changed}",
                    [list(changed)],
                )
            counts[table] = con.execute(f"SELECT count(*) FROM {target_table}").fetchone()[0]
        for gone in set(previous) - {published_name(t) for t in tables}:
            con.execute(f'DROP TABLE publishing.main."{gone}"')
        con.execute(
            "CREATE OR REPLACE TABLE publishing.main.publish_version AS "
            "SELECT ?::VARCHAR AS version, now() AS published_at",
            [version],
        )
    finally:
        con.execute("DETACH publishing")
    os.replace(temporary, target)
    return counts


def _published_schemas(
    con: duckdb.DuckDBPyConnection, database: str, changes: UnpublishedChanges | None
) -> dict[str, list[tuple[str, str]]]:
    """Table -> [(column, type)] of a published DuckDB file attached as ``database``, when it
    holds version ``changes.since``; otherwise its tables are dropped and {} returned."""
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main'",
        [database],
    ).fetchall()
    names = {name for (name,) in tables} - {"publish_version"}
    held = None
    if "publish_version" in {name for (name,) in tables}:
        held = con.execute(f"SELECT max(version) FROM {database}.main.publish_version").fetchone()[
            0
        ]
    if changes is None or held != changes.since:
        for name in names:
            con.execute(f'DROP TABLE {database}.main."{name}"')
        return {}
    return {name: _columns(con, f'{database}.main."{name}"') for name in names}


def _changed_partitions(
    con: duckdb.DuckDBPyConnection,
    table: str,
    published_columns: list[tuple[str, str]] | None,
    changes: UnpublishedChanges | None,
) -> frozenset[date] | None:
    """The partitions of ``table`` to rewrite on top of its published version holding
    ``published_columns``; None: write it whole."""
    if changes is None or table not in PARTITIONED_TABLES or published_columns is None:
        return None
    return changes.changed(table) if _columns(con, table) == published_columns else None


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [tuple(c[:2]) for c in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def publish_parquet(
    con: duckdb.DuckDBPyConnection,
    tables: list[str],
    serving_dir: Path,
    version: str,
    changes: UnpublishedChanges | None = None,
) -> Path:
    """Write ``tables`` as Parquet into a new version folder and point ``current`` at it.

    A partitioned table is a folder of one file per partition value. With ``changes`` and a
    current version ``changes.since``, its unchanged partitions are hard links to the current
    version's files and only the changed ones are written."""
    root = serving_dir / PARQUET_DIR
    folder = root / version
    folder.mkdir(parents=True, exist_ok=False)
    previous = _current_parquet_version(root, changes)
    for table in tables:
        name = published_name(table)
        if table in PARTITIONED_TABLES:
            base = previous / name if previous is not None else None
            changed = None
            if base is not None and any(base.glob("*.parquet")):
                published_columns = _columns(con, f"'{base}/*.parquet'")
                changed = _changed_partitions(con, table, published_columns, changes)
            _write_partitions(con, table, folder / name, base, changed)
            continue
        con.execute(
            f"COPY (SELECT * FROM {table}) TO '{folder / (name + '.parquet')}' (FORMAT parquet)"
        )
    (folder / "_manifest.json").write_text(
        json.dumps({"version": version, "tables": [published_name(t) for t in tables]})
    )
    link = root / f".{CURRENT}.{version}.tmp"
    link.symlink_to(version, target_is_directory=True)
    os.replace(link, root / CURRENT)  # atomic switch of the symlink
    _prune_old_versions(root, keep=KEEP_PARQUET_VERSIONS)
    return root / CURRENT


def _current_parquet_version(root: Path, changes: UnpublishedChanges | None) -> Path | None:
    """The current version folder, when it holds version ``changes.since``."""
    manifest = root / CURRENT / "_manifest.json"
    if changes is None or not manifest.exists():
        return None
    held = json.loads(manifest.read_text()).get("version")
    return (root / CURRENT).resolve() if held == changes.since else None


def _write_partitions(
    con: duckdb.DuckDBPyConnection,
    table: str,
    target: Path,
    base: Path | None,
    changed: frozenset[date] | None,
) -> None:
    """``table`` as ``target/<partition value>.parquet`` (``.<n>.parquet`` if DuckDB splits
    one): every partition (``changed`` None), or hard links to ``base`` for the partitions not
    in ``changed`` and new files for those in it."""
    column = PARTITIONED_TABLES[table]
    target.mkdir()
    where, parameters = "true", []
    if changed is not None:
        rewritten = {value.isoformat() for value in changed}
        for path in base.glob("*.parquet"):
            if path.name.split(".")[0] not in rewritten:
                os.link(path, target / path.name)
        if not changed:
            return
        where, parameters = f"{column} IN (SELECT unnest(?::DATE[]))", [list(changed)]
    scratch = target.parent / f".{target.name}.partitions"
    con.execute(
        f"COPY (SELECT * FROM {table} WHERE {where}) TO '{scratch}' "
        f"(FORMAT parquet, PARTITION_BY ({column}), WRITE_PARTITION_COLUMNS true)",
        parameters,
    )
    if not scratch.exists():  # no rows
        return
    for partition in scratch.iterdir():  # <column>=<value>/data_<n>.parquet
        value = partition.name.split("=", 1)[1]
        files = sorted(partition.iterdir())
        for n, path in enumerate(files):
            path.rename(
                target / (f"{value}.parquet" if len(files) == 1 else f"{value}.{n}.parquet")
            )
    shutil.rmtree(scratch)


def _prune_old_versions(root: Path, keep: int) -> None:
    versions = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    current = (root / CURRENT).resolve()
    for old in versions[:-keep]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)


def record_publish(
    con: duckdb.DuckDBPyConnection,
    result: PublishResult,
    *,
    run_id: str,
    checks_passed: list[str],
    outputs: dict[str, str],
) -> None:
    """Log the publish and empty the log of unpublished partitions, in one transaction."""
    con.execute(PUBLISH_LOG_DDL + UNPUBLISHED_PARTITIONS_DDL)
    con.begin()
    try:
        con.execute("DELETE FROM serving.unpublished_partitions")
        con.execute(
            "INSERT INTO serving.publish_log VALUES (?, ?, ?, ?, ?, ?)",
            [
                result.version,
                result.published_at,
                run_id,
                json.dumps(result.row_counts),
                json.dumps(sorted(checks_passed)),
                json.dumps(outputs),
            ],
        )
    except BaseException:
        con.rollback()
        raise
    con.commit()


# DuckDB type -> PostgreSQL type; anything else (lists, structs, maps) is published as jsonb text.
_PG_TYPES = {
    "VARCHAR": "text",
    "BOOLEAN": "boolean",
    "TINYINT": "smallint",
    "SMALLINT": "smallint",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "HUGEINT": "numeric",
    "UBIGINT": "numeric",
    "FLOAT": "real",
    "DOUBLE": "double precision",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
    "JSON": "jsonb",
    "UUID": "uuid",
}


def _pg_type(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL"):
        return duckdb_type.replace("DECIMAL", "numeric")
    return _PG_TYPES.get(duckdb_type, "jsonb")


def publish_postgres(
    con: duckdb.DuckDBPyConnection,
    tables: list[str],
    engine: sa.Engine,
    schema: str,
    version: str,
    reader_role: str,
    scratch_dir: Path,
) -> None:
    """Load ``tables`` into a new PostgreSQL schema, then swap it in under ``schema`` in one
    transaction, granting read access to ``reader_role`` (created if missing, NOLOGIN: grant it
    to the BI users). The swap first takes ACCESS EXCLUSIVE locks on the tables it replaces, so
    running reader transactions finish first and readers see the old or the new version whole.
    """
    loading = f"{schema}__loading_{version.lower()}"
    retired = f"{schema}__retired"
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with engine.begin() as pg:
        pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{loading}" CASCADE')
        pg.exec_driver_sql(f'CREATE SCHEMA "{loading}"')
        for table in [*tables, None]:
            if table is None:  # the version marker
                pg.exec_driver_sql(
                    f'CREATE TABLE "{loading}".publish_version AS '
                    "SELECT %s::text AS version, now() AS published_at",
                    (version,),
                )
                continue
            name = published_name(table)
            described = con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
            columns = ", ".join(f'"{c[0]}" {_pg_type(c[1])}' for c in described)
            pg.exec_driver_sql(f'CREATE TABLE "{loading}"."{name}" ({columns})')
            csv_path = scratch_dir / f"{name}.{version}.csv"
            casts = ", ".join(
                f'"{c[0]}"'
                if _pg_type(c[1]) != "jsonb" or c[1] == "JSON"
                else f'to_json("{c[0]}") AS "{c[0]}"'
                for c in described
            )
            con.execute(
                f"COPY (SELECT {casts} FROM {table}) TO '{csv_path}' (FORMAT csv, HEADER false)"
            )
            try:
                cursor = pg.connection.dbapi_connection.cursor()
                with csv_path.open() as handle:
                    cursor.copy_expert(
                        f'COPY "{loading}"."{name}" FROM STDIN WITH (FORMAT csv)', handle
                    )
            finally:
                csv_path.unlink(missing_ok=True)
    _with_exclusive_locks(
        engine, schema, lambda pg: _swap_schema(pg, schema, loading, retired, reader_role)
    )
    _with_exclusive_locks(
        engine,
        retired,
        lambda pg: pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{retired}" CASCADE'),
    )


def _with_exclusive_locks(engine: sa.Engine, schema: str, swap, timeout: float | None = None):
    """Run ``swap(pg)`` in a transaction that first holds ACCESS EXCLUSIVE locks on every table
    of ``schema``.

    The locks are taken all at once with NOWAIT, and the transaction is retried after a short
    pause when any is busy. Waiting for them one by one instead (a plain ``LOCK TABLE a, b``)
    deadlocks with a reader whose single query opens the same tables in another order: the
    reader holds ``b`` and waits for ``a``, the publisher holds ``a`` and waits for ``b``, and
    PostgreSQL aborts one of them, possibly the BI reader. Holding nothing while waiting, the
    publisher can never be part of such a cycle.
    """
    limit = SWAP_LOCK_TIMEOUT_SECONDS if timeout is None else timeout
    deadline = time.monotonic() + limit
    pause = 0.02
    while True:
        try:
            with engine.begin() as pg:
                tables = (
                    pg.exec_driver_sql(
                        "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
                    )
                    .scalars()
                    .all()
                )
                if tables:
                    names = ", ".join(f'"{schema}"."{t}"' for t in tables)
                    pg.exec_driver_sql(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE NOWAIT")
                return swap(pg)
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "pgcode", None) != _LOCK_NOT_AVAILABLE:
                raise
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"PostgreSQL publish: readers kept the tables of schema {schema!r} "
                    f"busy for more than {limit:.0f} s; "
                    "the new version is loaded but not swapped in"
                ) from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def _swap_schema(pg, schema: str, loading: str, retired: str, reader_role: str) -> None:
    exists = pg.exec_driver_sql(
        "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
    ).first()
    if exists:
        pg.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{retired}" CASCADE')
        pg.exec_driver_sql(f'ALTER SCHEMA "{schema}" RENAME TO "{retired}"')
    pg.exec_driver_sql(f'ALTER SCHEMA "{loading}" RENAME TO "{schema}"')
    pg.exec_driver_sql(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
        f"'{reader_role}') THEN CREATE ROLE \"{reader_role}\" NOLOGIN; END IF; END $$"
    )
    pg.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{reader_role}"')
    pg.exec_driver_sql(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{reader_role}"')
