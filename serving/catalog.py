"""What is published for BI tools, and how it is documented.

``published_tables.toml`` beside this module is the one list of published tables, with each
table's primary key and indexes (PostgreSQL). ``TableDoc`` is a table's documentation as the
publish writes it into every output (comments, Parquet metadata) and the data dictionary
renders it; it is filled by the layer that knows where each table is built (orchestration: the
dbt manifest and ``ml/schemas.py``), since serving imports neither dbt nor ml.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

PUBLISHED_TABLES_FILE = Path(__file__).with_name("published_tables.toml")


@dataclass(frozen=True)
class PublishedTable:
    """One entry of the list: ``name`` is schema.table in the warehouse."""

    name: str
    primary_key: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def published_name(self) -> str:
        """``marts.segment_sizes`` -> ``segment_sizes`` in the outputs' flat namespace."""
        return self.name.split(".", 1)[-1]


@dataclass(frozen=True)
class ColumnDoc:
    name: str
    data_type: str
    description: str


@dataclass(frozen=True)
class TableDoc:
    description: str
    columns: tuple[ColumnDoc, ...] = field(default_factory=tuple)

    def column_descriptions(self) -> dict[str, str]:
        """Column name -> description, documented columns only."""
        return {c.name: c.description for c in self.columns if c.description.strip()}


def load_published_tables(path: Path | None = None) -> tuple[PublishedTable, ...]:
    """The list in ``path`` (default: ``published_tables.toml``), in its order; a malformed
    entry raises ValueError naming it."""
    path = path or PUBLISHED_TABLES_FILE
    with path.open("rb") as handle:
        entries = tomllib.load(handle).get("table", [])
    tables: list[PublishedTable] = []
    for entry in entries:
        name = entry.get("name", "")
        unknown = set(entry) - {"name", "primary_key", "indexes"}
        if name.count(".") != 1 or unknown:
            raise ValueError(
                f"{path}: entry {entry!r}: expected name = 'schema.table' and only "
                "primary_key and indexes besides"
            )
        tables.append(
            PublishedTable(
                name,
                tuple(entry.get("primary_key", ())),
                tuple(tuple(index) for index in entry.get("indexes", ())),
            )
        )
    published = [t.published_name for t in tables]
    duplicates = sorted({n for n in published if published.count(n) > 1})
    if duplicates:
        raise ValueError(f"{path}: published twice under the same name: {duplicates}")
    return tuple(tables)


def warehouse_columns(
    con: duckdb.DuckDBPyConnection, listed: Sequence[PublishedTable]
) -> tuple[dict[str, list[str]], list[str]]:
    """(schema.table -> column names, for every listed table the warehouse on ``con`` has;
    the listed tables it lacks). A missing table is not an error: the publish leaves it out
    and warns (a model renamed or not built yet), so the other tables are still published.
    """
    names = [table.name for table in listed]
    columns: dict[str, list[str]] = {}
    for schema, table, column in con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() "
        "AND list_contains(?, schema_name || '.' || table_name) ORDER BY column_index",
        [names],
    ).fetchall():
        columns.setdefault(f"{schema}.{table}", []).append(column)
    present = {name: columns[name] for name in names if name in columns}
    return present, [name for name in names if name not in columns]


def undocumented(
    tables: Iterable[str], columns: Mapping[str, Iterable[str]], docs: Mapping[str, TableDoc]
) -> list[str]:
    """``table`` or ``table.column`` for every table (of ``tables``) and column (``columns``:
    table -> its column names) without a description in ``docs``."""
    missing: list[str] = []
    for table in tables:
        doc = docs.get(table)
        if doc is None or not doc.description.strip():
            missing.append(table)
        described = doc.column_descriptions() if doc else {}
        missing.extend(f"{table}.{c}" for c in columns.get(table, ()) if c not in described)
    return missing
