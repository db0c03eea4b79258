"""Keyed pseudonyms of identifiers (HMAC-SHA256), in Python and as a DuckDB macro.

Identifiers (customer ids, anonymous ids) leave staging only as ``pseudonym(id)``: the first 32
hex digits (128 bits) of HMAC-SHA256 with a secret key. The key comes from the environment
variable SEGWH_PSEUDONYMIZATION_KEY, never from the repository. Without the key a pseudonym
cannot be linked back to a customer; with it, erasure can find a person's rows.

dbt computes pseudonyms with the DuckDB macro ``segwh_pseudonymize(x)``, which this module
installs in the warehouse before dbt runs, so the key never appears in dbt's compiled SQL or logs.
The macro lives in the working warehouse, which also holds the raw personal data: protect the
file like the raw data (published outputs never contain it).

The warehouse records a fingerprint of the key it was built with; a run with another key stops
with an explanation, because stored pseudonyms would no longer match the new ones.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import duckdb

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
        f"CREATE OR REPLACE MACRO {SQL_FUNCTION}(x) AS CASE WHEN x IS NOT NULL THEN "
        f"left(sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode(x::VARCHAR)))),"
        f" {PSEUDONYM_HEX_DIGITS}) END"
    )


def install(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Create ``segwh_pseudonymize`` in the warehouse; refuse a key other than the recorded one."""
    con.execute(PRIVACY_DDL)
    recorded = con.execute("SELECT fingerprint FROM privacy.pseudonymization_key").fetchall()
    current = fingerprint(key)
    if recorded and recorded[0][0] != current:
        raise PseudonymizationKeyError(
            f"{KEY_ENV_VAR} is not the key this warehouse was built with: its stored pseudonyms "
            "would not match new ones. Restore the previous key; to rotate the key on purpose, "
            "delete the row of privacy.pseudonymization_key and rebuild every model with "
            "`dbt build --full-refresh` (published ids and the churn training history change)."
        )
    if not recorded:
        con.execute("INSERT INTO privacy.pseudonymization_key (fingerprint) VALUES (?)", [current])
    con.execute(_hmac_macro_sql(key))
