"""Comparing warehouse tables in tests."""

import duckdb


def rows_differing(con: duckdb.DuckDBPyConnection, left: str, right: str) -> int:
    """Rows in one relation and not the other, counted as multisets (EXCEPT ALL both ways);
    0 when both hold the same rows."""
    return con.execute(
        f"SELECT (SELECT count(*) FROM (FROM {left} EXCEPT ALL FROM {right})) "
        f"+ (SELECT count(*) FROM (FROM {right} EXCEPT ALL FROM {left}))"
    ).fetchone()[0]
