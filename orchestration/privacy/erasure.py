"""Erasure (right to be forgotten) and the suppression list.

``erase_person`` removes every trace of one customer, found by customer id or email:

1. the subject's raw identifiers: the customer id(s) (an email may name several), and every
   anonymous id seen on an event together with one of them;
2. from the working warehouse: raw events, rejected events whose payload names an identifier,
   the raw CRM rows; staged events (by pseudonym); and every row of every table in the
   intermediate, marts and ml schemas that belongs to one of the subject's persons (person_id)
   or carries one of the subject's pseudonyms (columns in ``PSEUDONYM_COLUMNS``);
3. from the published outputs: the serving DuckDB file and the current Parquet version are
   rewritten without those rows and swapped in atomically (older Parquet versions, which still
   hold the person, are deleted); the PostgreSQL schema is cleaned in one transaction;
4. the pseudonyms of the customer ids, the email and the anonymous ids go to
   ``privacy.suppressed_identifiers``: ingestion drops their rows from later loads, so the
   person does not come back from landing files or the CRM;
5. ``privacy.erasure_requests`` records the request without personal data: a request id, the
   keyed hash of the subject, the times and the rows removed per table.

Trained models hold no rows of persons (coefficients, trees, centroids, aggregate drift
baselines), so they are not retrained; the next nightly run trains without the person.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import sqlalchemy as sa

from orchestration.privacy.pseudonyms import SQL_FUNCTION, pseudonym
from orchestration.publish import CURRENT, PARQUET_DIR, PUBLISHED_DUCKDB
from orchestration.warehouse import table_exists

log = logging.getLogger(__name__)

# Columns that hold pseudonymized identifiers downstream of staging.
PSEUDONYM_COLUMNS = ("identifier", "customer_id", "person_customer_id", "user_id", "anonymous_id")
# Schemas whose tables are cleaned by person_id / pseudonym columns.
DERIVED_SCHEMAS = ("staging", "intermediate", "marts", "ml")

PRIVACY_TABLES_DDL = """
CREATE SCHEMA IF NOT EXISTS privacy;
CREATE TABLE IF NOT EXISTS privacy.suppressed_identifiers (
    pseudonym VARCHAR NOT NULL,
    request_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS privacy.erasure_requests (
    request_id VARCHAR NOT NULL,
    subject_type VARCHAR NOT NULL,   -- customer_id or email
    subject_pseudonym VARCHAR NOT NULL,
    requested_at TIMESTAMPTZ NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL,
    rows_removed JSON NOT NULL       -- {"raw.events": n, ...}
);
"""


class ErasureRequestError(ValueError):
    """The request names no subject, or both a customer id and an email."""


@dataclass
class ErasureReport:
    request_id: str
    subject_type: str
    subject_pseudonym: str
    customers_found: int
    rows_removed: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows_removed(self) -> int:
        return sum(self.rows_removed.values())


def ensure_privacy_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(PRIVACY_TABLES_DDL)


def normalized_email(email: str) -> str:
    return email.strip().lower()


def _tables(con: duckdb.DuckDBPyConnection, database: str, schemas: tuple[str, ...]):
    """(schema, table, [columns]) of every base table of ``schemas`` in ``database``."""
    rows = con.execute(
        """SELECT schema_name, table_name, list(column_name ORDER BY column_index)
        FROM duckdb_columns() WHERE database_name = ? AND schema_name IN ?
          AND table_name IN (SELECT table_name FROM duckdb_tables()
                             WHERE database_name = ? AND schema_name = duckdb_columns.schema_name)
        GROUP BY ALL ORDER BY 1, 2""",
        [database, list(schemas), database],
    ).fetchall()
    return [(schema, table, [c.lower() for c in columns]) for schema, table, columns in rows]


def _person_predicate(columns: list[str]) -> str | None:
    """SQL condition matching a row of the subject (temp tables _erase_persons/_pseudonyms)."""
    terms = []
    if "person_id" in columns:
        terms.append("person_id IN (SELECT person_id FROM _erase_persons)")
    terms += [
        f"{column} IN (SELECT pseudonym FROM _erase_pseudonyms)"
        for column in PSEUDONYM_COLUMNS
        if column in columns
    ]
    return " OR ".join(terms) or None


def _delete(
    con: duckdb.DuckDBPyConnection,
    table: str,
    predicate: str,
    removed: dict,
    label: str | None = None,
) -> None:
    count = con.execute(f"DELETE FROM {table} WHERE {predicate}").fetchone()[0]  # rows deleted
    label = label or table.replace('"', "")
    removed[label] = removed.get(label, 0) + count


def _subject_identifiers(
    con: duckdb.DuckDBPyConnection, customer_id: str | None, email: str | None
) -> tuple[list[str], list[str]]:
    """(customer ids, anonymous ids) of the subject, as raw values."""
    if email is not None:
        customers = (
            [
                row[0]
                for row in con.execute(
                    "SELECT DISTINCT trim(customer_id) FROM raw.crm_customers "
                    "WHERE lower(trim(email)) = ? AND customer_id IS NOT NULL",
                    [normalized_email(email)],
                ).fetchall()
            ]
            if table_exists(con, "raw", "crm_customers")
            else []
        )
    else:
        customers = [customer_id.strip()]
    anonymous = []
    if customers and table_exists(con, "raw", "events"):
        anonymous = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT anonymous_id FROM raw.events "
                "WHERE user_id IN ? AND anonymous_id IS NOT NULL",
                [customers],
            ).fetchall()
        ]
    return customers, anonymous


def _known_customers(con: duckdb.DuckDBPyConnection, customers: list[str]) -> int:
    """How many of ``customers`` the raw layer knows (CRM snapshot or events)."""
    if not customers:
        return 0
    sources = [
        f"SELECT trim({column}) AS id FROM {schema}.{table}"
        for schema, table, column in (
            ("raw", "crm_customers", "customer_id"),
            ("raw", "events", "user_id"),
        )
        if table_exists(con, schema, table)
    ]
    known = set()
    if sources:
        known = {
            row[0]
            for row in con.execute(
                f"SELECT DISTINCT id FROM ({' UNION ALL '.join(sources)}) WHERE id IN ?",
                [customers],
            ).fetchall()
        }
    return len(known)


def erase_in_warehouse(
    con: duckdb.DuckDBPyConnection,
    key: bytes,
    *,
    customer_id: str | None = None,
    email: str | None = None,
    request_id: str | None = None,
) -> ErasureReport:
    """Erase one customer from the working warehouse and suppress their identifiers, in one
    transaction. ``erase_person`` also cleans the published outputs and records the request."""
    if (customer_id is None) == (email is None) or not (customer_id or email or "").strip():
        raise ErasureRequestError("an erasure request names exactly one customer_id or email")
    request_id = request_id or uuid.uuid4().hex
    subject_type = "email" if email is not None else "customer_id"
    subject = normalized_email(email) if email is not None else customer_id.strip()
    report = ErasureReport(request_id, subject_type, pseudonym(subject, key), 0)

    ensure_privacy_tables(con)
    con.execute("BEGIN TRANSACTION")
    try:
        customers, anonymous = _subject_identifiers(con, customer_id, email)
        report.customers_found = _known_customers(con, customers)
        raw_ids = [*customers, *anonymous]
        pseudonyms = sorted({pseudonym(value, key) for value in raw_ids})
        con.execute("CREATE OR REPLACE TEMP TABLE _erase_pseudonyms (pseudonym VARCHAR)")
        con.executemany("INSERT INTO _erase_pseudonyms VALUES (?)", [[p] for p in pseudonyms])
        persons_sql = (
            "CREATE OR REPLACE TEMP TABLE _erase_persons AS "
            "SELECT NULL::VARCHAR AS person_id WHERE false"
        )
        if table_exists(con, "intermediate", "int_identifiers_stitched"):
            persons_sql = """CREATE OR REPLACE TEMP TABLE _erase_persons AS
                SELECT DISTINCT person_id FROM intermediate.int_identifiers_stitched
                WHERE identifier IN (SELECT pseudonym FROM _erase_pseudonyms)"""
        con.execute(persons_sql)
        _erase_raw(con, customers, anonymous, email, report.rows_removed)
        for schema, table, columns in _tables(con, _current_database(con), DERIVED_SCHEMAS):
            predicate = _person_predicate(columns)
            if predicate:
                _delete(con, f'"{schema}"."{table}"', predicate, report.rows_removed)
        suppressed = {*pseudonyms, report.subject_pseudonym}
        con.executemany(
            "INSERT INTO privacy.suppressed_identifiers SELECT ?, ? WHERE ? NOT IN "
            "(SELECT pseudonym FROM privacy.suppressed_identifiers)",
            [[p, request_id, p] for p in sorted(suppressed)],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    log.info(
        "erasure %s: %d customer(s), %d anonymous id(s), %d row(s) removed from the warehouse",
        request_id,
        len(customers),
        len(anonymous),
        report.total_rows_removed,
    )
    return report


def _current_database(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_database()").fetchone()[0]


def _erase_raw(
    con: duckdb.DuckDBPyConnection,
    customers: list[str],
    anonymous: list[str],
    email: str | None,
    removed: dict[str, int],
) -> None:
    raw_ids = [*customers, *anonymous]
    if not raw_ids:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE _erase_raw_ids (value VARCHAR)")
    con.executemany("INSERT INTO _erase_raw_ids VALUES (?)", [[v] for v in raw_ids])
    if table_exists(con, "raw", "events"):
        _delete(
            con,
            "raw.events",
            "user_id IN (SELECT value FROM _erase_raw_ids) "
            "OR anonymous_id IN (SELECT value FROM _erase_raw_ids)",
            removed,
        )
    if table_exists(con, "raw", "rejected_events"):
        # a rejected payload is any text: match an identifier as a whole token
        tokens = [*raw_ids, *([normalized_email(email)] if email else [])]
        pattern = (
            "(^|[^A-Za-z0-9_.@-])("
            + "|".join(re.escape(t) for t in tokens)
            + ")($|[^A-Za-z0-9_.@-])"
        )
        con.execute("SET VARIABLE erase_pattern = ?", [pattern])
        _delete(
            con,
            "raw.rejected_events",
            "regexp_matches(payload, getvariable('erase_pattern'), 'i')",
            removed,
        )
    for entity in ("customers", "orders", "consents"):
        if customers and table_exists(con, "raw", f"crm_{entity}"):
            _delete(
                con,
                f"raw.crm_{entity}",
                "trim(customer_id) IN (SELECT value FROM _erase_raw_ids)",
                removed,
            )


def erase_in_serving(
    con: duckdb.DuckDBPyConnection,
    serving_dir: Path,
    *,
    postgres_url: str = "",
    postgres_schema: str = "segments",
) -> dict[str, int]:
    """Remove the subject of the last ``erase_in_warehouse`` on ``con`` (its temp tables name
    the persons and pseudonyms) from the published outputs; returns rows removed per output."""
    removed: dict[str, int] = {}
    published = serving_dir / PUBLISHED_DUCKDB
    if published.exists():
        # rewrite a copy and swap it in, as a publish does: readers never see a half-erased file
        temporary = serving_dir / f".{PUBLISHED_DUCKDB}.erasure.tmp"
        shutil.copyfile(published, temporary)
        con.execute(f"ATTACH '{temporary}' AS erasing")
        try:
            for schema, table, columns in _tables(con, "erasing", ("main",)):
                predicate = _person_predicate(columns)
                if predicate:
                    _delete(
                        con,
                        f'erasing."{schema}"."{table}"',
                        predicate,
                        removed,
                        label=f"duckdb:{table}",
                    )
        finally:
            con.execute("DETACH erasing")
        os.replace(temporary, published)
    parquet_root = serving_dir / PARQUET_DIR
    if (parquet_root / CURRENT).exists():
        _erase_parquet(con, parquet_root, removed)
    if postgres_url:
        _erase_postgres(con, postgres_url, postgres_schema, removed)
    return removed


def _erase_parquet(con: duckdb.DuckDBPyConnection, root: Path, removed: dict[str, int]) -> None:
    """A new version folder without the subject's rows; ``current`` switched to it; every
    other version (each holds the subject) deleted."""
    current = (root / CURRENT).resolve()
    version = f"{current.name}-erased-{uuid.uuid4().hex[:8]}"
    folder = root / version
    folder.mkdir()
    for path in sorted(current.iterdir()):
        if path.suffix != ".parquet":
            shutil.copyfile(path, folder / path.name)
            continue
        con.execute(f"CREATE OR REPLACE TEMP VIEW _published AS SELECT * FROM '{path}'")
        columns = [
            d[0].lower() for d in con.execute("SELECT * FROM _published LIMIT 0").description
        ]
        predicate = _person_predicate(columns) or "false"
        removed[f"parquet:{path.name}"] = con.execute(
            f"SELECT count(*) FROM _published WHERE {predicate}"
        ).fetchone()[0]
        con.execute(
            f"COPY (SELECT * FROM _published WHERE NOT ({predicate})) TO '{folder / path.name}' "
            "(FORMAT parquet)"
        )
    con.execute("DROP VIEW _published")
    link = root / f".{CURRENT}.{version}.tmp"
    link.symlink_to(version, target_is_directory=True)
    os.replace(link, root / CURRENT)
    for old in root.iterdir():
        if old.is_dir() and not old.is_symlink() and old.name != version:
            shutil.rmtree(old)


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
    postgres_url: str = "",
    postgres_schema: str = "segments",
) -> ErasureReport:
    """The whole erasure: warehouse, suppression list, published outputs, audit record.

    Idempotent: a repeated request removes what is left (nothing) and is recorded again."""
    requested_at = datetime.now(UTC)
    report = erase_in_warehouse(con, key, customer_id=customer_id, email=email)
    report.rows_removed.update(
        erase_in_serving(
            con, serving_dir, postgres_url=postgres_url, postgres_schema=postgres_schema
        )
    )
    con.execute(
        "INSERT INTO privacy.erasure_requests VALUES (?, ?, ?, ?, ?, ?)",
        [
            report.request_id,
            report.subject_type,
            report.subject_pseudonym,
            requested_at,
            datetime.now(UTC),
            json.dumps({t: n for t, n in sorted(report.rows_removed.items()) if n}),
        ],
    )
    return report


def suppression_condition(con: duckdb.DuckDBPyConnection, expressions: list[str]) -> str | None:
    """SQL condition true for a row whose identifier (any of the raw ``expressions``) belongs to
    an erased person; None while the suppression list is empty (nothing to pay for). Needs the
    pseudonymization macro installed on ``con``."""
    ensure_privacy_tables(con)
    if not con.execute("SELECT count(*) FROM privacy.suppressed_identifiers").fetchone()[0]:
        return None
    return " OR ".join(
        f"coalesce({SQL_FUNCTION}({e}) IN (SELECT pseudonym FROM privacy.suppressed_identifiers),"
        " false)"
        for e in expressions
    )
