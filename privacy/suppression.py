"""The suppression list: pseudonyms of erased persons, whose rows later loads drop.

Erasure (privacy/erasure.py) fills ``privacy.suppressed_identifiers``; ingestion asks
``suppression_condition`` for the SQL that recognises a suppressed identifier while it loads.
"""

from __future__ import annotations

import duckdb

from privacy.pseudonyms import SQL_FUNCTION

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


def ensure_privacy_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(PRIVACY_TABLES_DDL)


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
