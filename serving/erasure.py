"""Erasure in the published outputs: the subject of an erasure leaves what BI tools read.

``erase_in_serving`` runs on the connection where ``privacy.erasure.erase_in_warehouse`` just
ran (its temp tables ``_erase_persons`` and ``_erase_pseudonyms`` name the subject); the DuckDB
file and the current Parquet version are rewritten without the subject's rows and swapped in
atomically, like a publish; the PostgreSQL schema is cleaned in one transaction; the online
store loses the subject's profile, identifiers and segment memberships in every version Redis
holds, and the warehouse's mirror of it (``serving.online_*``) their rows.
``erase_person`` is the whole request: warehouse, published outputs, audit record.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa

from privacy.erasure import (
    PSEUDONYM_COLUMNS,
    ErasureReport,
    delete_rows,
    erase_in_warehouse,
    person_predicate,
    record_erasure,
    tables_with_columns,
)
from serving.online import store as online_store
from serving.online.profiles import MIRROR_TABLES
from serving.publish import (
    CURRENT,
    PARQUET_DIR,
    PUBLISHED_DUCKDB,
    parquet_copy_options,
    recover_interrupted_publish,
    switch_parquet,
)
from serving.realtime import state as realtime_state
from warehouse.connection import table_exists


def erase_in_serving(
    con: duckdb.DuckDBPyConnection,
    serving_dir: Path,
    *,
    postgres_url: str = "",
    postgres_schema: str = "segments",
    online: online_store.OnlineStore | None = None,
    storage_version: str = "",
) -> dict[str, int]:
    """Remove the subject of the last ``erase_in_warehouse`` on ``con`` (its temp tables name
    the persons and pseudonyms) from the published outputs; returns rows removed per output.

    The published DuckDB file is rewritten, not patched: deleted rows stay in the free blocks of
    a patched file, so the rows that remain are copied into a fresh file (in
    ``storage_version``, as a publish writes it) that replaces it."""
    removed: dict[str, int] = {}
    if online is not None:
        _erase_online(con, online, removed)
    # finish an interrupted publish first, and delete the temporary copies crashed publishes
    # left behind (they hold the subject too)
    recover_interrupted_publish(serving_dir)
    published = serving_dir / PUBLISHED_DUCKDB
    if published.exists():
        # rewrite a copy and swap it in, as a publish does: readers never see a half-erased file
        temporary = serving_dir / f".{PUBLISHED_DUCKDB}.erasure.tmp"
        shutil.copyfile(published, temporary)
        con.execute(f"ATTACH '{temporary}' AS erasing")
        try:
            for schema, table, columns in tables_with_columns(con, "erasing", ("main",)):
                predicate = person_predicate(columns)
                if predicate:
                    delete_rows(
                        con,
                        f'erasing."{schema}"."{table}"',
                        predicate,
                        removed,
                        label=f"duckdb:{table}",
                    )
            compacted = serving_dir / f".{PUBLISHED_DUCKDB}.erasure-compacted.tmp"
            compacted.unlink(missing_ok=True)
            version = f" (STORAGE_VERSION '{storage_version}')" if storage_version else ""
            con.execute(f"ATTACH '{compacted}' AS compacted{version}")
            try:
                con.execute("COPY FROM DATABASE erasing TO compacted")
            finally:
                con.execute("DETACH compacted")
        finally:
            con.execute("DETACH erasing")
        os.replace(compacted, published)
        temporary.unlink()
    parquet_root = serving_dir / PARQUET_DIR
    if (parquet_root / CURRENT).exists():
        _erase_parquet(con, parquet_root, removed)
    if postgres_url:
        _erase_postgres(con, postgres_url, postgres_schema, removed)
    return removed


def _erase_parquet(con: duckdb.DuckDBPyConnection, root: Path, removed: dict[str, int]) -> None:
    """A new version folder without the subject's rows (each file keeps its key-value
    metadata: the documentation); ``current`` switched to it; every other version (each holds
    the subject) deleted."""
    current = (root / CURRENT).resolve()
    version = f"{current.name}-erased-{uuid.uuid4().hex[:8]}"
    folder = root / f".{version}.partial"  # renamed when whole, as a publish does
    folder.mkdir()
    for path in sorted(current.iterdir()):
        if path.suffix != ".parquet":
            shutil.copyfile(path, folder / path.name)
            continue
        con.execute(f"CREATE OR REPLACE TEMP VIEW _published AS SELECT * FROM '{path}'")
        columns = [
            d[0].lower() for d in con.execute("SELECT * FROM _published LIMIT 0").description
        ]
        predicate = person_predicate(columns) or "false"
        removed[f"parquet:{path.name}"] = con.execute(
            f"SELECT count(*) FROM _published WHERE {predicate}"
        ).fetchone()[0]
        kv_metadata = dict(
            con.execute(
                "SELECT decode(key), decode(value) FROM parquet_kv_metadata(?)", [str(path)]
            ).fetchall()
        )
        con.execute(
            f"COPY (SELECT * FROM _published WHERE NOT ({predicate})) TO '{folder / path.name}' "
            f"({parquet_copy_options(kv_metadata)})"
        )
    con.execute("DROP VIEW _published")
    os.replace(folder, root / version)
    switch_parquet(root.parent, version)
    for old in root.iterdir():
        if old.is_dir() and not old.is_symlink() and old.name != version:
            shutil.rmtree(old)


def _erase_online(
    con: duckdb.DuckDBPyConnection, online: online_store.OnlineStore, removed: dict[str, int]
) -> None:
    """Redis first (what the API answers), then the warehouse's mirror of it."""
    persons = [r[0] for r in con.execute("SELECT person_id FROM _erase_persons").fetchall()]
    pseudonyms = [r[0] for r in con.execute("SELECT pseudonym FROM _erase_pseudonyms").fetchall()]
    client = online.connect()
    try:
        removed["redis:online_store"] = online_store.erase(client, online.keys, persons, pseudonyms)
        # the stream consumer's state, history and outbox; later events of these ids ignored
        removed["redis:realtime_state"] = realtime_state.erase(
            client, realtime_state.RealtimeKeys(online.prefix), pseudonyms
        )
    finally:
        client.close()
    for table in MIRROR_TABLES:
        schema, name = table.split(".")
        if table_exists(con, schema, name):
            columns = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
            delete_rows(con, table, person_predicate(columns), removed, label=table)


def _erase_postgres(
    con: duckdb.DuckDBPyConnection, url: str, schema: str, removed: dict[str, int]
) -> None:
    persons = [r[0] for r in con.execute("SELECT person_id FROM _erase_persons").fetchall()]
    pseudonyms = [r[0] for r in con.execute("SELECT pseudonym FROM _erase_pseudonyms").fetchall()]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as pg:
            columns = pg.execute(
                sa.text(
                    "SELECT table_name, array_agg(lower(column_name)::text) FROM "
                    "information_schema.columns WHERE table_schema = :schema GROUP BY table_name"
                ),
                {"schema": schema},
            ).fetchall()
            for table, names in columns:
                terms = (["person_id = ANY(:persons)"] if "person_id" in names else []) + [
                    f"{c} = ANY(:pseudonyms)" for c in PSEUDONYM_COLUMNS if c in names
                ]
                if not terms:
                    continue
                result = pg.execute(
                    sa.text(f'DELETE FROM "{schema}"."{table}" WHERE {" OR ".join(terms)}'),
                    {"persons": persons, "pseudonyms": pseudonyms},
                )
                removed[f"postgres:{schema}.{table}"] = result.rowcount
    finally:
        engine.dispose()


def erase_person(
    con: duckdb.DuckDBPyConnection,
    key: bytes,
    serving_dir: Path,
    *,
    customer_id: str | None = None,
    email: str | None = None,
    email_pseudonym: str | None = None,
    postgres_url: str = "",
    postgres_schema: str = "segments",
    online: online_store.OnlineStore | None = None,
    storage_version: str = "",
) -> ErasureReport:
    """The whole erasure: warehouse, suppression list, published outputs, audit record.

    Idempotent: a repeated request removes what is left (nothing) and is recorded again."""
    requested_at = datetime.now(UTC)
    report = erase_in_warehouse(
        con, key, customer_id=customer_id, email=email, email_pseudonym=email_pseudonym
    )
    report.rows_removed.update(
        erase_in_serving(
            con,
            serving_dir,
            postgres_url=postgres_url,
            postgres_schema=postgres_schema,
            online=online,
            storage_version=storage_version,
        )
    )
    record_erasure(con, report, requested_at)
    return report
