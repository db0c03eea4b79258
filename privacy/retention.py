"""Raw-event retention: personal data in raw is kept for a bounded time.

Only raw holds personal data (ip, user agent, raw ids): staged events (pseudonymized, without
ip, user agent or properties) stay, because the identity graph and every incremental model are
rebuilt from them; cutting them would split persons.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

from warehouse.connection import table_exists

# table -> timestamp column compared with the retention cutoff
RETAINED_TABLES = {
    "raw.events": "occurred_at",
    "raw.rejected_events": "_loaded_at",
}


def retention_cutoff(as_of: datetime, retention_days: int) -> datetime:
    """Rows older than this are deleted; ``retention_days`` must be at least 1."""
    if retention_days < 1:
        raise ValueError(f"SEGWH_RAW_RETENTION_DAYS must be at least 1, got {retention_days}")
    return as_of - timedelta(days=retention_days)


def delete_expired_raw_rows(con: duckdb.DuckDBPyConnection, cutoff: datetime) -> dict[str, int]:
    """Delete raw rows older than ``cutoff`` in one transaction; rows deleted per table."""
    deleted: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")
    try:
        for table, column in RETAINED_TABLES.items():
            if table_exists(con, *table.split(".")):
                deleted[table] = con.execute(
                    f"DELETE FROM {table} WHERE {column} < ?::TIMESTAMPTZ", [cutoff]
                ).fetchone()[0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return deleted
