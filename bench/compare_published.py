"""Compare two published DuckDB files (``<serving>/segments.duckdb``) table by table.

    .venv/bin/python bench/compare_published.py OLD.duckdb NEW.duckdb \
        [--ignore-column NAME ...] [--rename [TABLE.]OLD_NAME=NEW_NAME ...]

For a change that must not alter results: run the same input at the same as_of with the same
pseudonymization key before and after, then compare. Rows are compared as multisets (EXCEPT ALL
both ways, so row order does not matter) on the columns both files have, a column renamed by
the change (``--rename``, in every table or only in the one named) counting as one; a column
only one side has is reported. Left out:
the ``publish_version`` table and the ``--ignore-column`` columns (default ``model_version``,
which names the training time of the churn model). Exits 1 when any rows differ or a table is
missing on one side.
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


def compare(
    old: str, new: str, ignored: tuple[str, ...], renamed: dict[str, str]
) -> list[tuple[str, bool, str]]:
    """(table, same, verdict) for every table of either file."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{old}' AS old (READ_ONLY)")
    con.execute(f"ATTACH '{new}' AS new (READ_ONLY)")
    old_tables, new_tables = _tables(con, "old"), _tables(con, "new")
    verdicts = []
    for table in sorted(old_tables.keys() | new_tables.keys()):
        if table not in new_tables or table not in old_tables:
            side = "old" if table in old_tables else "new"
            verdicts.append((table, False, f"only in {side}"))
            continue
        new_columns = set(new_tables[table])
        names = {
            **{k: v for k, v in renamed.items() if "." not in k},
            **{k.split(".", 1)[1]: v for k, v in renamed.items() if k.startswith(f"{table}.")},
        }
        pairs = [
            (column, names.get(column, column))
            for column in old_tables[table]
            if column not in ignored and names.get(column, column) in new_columns
        ]
        old_columns = ", ".join(f'"{o}"' for o, _ in pairs)
        new_columns_sql = ", ".join(f'"{n}"' for _, n in pairs)
        old_rows = f'SELECT {old_columns} FROM old."{table}"'
        new_rows = f'SELECT {new_columns_sql} FROM new."{table}"'
        (missing,) = con.execute(
            f"SELECT count(*) FROM ({old_rows} EXCEPT ALL {new_rows})"
        ).fetchone()
        (added,) = con.execute(
            f"SELECT count(*) FROM ({new_rows} EXCEPT ALL {old_rows})"
        ).fetchone()
        (rows,) = con.execute(f'SELECT count(*) FROM old."{table}"').fetchone()
        notes = [f"{o} -> {n}" for o, n in pairs if o != n]
        only_old = [
            c for c in old_tables[table] if c not in ignored and (c, names.get(c, c)) not in pairs
        ]
        only_new = sorted(new_columns - {n for _, n in pairs} - set(ignored))
        notes += [f"column only in old: {c}" for c in only_old]
        notes += [f"column only in new: {c}" for c in only_new]
        same = missing == added == 0
        verdict = (
            f"identical rows ({rows})"
            if same
            else f"DIFFERENT: {missing} rows only in old, {added} only in new"
        )
        verdicts.append((table, same, verdict + (f" [{'; '.join(notes)}]" if notes else "")))
    return verdicts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--ignore-column", action="append", default=None)
    parser.add_argument("--rename", action="append", default=[], help="[TABLE.]OLD_NAME=NEW_NAME")
    args = parser.parse_args(argv)
    ignored = tuple(args.ignore_column) if args.ignore_column is not None else DEFAULT_IGNORED
    renamed = dict(pair.split("=", 1) for pair in args.rename)
    verdicts = compare(args.old, args.new, ignored, renamed)
    for table, _, verdict in verdicts:
        print(f"{table:<28} {verdict}")
    same = all(same for _, same, _ in verdicts)
    summary = "all rows identical" if same else "DIFFERENCES"
    print(f"{len(verdicts)} tables: {summary} (ignored columns: {', '.join(ignored) or 'none'})")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
