"""Asset metadata helpers: what the UI shows after a materialization."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dagster as dg
import duckdb

# The team that owns every asset of this code location (shown in the UI).
OWNER = "team:data-platform"


def table_metadata(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, dg.MetadataValue]:
    """Row count, column schema and location of a warehouse table (``schema.table``)."""
    schema, name = table.split(".", 1)
    columns = con.execute(
        """SELECT column_name, data_type, is_nullable = 'YES'
        FROM information_schema.columns
        WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?
        ORDER BY ordinal_position""",
        [schema, name],
    ).fetchall()
    row_count = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
    return {
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "dagster/table_name": dg.MetadataValue.text(table),
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        column, data_type, constraints=dg.TableColumnConstraints(nullable=nullable)
                    )
                    for column, data_type, nullable in columns
                ]
            )
        ),
    }


def markdown_table(rows: Sequence[Mapping[str, object]]) -> dg.MetadataValue:
    """A small Markdown table from a list of dicts with the same keys."""
    if not rows:
        return dg.MetadataValue.md("_none_")
    headers = list(rows[0])
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
        *("| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows),
    ]
    return dg.MetadataValue.md("\n".join(lines))
