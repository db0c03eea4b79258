"""Opening the DuckDB warehouse file.

DuckDB allows one read-write process or many read-only processes on a file, never both, so
every writer opens the file only for its step and closes it before dbt or a check opens it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

# DuckDB's default is 80% of RAM; a bounded limit makes it spill to disk instead.
DEFAULT_MEMORY_LIMIT = "2GB"


def session_settings(memory_limit: str | None = None) -> dict[str, str]:
    """The DuckDB settings of every session on the warehouse: this module's connections, dbt's
    (profiles.yml, through ``settings.dbt_environment``) and the expectation checks'. Timestamps
    with time zone are shown and cast in UTC; memory is bounded (DuckDB spills beyond)."""
    return {"TimeZone": "UTC", "memory_limit": memory_limit or DEFAULT_MEMORY_LIMIT}


# Set up every session this module opens (e.g. privacy.pseudonyms registers the TEMP
# pseudonymization macro that staging views call: a session object, never stored in the file).
_SESSION_SETUPS: list[Callable[[duckdb.DuckDBPyConnection], None]] = []


def on_every_session(setup: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
    """Run ``setup`` on every connection ``connect`` opens from now on (once per function)."""
    if setup not in _SESSION_SETUPS:
        _SESSION_SETUPS.append(setup)


def compaction_copy_path(path: Path) -> Path:
    """Where ``warehouse.compaction.compact`` writes the fresh copy before it swaps it in."""
    return path.with_name(f".{path.name}.compacting.tmp")


@contextmanager
def connect(
    path: Path | str, *, read_only: bool = False, memory_limit: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse with the project's session settings; closed on exit."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a copy a killed compaction left (it holds personal data): the writer deletes it
        copy = compaction_copy_path(path)
        for debris in (copy, copy.with_name(f"{copy.name}.wal")):
            debris.unlink(missing_ok=True)
    elif not path.exists():
        raise FileNotFoundError(f"DuckDB warehouse {path} does not exist yet: run ingestion first")
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        for name, value in session_settings(memory_limit).items():
            con.execute(f"SET {name} = '{value}'")
        for setup in _SESSION_SETUPS:
            setup(con)
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """A base table ``schema.table`` exists in the connection's current database."""
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = ? AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def table_row_counts(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> dict[str, int]:
    """Exact row counts of every table (not view) in the given schemas, keyed ``schema.table``."""
    placeholders = ", ".join("?" for _ in schemas)
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        f"WHERE database_name = current_database() AND schema_name IN ({placeholders}) "
        "ORDER BY 1, 2",
        list(schemas),
    ).fetchall()
    return {
        f"{schema}.{table}": con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
        for schema, table in tables
    }
