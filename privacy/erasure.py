"""Erasure (right to be forgotten) in the working warehouse.

An erasure request (``serving.erasure.erase_person`` runs all of it) removes every trace of one
customer, found by customer id or email:

1. the subject's raw identifiers: the customer id(s) (an email may name several), and every
   anonymous id seen on an event together with one of them;
2. from the working warehouse: raw events, rejected events whose payload names an identifier,
   the raw CRM rows; staged events (by pseudonym); and every row of every table in the
   intermediate, marts and ml schemas that belongs to one of the subject's persons (person_id)
   or carries one of the subject's pseudonyms (columns in ``PSEUDONYM_COLUMNS``);
3. from the published outputs (``serving.erasure``, which reuses this module's predicates);
4. the pseudonyms of the customer ids, the email and the anonymous ids go to
   ``privacy.suppressed_identifiers`` (as SHA-256 hashes of the pseudonyms): ingestion drops
   their rows from later loads, so the person does not come back from landing files or the CRM;
5. ``privacy.erasure_requests`` records the request without personal data: a request id, the
   keyed hash of the subject, the times and the rows removed per table.

Trained models hold no rows of persons (coefficients, trees, centroids, aggregate drift
baselines), so they are not retrained; the next nightly run trains without the person.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from privacy.pseudonyms import pseudonym
from privacy.suppression import ensure_privacy_tables, pseudonym_hash
from warehouse.connection import table_exists

log = logging.getLogger(__name__)

# Columns that hold pseudonymized identifiers downstream of staging.
PSEUDONYM_COLUMNS = ("identifier", "customer_id", "person_customer_id", "user_id", "anonymous_id")
# Schemas whose tables are cleaned by person_id / pseudonym columns.
DERIVED_SCHEMAS = ("staging", "intermediate", "marts", "ml")


class ErasureRequestError(ValueError):
    """The request names no subject, or more than one."""


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


def normalized_email(email: str) -> str:
    return email.strip().lower()


def tables_with_columns(con: duckdb.DuckDBPyConnection, database: str, schemas: tuple[str, ...]):
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


def person_predicate(columns: list[str]) -> str | None:
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


def delete_rows(
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


def _email_with_pseudonym(con: duckdb.DuckDBPyConnection, hashed: str, key: bytes) -> str | None:
    """The CRM email (normalized) whose keyed hash is ``hashed``; None when no customer has it
    (the hash is still suppressed for later loads)."""
    if not table_exists(con, "raw", "crm_customers"):
        return None
    emails = con.execute(
        "SELECT DISTINCT lower(trim(email)) FROM raw.crm_customers WHERE email IS NOT NULL"
    ).fetchall()
    return next((e for (e,) in emails if pseudonym(e, key) == hashed), None)


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
    email_pseudonym: str | None = None,
    request_id: str | None = None,
) -> ErasureReport:
    """Erase one customer from the working warehouse and suppress their identifiers, in one
    transaction. ``erase_person`` also cleans the published outputs and records the request.

    The subject is a customer id, an email, or the keyed hash of an email
    (``email_pseudonym``, what the ``erase_person`` job takes: the address itself never enters
    Dagster's run storage); the address is then found in the raw CRM snapshot by its hash."""
    subjects = [s for s in (customer_id, email, email_pseudonym) if s is not None]
    if len(subjects) != 1 or not subjects[0].strip():
        raise ErasureRequestError(
            "an erasure request names exactly one customer_id, email or email_pseudonym"
        )
    request_id = request_id or uuid.uuid4().hex
    subject_type = "customer_id" if customer_id is not None else "email"
    if email_pseudonym is not None:
        subject_hash = email_pseudonym.strip()
        email = _email_with_pseudonym(con, subject_hash, key)
    else:
        subject = normalized_email(email) if email is not None else customer_id.strip()
        subject_hash = pseudonym(subject, key)
    report = ErasureReport(request_id, subject_type, subject_hash, 0)

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
        for schema, table, columns in tables_with_columns(
            con, _current_database(con), DERIVED_SCHEMAS
        ):
            predicate = person_predicate(columns)
            if predicate:
                delete_rows(con, f'"{schema}"."{table}"', predicate, report.rows_removed)
        suppressed = {pseudonym_hash(p) for p in {*pseudonyms, report.subject_pseudonym}}
        con.executemany(
            "INSERT INTO privacy.suppressed_identifiers SELECT ?, ? WHERE ? NOT IN "
            "(SELECT pseudonym_hash FROM privacy.suppressed_identifiers)",
            [[h, request_id, h] for h in sorted(suppressed)],
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


def record_erasure(
    con: duckdb.DuckDBPyConnection, report: ErasureReport, requested_at: datetime
) -> None:
    """Record a completed request in ``privacy.erasure_requests``: its id, the keyed hash of the
    subject, the times and the rows removed per table (warehouse and published outputs)."""
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
        delete_rows(
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
        delete_rows(
            con,
            "raw.rejected_events",
            "regexp_matches(payload, getvariable('erase_pattern'), 'i')",
            removed,
        )
    for entity in ("customers", "orders", "consents"):
        if customers and table_exists(con, "raw", f"crm_{entity}"):
            delete_rows(
                con,
                f"raw.crm_{entity}",
                "trim(customer_id) IN (SELECT value FROM _erase_raw_ids)",
                removed,
            )
