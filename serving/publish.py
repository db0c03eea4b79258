"""Publishing the BI-facing tables: write, then swap atomically, so readers never see a mix.

The working warehouse is never opened by BI tools. A publish copies the published tables into
serving outputs that readers use instead:

- a DuckDB file, ``<serving>/segments.duckdb``: written under a temporary name, then renamed over
  the previous file (``os.replace`` is atomic on POSIX). A reader that opened the old file keeps
  reading it; the next open sees the new one. The publisher never opens the published file, so
  readers never meet a lock. The temporary file is either written whole or, for runs that change
  few rows (the landing sensor's), a copy of the published file patched with the rows that
  changed (``patch_table``): only the changed rows are written, though finding them still reads
  every published table.
- Parquet files, ``<serving>/parquet/<version>/<schema>__<table>.parquet``; the ``current``
  symlink is switched atomically to the new version folder. Readers resolve ``current`` once per
  query (``os.path.realpath``) to read one version throughout.

Every output carries the version in a ``publish_version`` table (DuckDB file) or a
``_manifest.json`` (Parquet folder).

Every output is documented from ``documentation`` (``serving.catalog.TableDoc`` per table): table
and column comments in the DuckDB file and in PostgreSQL, key-value metadata in each Parquet file
(``description``: the table's, ``column_descriptions``: a JSON object column -> description).
PostgreSQL tables also get the primary keys and indexes of the published list
(``serving/published_tables.toml``), created in the loading schema before the swap.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa

from serving.catalog import ColumnDoc, PublishedTable, TableDoc

log = logging.getLogger(__name__)

PUBLISHED_DUCKDB = "segments.duckdb"
PARQUET_DIR = "parquet"
CURRENT = "current"
KEEP_PARQUET_VERSIONS = 3
SWAP_LOCK_TIMEOUT_SECONDS = 120.0  # how long a PostgreSQL swap waits for busy readers
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE raised by LOCK ... NOWAIT
PARQUET_DESCRIPTION_KEY = "description"
PARQUET_COLUMN_DESCRIPTIONS_KEY = "column_descriptions"  # a JSON object: column -> description
_PG_MAX_IDENTIFIER = 63

PUBLISH_VERSION = "publish_version"
PUBLISH_VERSION_DOC = TableDoc(
    "The version of the published tables: one row, swapped in together with them, so a reader "
    "can tell which publish it reads (compare it with the version of the Parquet files' "
    "_manifest.json or of another output).",
    (
        ColumnDoc("version", "VARCHAR", "Version id of this publish: its UTC time, sortable."),
        ColumnDoc("published_at", "TIMESTAMP WITH TIME ZONE", "When the tables were published."),
    ),
)

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


def new_version(now: datetime | None = None) -> str:
    """A sortable, unique-enough version id: UTC time to the microsecond."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def published_name(table: str) -> str:
    """``marts.segment_membership`` -> ``segment_membership`` in the outputs' flat namespace."""
    return table.split(".", 1)[-1]


@dataclass(frozen=True)
class PublishedRows:
    rows: int
    rows_written: int  # rows a patch deleted plus rows it inserted; every row of a whole write
    patched: bool


def publish_duckdb(
    con: duckdb.DuckDBPyConnection,
    tables: list[str],
    serving_dir: Path,
    version: str,
    *,
    patch: bool = False,
    storage_version: str = "",
    documentation: Mapping[str, TableDoc] | None = None,
) -> dict[str, PublishedRows]:
    """Copy ``tables`` into a new DuckDB file and swap it in atomically.

    ``storage_version`` (e.g. ``v1.4.0``) writes a new file in that DuckDB storage version, so
    that older clients (DuckDB 1.x, the drivers of most BI tools) can open it; empty: this
    DuckDB's own. A patched file keeps the version of the published file it copies.

    With ``patch``, the new file starts as a copy of the published one and each table is patched
    with its changed rows (``patch_table``); a table that is new, has other columns or changed
    for the most part is written whole, and tables no longer published are dropped. Deleted rows
    leave some free space behind, so a run that writes whole (the nightly) also compacts the file.
    Every table and column gets the comment of ``documentation`` (none where it has none), in a
    patched file too.
    """
    docs = documentation or {}
    serving_dir.mkdir(parents=True, exist_ok=True)
    target = serving_dir / PUBLISHED_DUCKDB
    temporary = serving_dir / f".{PUBLISHED_DUCKDB}.{version}.tmp"
    temporary.unlink(missing_ok=True)
    patching = patch and target.exists()
    published: dict[str, PublishedRows] = {}
    try:
        if patching:
            shutil.copyfile(target, temporary)
        options = (
            f" (STORAGE_VERSION {_sql_literal(storage_version)})"
            if storage_version and not patching
            else ""
        )
        con.execute(f"ATTACH '{temporary}' AS publishing{options}")
        try:
            if patching:
                wanted = {published_name(table) for table in tables}
                for (name,) in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'publishing'"
                ).fetchall():
                    if name not in wanted:  # publish_version, and tables no longer published
                        con.execute(f"DROP TABLE publishing.main.{_quoted(name)}")
            for table in tables:
                copy = f"publishing.main.{_quoted(published_name(table))}"
                rows_written = patch_table(con, table, copy) if patching else None
                if rows_written is None:
                    con.execute(f"CREATE OR REPLACE TABLE {copy} AS SELECT * FROM {table}")
                _in_one_transaction(con, _duckdb_comments(con, copy, docs.get(table)))
                rows = con.execute(f"SELECT count(*) FROM {copy}").fetchone()[0]
                published[table] = PublishedRows(
                    rows=rows,
                    rows_written=rows if rows_written is None else rows_written,
                    patched=rows_written is not None,
                )
            con.execute(
                f"CREATE TABLE publishing.main.{PUBLISH_VERSION} AS "
                "SELECT ?::VARCHAR AS version, now() AS published_at",
                [version],
            )
            _in_one_transaction(
                con,
                _duckdb_comments(con, f"publishing.main.{PUBLISH_VERSION}", PUBLISH_VERSION_DOC),
            )
        finally:
            con.execute("DETACH publishing")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)  # a failed publish leaves no half-written copy behind
    return published


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quoted(identifier: str) -> str:
    """A double-quoted SQL identifier (DuckDB and PostgreSQL)."""
    return '"' + identifier.replace('"', '""') + '"'


def _comment(text: str | None) -> str:
    return _sql_literal(text) if text and text.strip() else "NULL"


def _in_one_transaction(con: duckdb.DuckDBPyConnection, script: str) -> None:
    """Run ``script`` in one transaction: a COMMENT ON committed on its own costs a few
    milliseconds (the quick start's ~230 comments: ~0.5 s), all at once about a tenth."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(script)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _duckdb_comments(con: duckdb.DuckDBPyConnection, relation: str, doc: TableDoc | None) -> str:
    """One script setting the comment of ``relation`` and of each of its columns from ``doc``
    (NULL where undocumented, so a patched file keeps no stale comment)."""
    described = doc.column_descriptions() if doc else {}
    statements = [f"COMMENT ON TABLE {relation} IS {_comment(doc.description if doc else None)}"]
    statements += [
        f"COMMENT ON COLUMN {relation}.{_quoted(name)} IS {_comment(described.get(name))}"
        for name, _ in _columns(con, relation)
    ]
    return ";\n".join(statements)


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    return [(c[0], c[1]) for c in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def _hashed_rows(table: str) -> str:
    """Each row's ``rowid`` and the hash of all its columns (no alias: a column of the same name
    would shadow a table alias used as the row)."""
    return f"SELECT rowid, hash(*COLUMNS(*)) AS row_hash FROM {table}"


def patch_table(
    con: duckdb.DuckDBPyConnection, source: str, copy: str, *, max_changed_share: float = 0.5
) -> int | None:
    """Make ``copy`` hold the same rows as ``source`` by deleting and inserting only the rows that
    differ; return the number of rows deleted plus inserted, or None (nothing done) when ``copy``
    is missing, has other columns, or more than ``max_changed_share`` of its rows would change
    (writing it whole is cheaper then).

    Rows are compared by their 64-bit row hash with multiplicity: every hash whose number of
    rows differs between the two is deleted from ``copy`` and inserted again from ``source``, so
    duplicate rows and rows with NULLs are handled too. A changed row goes unnoticed only if its
    new hash equals that of another row of the table (odds about rows / 2**64 per changed row);
    such a row would stay until the next whole write.
    """
    try:
        published_columns = _columns(con, copy)
    except duckdb.CatalogException:  # not published yet
        return None
    if published_columns != _columns(con, source):
        return None
    con.execute(
        "CREATE OR REPLACE TEMP TABLE publish_changed_hashes AS "
        "WITH published AS ("
        f"  SELECT row_hash, count(*) AS copies FROM ({_hashed_rows(copy)}) GROUP BY ALL), "
        "current AS ("
        f"  SELECT row_hash, count(*) AS copies FROM ({_hashed_rows(source)}) GROUP BY ALL) "
        "SELECT coalesce(published.row_hash, current.row_hash) AS row_hash, "
        "  coalesce(published.copies, 0) AS published_copies, "
        "  coalesce(current.copies, 0) AS current_copies "
        "FROM published FULL OUTER JOIN current ON published.row_hash = current.row_hash "
        "WHERE published.copies IS DISTINCT FROM current.copies"
    )
    try:
        to_delete, to_insert, rows = con.execute(
            "SELECT coalesce(sum(published_copies), 0), coalesce(sum(current_copies), 0), "
            f"(SELECT count(*) FROM {copy}) FROM publish_changed_hashes"
        ).fetchone()
        if to_delete + to_insert > max_changed_share * max(rows, 1):
            return None
        changed = "SELECT row_hash FROM publish_changed_hashes"
        if to_delete:
            con.execute(
                f"DELETE FROM {copy} WHERE rowid IN "
                f"(SELECT rowid FROM ({_hashed_rows(copy)}) WHERE row_hash IN ({changed}))"
            )
        if to_insert:
            con.execute(
                f"INSERT INTO {copy} SELECT * FROM {source} WHERE rowid IN "
                f"(SELECT rowid FROM ({_hashed_rows(source)}) WHERE row_hash IN ({changed}))"
            )
        return int(to_delete + to_insert)
    finally:
        con.execute("DROP TABLE publish_changed_hashes")


def parquet_kv_metadata(doc: TableDoc | None) -> dict[str, str]:
    """The key-value metadata of a published Parquet file documented by ``doc``."""
    if doc is None:
        return {}
    return {
        PARQUET_DESCRIPTION_KEY: doc.description,
        PARQUET_COLUMN_DESCRIPTIONS_KEY: json.dumps(doc.column_descriptions(), ensure_ascii=False),
    }


def parquet_copy_options(kv_metadata: Mapping[str, str]) -> str:
    """``FORMAT parquet`` and, if any, the ``KV_METADATA`` option of a DuckDB ``COPY``."""
    if not kv_metadata:
        return "FORMAT parquet"
    pairs = ", ".join(f"{_sql_literal(k)}: {_sql_literal(v)}" for k, v in kv_metadata.items())
    return f"FORMAT parquet, KV_METADATA {{{pairs}}}"


def publish_parquet(
    con: duckdb.DuckDBPyConnection,
    tables: list[str],
    serving_dir: Path,
    version: str,
    *,
    documentation: Mapping[str, TableDoc] | None = None,
    switch: bool = True,
) -> Path:
    """Write ``tables`` as Parquet into a new version folder and point ``current`` at it (or
    later, with ``switch_parquet``, when ``switch`` is false); each file carries its table's
    documentation as key-value metadata. The folder is written under a hidden name and renamed
    when complete: a version folder is always whole."""
    docs = documentation or {}
    root = serving_dir / PARQUET_DIR
    partial = root / f".{version}.partial"
    partial.mkdir(parents=True, exist_ok=False)
    folder = partial
    for table in tables:
        options = parquet_copy_options(parquet_kv_metadata(docs.get(table)))
        con.execute(
            f"COPY (SELECT * FROM {table}) TO '{folder / (published_name(table) + '.parquet')}' "
            f"({options})"
        )
    (folder / "_manifest.json").write_text(
        json.dumps({"version": version, "tables": [published_name(t) for t in tables]})
    )
    os.replace(partial, root / version)
    if switch:
        switch_parquet(serving_dir, version)
    return root / CURRENT


def switch_parquet(serving_dir: Path, version: str) -> None:
    """Point ``current`` at a complete version folder (atomically), then prune old versions."""
    root = serving_dir / PARQUET_DIR
    link = root / f".{CURRENT}.{version}.tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(version, target_is_directory=True)
    os.replace(link, root / CURRENT)  # atomic switch of the symlink
    _prune_old_versions(root, keep=KEEP_PARQUET_VERSIONS)


def _complete_versions(root: Path) -> list[Path]:
    """Version folders written whole (renamed into place with their manifest), oldest first."""
    return sorted(
        p
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        if (p / "_manifest.json").is_file()
    )


def _prune_old_versions(root: Path, keep: int) -> None:
    current = (root / CURRENT).resolve()
    for old in _complete_versions(root)[:-keep]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)


# The publish journal: written once the new version is prepared everywhere and removed once it is
# switched in and recorded. A publish killed in between is finished (or undone) by the next one.
JOURNAL = ".publish-journal.json"


def write_journal(serving_dir: Path, entry: Mapping) -> None:
    temporary = serving_dir / f"{JOURNAL}.tmp"
    temporary.write_text(json.dumps(entry, default=str))
    os.replace(temporary, serving_dir / JOURNAL)


def clear_journal(serving_dir: Path) -> None:
    (serving_dir / JOURNAL).unlink(missing_ok=True)


def published_duckdb_version(serving_dir: Path) -> str | None:
    """The version the published DuckDB file holds (opened read-only, as a BI reader would)."""
    target = serving_dir / PUBLISHED_DUCKDB
    if not target.exists():
        return None
    with duckdb.connect(str(target), read_only=True) as reader:
        return reader.execute(f"SELECT version FROM {PUBLISH_VERSION}").fetchone()[0]


def recover_interrupted_publish(serving_dir: Path) -> dict | None:
    """Finish or undo a publish killed between its steps, then remove what crashed publishes
    left behind; returns the journal entry of a publish that was finished (to be recorded).

    The DuckDB rename is the commit point: if the published DuckDB file holds the journal's
    version, the Parquet ``current`` is switched to it too (roll forward); otherwise the new
    version never reached a reader and its prepared Parquet folder is removed (roll back)."""
    journal = serving_dir / JOURNAL
    finished = None
    if journal.exists():
        entry = json.loads(journal.read_text())
        version = entry["version"]
        folder = serving_dir / PARQUET_DIR / version
        if published_duckdb_version(serving_dir) == version:
            if folder.is_dir():
                switch_parquet(serving_dir, version)
            log.warning("finished publish %s, interrupted after its DuckDB switch", version)
            finished = entry
        else:
            shutil.rmtree(folder, ignore_errors=True)
            log.warning("undid publish %s, interrupted before its DuckDB switch", version)
        journal.unlink()
    remove_publish_debris(serving_dir)
    return finished


def remove_publish_debris(serving_dir: Path) -> list[str]:
    """Delete the temporary files and folders of interrupted publishes and erasures (hidden
    names: readers never open them): a half-written DuckDB copy and its WAL, a half-written
    Parquet folder, a symlink not yet renamed, a Parquet version never switched in. Only one
    run at a time writes the serving folder, so none of them belongs to a live writer."""
    removed = []
    if serving_dir.is_dir():
        for path in serving_dir.glob(f".{PUBLISHED_DUCKDB}.*"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    root = serving_dir / PARQUET_DIR
    if root.is_dir():
        for path in root.iterdir():
            if not path.name.startswith("."):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(f"{PARQUET_DIR}/{path.name}")
        if (root / CURRENT).exists():  # versions newer than current were never switched in
            live = (root / CURRENT).resolve().name
            for folder in _complete_versions(root):
                if folder.name > live:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(f"{PARQUET_DIR}/{folder.name}")
    if removed:
        log.warning("removed what interrupted publishes left behind: %s", ", ".join(removed))
    return removed


def record_publish(
    con: duckdb.DuckDBPyConnection,
    result: PublishResult,
    *,
    run_id: str,
    checks_passed: list[str],
    outputs: dict[str, str],
) -> None:
    con.execute(PUBLISH_LOG_DDL)
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


def journal_entry(
    result: PublishResult, *, run_id: str, checks_passed: list[str], outputs: dict[str, str]
) -> dict:
    """What ``record_publish`` needs, kept in the journal until the publish is recorded."""
    return {
        "version": result.version,
        "published_at": result.published_at.isoformat(),
        "row_counts": result.row_counts,
        "run_id": run_id,
        "checks_passed": checks_passed,
        "outputs": outputs,
    }


def record_finished_publish(con: duckdb.DuckDBPyConnection, entry: Mapping) -> None:
    """Record a publish that ``recover_interrupted_publish`` finished, unless its own process
    recorded it before it died."""
    con.execute(PUBLISH_LOG_DDL)
    recorded = con.execute(
        "SELECT count(*) FROM serving.publish_log WHERE version = ?", [entry["version"]]
    ).fetchone()[0]
    if not recorded:
        result = PublishResult(
            entry["version"], datetime.fromisoformat(entry["published_at"]), entry["row_counts"]
        )
        record_publish(
            con,
            result,
            run_id=entry["run_id"],
            checks_passed=list(entry["checks_passed"]),
            outputs=dict(entry["outputs"]),
        )


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
    *,
    documentation: Mapping[str, TableDoc] | None = None,
    keys: Mapping[str, PublishedTable] | None = None,
) -> None:
    """Load ``tables`` into a new PostgreSQL schema, then swap it in under ``schema`` in one
    transaction, granting read access to ``reader_role`` (created if missing, NOLOGIN: grant it
    to the BI users). The swap first takes ACCESS EXCLUSIVE locks on the tables it replaces, so
    running reader transactions finish first and readers see the old or the new version whole.

    Before the swap, each table gets the primary key and indexes of its entry in ``keys`` (a
    duplicate key fails the publish and leaves the served schema as it was) and the comments of
    ``documentation``.
    """
    docs = documentation or {}
    entries = keys or {}
    loading = f"{schema}__loading_{version.lower()}"
    retired = f"{schema}__retired"
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with engine.begin() as pg:
        pg.exec_driver_sql(f"DROP SCHEMA IF EXISTS {_quoted(loading)} CASCADE")
        pg.exec_driver_sql(f"CREATE SCHEMA {_quoted(loading)}")
        for table in [*tables, None]:
            if table is None:  # the version marker
                pg.exec_driver_sql(
                    f"CREATE TABLE {_quoted(loading)}.{PUBLISH_VERSION} AS "
                    "SELECT %s::text AS version, now() AS published_at",
                    (version,),
                )
                _pg_comments(
                    pg, loading, PUBLISH_VERSION, ["version", "published_at"], PUBLISH_VERSION_DOC
                )
                continue
            name = published_name(table)
            described = con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
            columns = ", ".join(f"{_quoted(c[0])} {_pg_type(c[1])}" for c in described)
            pg.exec_driver_sql(f"CREATE TABLE {_quoted(loading)}.{_quoted(name)} ({columns})")
            csv_path = scratch_dir / f"{name}.{version}.csv"
            casts = ", ".join(
                _quoted(c[0])
                if _pg_type(c[1]) != "jsonb" or c[1] == "JSON"
                else f"to_json({_quoted(c[0])}) AS {_quoted(c[0])}"
                for c in described
            )
            con.execute(
                f"COPY (SELECT {casts} FROM {table}) TO '{csv_path}' (FORMAT csv, HEADER false)"
            )
            try:
                cursor = pg.connection.dbapi_connection.cursor()
                with csv_path.open() as handle:
                    relation = f"{_quoted(loading)}.{_quoted(name)}"
                    cursor.copy_expert(f"COPY {relation} FROM STDIN WITH (FORMAT csv)", handle)
            finally:
                csv_path.unlink(missing_ok=True)
            _pg_keys(pg, loading, name, entries.get(table))
            _pg_comments(pg, loading, name, [c[0] for c in described], docs.get(table))
    _with_exclusive_locks(
        engine, schema, lambda pg: _swap_schema(pg, schema, loading, retired, reader_role)
    )
    _with_exclusive_locks(
        engine,
        retired,
        lambda pg: pg.exec_driver_sql(f"DROP SCHEMA IF EXISTS {_quoted(retired)} CASCADE"),
    )


def _pg_index_name(table: str, columns: tuple[str, ...]) -> str:
    """``<table>__<columns>_idx``, shortened with a hash to PostgreSQL's 63 bytes if needed."""
    name = f"{table}__{'__'.join(columns)}_idx"
    if len(name.encode()) <= _PG_MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name.encode()[: _PG_MAX_IDENTIFIER - 9].decode(errors='ignore')}_{digest}"


def _pg_keys(pg, schema: str, name: str, entry: PublishedTable | None) -> None:
    """The primary key and indexes of ``entry`` on the loaded table ``schema.name``."""
    if entry is None:
        return
    relation = f"{_quoted(schema)}.{_quoted(name)}"
    if entry.primary_key:
        columns = ", ".join(_quoted(c) for c in entry.primary_key)
        pg.exec_driver_sql(f"ALTER TABLE {relation} ADD PRIMARY KEY ({columns})")
    for index in entry.indexes:
        columns = ", ".join(_quoted(c) for c in index)
        pg.exec_driver_sql(
            f"CREATE INDEX {_quoted(_pg_index_name(name, index))} ON {relation} ({columns})"
        )


def _pg_comments(pg, schema: str, name: str, columns: list[str], doc: TableDoc | None) -> None:
    relation = f"{_quoted(schema)}.{_quoted(name)}"
    if doc is None:
        return
    if doc.description.strip():
        pg.exec_driver_sql(f"COMMENT ON TABLE {relation} IS %s", (doc.description,))
    described = doc.column_descriptions()
    for column in columns:
        if column in described:
            pg.exec_driver_sql(
                f"COMMENT ON COLUMN {relation}.{_quoted(column)} IS %s", (described[column],)
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
                    names = ", ".join(f"{_quoted(schema)}.{_quoted(t)}" for t in tables)
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
        pg.exec_driver_sql(f"DROP SCHEMA IF EXISTS {_quoted(retired)} CASCADE")
        pg.exec_driver_sql(f"ALTER SCHEMA {_quoted(schema)} RENAME TO {_quoted(retired)}")
    pg.exec_driver_sql(f"ALTER SCHEMA {_quoted(loading)} RENAME TO {_quoted(schema)}")
    # names from the settings are identifiers (quoted) or bound values, never pasted SQL
    role_exists = pg.exec_driver_sql(
        "SELECT 1 FROM pg_roles WHERE rolname = %s", (reader_role,)
    ).first()
    if not role_exists:
        pg.exec_driver_sql(f"CREATE ROLE {_quoted(reader_role)} NOLOGIN")
    pg.exec_driver_sql(f"GRANT USAGE ON SCHEMA {_quoted(schema)} TO {_quoted(reader_role)}")
    pg.exec_driver_sql(
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {_quoted(schema)} TO {_quoted(reader_role)}"
    )
