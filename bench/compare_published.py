"""Compare two published DuckDB files (``<serving>/segments.duckdb``) table by table.

    .venv/bin/python bench/compare_published.py OLD.duckdb NEW.duckdb [--ignore-column NAME]

For a refactoring that must not change results: run the same input at the same as_of with the
same pseudonymization key before and after, then compare. Rows are compared as multisets (EXCEPT
ALL both ways), so row order does not matter; ``publish_version`` and the columns named with
``--ignore-column`` (default: ``model_version``, which names the training time of the model)
are left out. Exits 1 when any table differs, is missing or has other columns.
"""

from __future__ import annotations

import argparse
import sys

import duckdb

DEFAULT_IGNORED = ("model_version",)
SKIPPED_TABLES = ("publish_version",)


def _tables(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT table_name, list(column_name ORDER BY column_index) FROM duckdb_columns() "
        "WHERE database_name = ? GROUP BY table_name",
        [database],
    ).fetchall()
    return {table: columns for table, columns in rows if table not in SKIPPED_TABLES}


def compare(old: str, new: str, ignored: tuple[str, ...]) -> list[tuple[str, str]]:
    """(table, verdict) for every table of either file; verdict ``identical (N rows)`` or why
    not."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
    con.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
    old_tables, new_tables = _tables(con, "old"), _tables(con, "new")
    verdicts = []
    for table in sorted(old_tables.keys() | new_tables.keys()):
        if table not in new_tables or table not in old_tables:
            verdicts.append((table, "only in " + ("old" if table in old_tables else "new")))
            continue
        if old_tables[table] != new_tables[table]:
            verdicts.append((table, f"columns differ: {old_tables[table]} vs {new_tables[table]}"))
            continue
        columns = ", ".join(f'"{c}"' for c in old_tables[table] if c not in ignored)
        old_rows = f'SELECT {columns} FROM old."{table}"'
        new_rows = f'SELECT {columns} FROM new."{table}"'
        (missing,) = con.execute(
            f"SELECT count(*) FROM ({old_rows} EXCEPT ALL {new_rows})"
        ).fetchone()
        (added,) = con.execute(
            f"SELECT count(*) FROM ({new_rows} EXCEPT ALL {old_rows})"
        ).fetchone()
        (rows,) = con.execute(f'SELECT count(*) FROM old."{table}"').fetchone()
        verdicts.append(
            (
                table,
                f"identical ({rows} rows)"
                if missing == added == 0
                else f"DIFFERENT: {missing} rows only in old, {added} only in new",
            )
        )
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--ignore-column", action="append", default=None)
    args = parser.parse_args(argv)
    ignored = tuple(args.ignore_column) if args.ignore_column is not None else DEFAULT_IGNORED
    verdicts = compare(args.old, args.new, ignored)
    for table, verdict in verdicts:
        print(f"{table:<32} {verdict}")
    same = all(verdict.startswith("identical") for _, verdict in verdicts)
    summary = "all identical" if same else "DIFFERENCES"
    print(f"{len(verdicts)} tables: {summary} (ignored columns: {', '.join(ignored) or 'none'})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
