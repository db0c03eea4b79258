"""The suppression list: erased persons' identifiers, whose rows later loads drop.

Erasure (privacy/erasure.py) fills ``privacy.suppressed_identifiers``; ingestion asks
``suppression_condition`` for the SQL that recognises a suppressed identifier while it loads.
The list holds the SHA-256 of each pseudonym (``pseudonym_hash``), not the pseudonym: after an
erasure the warehouse file holds no byte of the person's pseudonyms (a byte scan finds none),
and an identifier is still recognised by hashing its pseudonym.
"""

from __future__ import annotations

import hashlib

import duckdb

from privacy.pseudonyms import SQL_FUNCTION

PRIVACY_TABLES_DDL = """
CREATE SCHEMA IF NOT EXISTS privacy;
CREATE TABLE IF NOT EXISTS privacy.suppressed_identifiers (
    pseudonym_hash VARCHAR NOT NULL,  -- sha256(pseudonym), hex
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


def ensure_privacy_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(PRIVACY_TABLES_DDL)
    columns = {
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'privacy' AND table_name = 'suppressed_identifiers'"
        ).fetchall()
    }
    if "pseudonym" in columns:  # a list written before pseudonyms were hashed
        con.execute(
            "CREATE OR REPLACE TABLE privacy.suppressed_identifiers AS "
            "SELECT sha256(pseudonym) AS pseudonym_hash, request_id "
            "FROM privacy.suppressed_identifiers"
        )


def pseudonym_hash(pseudonym: str) -> str:
    """What the suppression list stores for a pseudonym (``sha256(pseudonym)`` in SQL)."""
    return hashlib.sha256(pseudonym.encode()).hexdigest()


def suppression_condition(con: duckdb.DuckDBPyConnection, expressions: list[str]) -> str | None:
    """SQL condition true for a row whose identifier (any of the raw ``expressions``) belongs to
    an erased person; None while the suppression list is empty (nothing to pay for). Needs the
    pseudonymization macro installed on ``con``."""
    ensure_privacy_tables(con)
    if not con.execute("SELECT count(*) FROM privacy.suppressed_identifiers").fetchone()[0]:
        return None
    return " OR ".join(
        f"coalesce(sha256({SQL_FUNCTION}({e})) IN "
        "(SELECT pseudonym_hash FROM privacy.suppressed_identifiers), false)"
        for e in expressions
    )
