"""Keyed pseudonyms of identifiers (HMAC-SHA256), in Python and as a DuckDB macro.

Identifiers (customer ids, anonymous ids) leave staging only as ``pseudonym(id)``: the first 32
hex digits (128 bits) of HMAC-SHA256 with a secret key. The key comes from the environment
variable SEGWH_PSEUDONYMIZATION_KEY, never from the repository. Without the key a pseudonym
cannot be linked back to a customer; with it, erasure can find a person's rows.

SQL computes pseudonyms with the DuckDB macro ``segwh_pseudonymize(x)``. The macro holds the key,
so it is never stored: it is a TEMP macro, created on each connection from the environment
(``install`` / ``install_session``; every ``warehouse.connection.connect`` session gets it when
the environment has the key; dbt's connections get it from the dbt-duckdb plugin
``privacy.dbt_plugin``, named in dbt_project/profiles.yml). The warehouse file, dbt's compiled
SQL, manifest and logs name the macro, never the key; a warehouse written by an older version,
which stored the macro, loses it at the next ``install`` (the compaction after an erasure also
clears the freed pages that held it).

The warehouse records a fingerprint of the key it was built with; a run with another key stops
with an explanation, because stored pseudonyms would no longer match the new ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import duckdb

from warehouse import connection

KEY_ENV_VAR = "SEGWH_PSEUDONYMIZATION_KEY"
MIN_KEY_LENGTH = 32
PSEUDONYM_HEX_DIGITS = 32
SQL_FUNCTION = "segwh_pseudonymize"

PRIVACY_DDL = """
CREATE SCHEMA IF NOT EXISTS privacy;
CREATE TABLE IF NOT EXISTS privacy.pseudonymization_key (
    fingerprint VARCHAR NOT NULL,
    installed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""


class PseudonymizationKeyError(RuntimeError):
    """The key is missing, too short, or not the one the warehouse was built with."""


def validated_key(key: str | None) -> bytes:
    if not key or not key.strip():
        raise PseudonymizationKeyError(
            f"{KEY_ENV_VAR} is not set. Identifiers are pseudonymized with a secret key that "
            "must come from the environment; generate one with\n"
            "  python -c 'import secrets; print(secrets.token_hex(32))'\n"
            f"keep it in your secret store and export it as {KEY_ENV_VAR} for every run."
        )
    key = key.strip()
    if len(key) < MIN_KEY_LENGTH:
        raise PseudonymizationKeyError(
            f"{KEY_ENV_VAR} has {len(key)} characters; use at least {MIN_KEY_LENGTH} random "
            "characters (e.g. secrets.token_hex(32))"
        )
    return key.encode()


def key_from_environment() -> bytes:
    return validated_key(os.environ.get(KEY_ENV_VAR))


def pseudonym(value: str, key: bytes) -> str:
    """The pseudonym of one identifier; equals ``segwh_pseudonymize(value)`` in the warehouse."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_DIGITS]


def fingerprint(key: bytes) -> str:
    """Identifies a key without revealing it (a pseudonym of a fixed label)."""
    return pseudonym("segwh key fingerprint", key)


def _hmac_macro_sql(key: bytes) -> str:
    # HMAC(K, m) = H((K' ^ opad) || H((K' ^ ipad) || m)), K' the key padded to SHA-256's block
    # size (64 bytes; a longer key is hashed first, RFC 2104).
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\0")
    inner = bytes(b ^ 0x36 for b in block).hex()
    outer = bytes(b ^ 0x5C for b in block).hex()
    return (
        f"CREATE OR REPLACE TEMP MACRO {SQL_FUNCTION}(x) AS CASE WHEN x IS NOT NULL THEN "
        f"left(sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode(x::VARCHAR)))),"
        f" {PSEUDONYM_HEX_DIGITS}) END"
    )


def install(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Make ``segwh_pseudonymize`` available on ``con`` (a read-write warehouse connection):
    record the key's fingerprint on first use, refuse a key other than the recorded one, drop a
    macro an older version stored in the file, and create the TEMP macro of this session."""
    con.execute(PRIVACY_DDL)
    check_key(con, key)
    recorded = con.execute("SELECT count(*) FROM privacy.pseudonymization_key").fetchone()[0]
    if not recorded:
        con.execute(
            "INSERT INTO privacy.pseudonymization_key (fingerprint) VALUES (?)", [fingerprint(key)]
        )
    database = con.execute("SELECT current_database()").fetchone()[0].replace('"', '""')
    con.execute(f'DROP MACRO IF EXISTS "{database}".main.{SQL_FUNCTION}')  # a stored, keyed one
    install_session(con, key)


def check_key(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Raise if the warehouse on ``con`` records the fingerprint of another key."""
    if not _has_key_table(con):
        return
    recorded = con.execute("SELECT fingerprint FROM privacy.pseudonymization_key").fetchall()
    if recorded and recorded[0][0] != fingerprint(key):
        raise PseudonymizationKeyError(
            f"{KEY_ENV_VAR} is not the key this warehouse was built with: its stored pseudonyms "
            "would not match new ones. Restore the previous key; to rotate the key on purpose, "
            "delete the row of privacy.pseudonymization_key and rebuild every model with "
            "`dbt build --full-refresh` (published ids and the churn training history change)."
        )


def _has_key_table(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'privacy' AND table_name = 'pseudonymization_key'"
        ).fetchone()[0]
    )


def install_session(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Create the TEMP macro ``segwh_pseudonymize`` on ``con`` only (also on a read-only
    connection): it lives in the session's memory and dies with it, never in the file."""
    con.execute(session_macro_sql(key))


def session_macro_sql(key: bytes) -> str:
    """The statement that creates the session's TEMP macro. It embeds the key: run it, never
    log or store it."""
    return _hmac_macro_sql(key)


def _install_from_environment(con: duckdb.DuckDBPyConnection) -> None:
    """Every warehouse session (``warehouse.connection.connect``) gets the macro when the
    environment has a key, as dbt's connections do (privacy/dbt_plugin.py)."""
    if os.environ.get(KEY_ENV_VAR, "").strip():
        install_session(con, key_from_environment())


connection.on_every_session(_install_from_environment)
