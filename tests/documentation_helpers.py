"""Reading the documentation back from each published output, as a BI client would: one dict
``{"table": comment, "table.column": comment}`` per output (None where there is none)."""

import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import sqlalchemy as sa

from serving.catalog import TableDoc
from serving.publish import PARQUET_COLUMN_DESCRIPTIONS_KEY, PARQUET_DESCRIPTION_KEY


def expected_comments(docs: dict[str, TableDoc]) -> dict[str, str | None]:
    """What the outputs should say for ``docs`` (keys: published table names, no schema)."""
    expected: dict[str, str | None] = {}
    for name, doc in docs.items():
        table = name.split(".", 1)[-1]
        expected[table] = doc.description or None
        expected.update({f"{table}.{c.name}": c.description or None for c in doc.columns})
    return expected


def duckdb_comments(path: Path) -> dict[str, str | None]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute(
            "SELECT table_name, comment FROM duckdb_tables() WHERE database_name = "
            "current_database()"
        ).fetchall()
        columns = con.execute(
            "SELECT table_name || '.' || column_name, comment FROM duckdb_columns() "
            "WHERE database_name = current_database()"
        ).fetchall()
    return {name: comment or None for name, comment in [*tables, *columns]}


def postgres_comments(engine: sa.Engine, schema: str) -> dict[str, str | None]:
    with engine.connect() as pg:
        rows = pg.exec_driver_sql(
            "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s "
            "AND c.relkind = 'r' "
            "UNION ALL "
            "SELECT c.relname || '.' || a.attname, col_description(c.oid, a.attnum) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE n.nspname = %s AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped",
            (schema, schema),
        ).all()
    return {name: comment or None for name, comment in rows}


def parquet_comments(folder: Path) -> dict[str, str | None]:
    """From the key-value metadata of every Parquet file in ``folder`` (pyarrow)."""
    comments: dict[str, str | None] = {}
    for path in sorted(folder.glob("*.parquet")):
        table = path.stem
        metadata = pq.read_metadata(path).metadata or {}
        described = json.loads(metadata.get(PARQUET_COLUMN_DESCRIPTIONS_KEY.encode(), b"{}"))
        comments[table] = metadata.get(PARQUET_DESCRIPTION_KEY.encode(), b"").decode() or None
        for column in pq.read_schema(path).names:
            comments[f"{table}.{column}"] = described.get(column) or None
    return comments


def postgres_keys(engine: sa.Engine, schema: str) -> dict[str, list[list[str]]]:
    """table -> ["pk", columns...] and ["index", columns...] entries, in PostgreSQL's catalog."""
    with engine.connect() as pg:
        rows = pg.exec_driver_sql(
            "SELECT t.relname, CASE WHEN i.indisprimary THEN 'pk' ELSE 'index' END, "
            "array_agg(a.attname::text ORDER BY k.ordinality) "
            "FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ordinality) "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE n.nspname = %s GROUP BY t.relname, i.indexrelid, i.indisprimary",
            (schema,),
        ).all()
    keys: dict[str, list[list[str]]] = {}
    for table, kind, columns in rows:
        keys.setdefault(table, []).append([kind, *columns])
    return {table: sorted(entries) for table, entries in keys.items()}


def published_expectation(with_version: bool = True) -> dict[str, str | None]:
    """What the outputs of a real publish should say: the documentation of every listed table
    that this version builds (dbt manifest, ml/schemas.py), and of publish_version."""
    from orchestration.documentation import table_documentation
    from serving.catalog import load_published_tables
    from serving.publish import PUBLISH_VERSION_DOC

    docs = table_documentation()
    listed = {t.name: docs[t.name] for t in load_published_tables() if t.name in docs}
    if with_version:
        listed["serving.publish_version"] = PUBLISH_VERSION_DOC
    return expected_comments(listed)


def assert_documented_as_declared(comments: dict[str, str | None], expected) -> None:
    """Exactly the expected tables; each table and column says what its declaration says; every
    table, and every column of the ML tables and publish_version, has a non-empty comment."""
    assert {k for k in comments if "." not in k} == {k for k in expected if "." not in k}
    differing = {k: (comments.get(k), v) for k, v in expected.items() if comments.get(k) != v}
    assert differing == {}
    declared_in_python = ("churn_scores", "person_clusters", "cluster_profiles", "publish_version")
    empty = [
        k
        for k, v in comments.items()
        if not v and ("." not in k or k.split(".", 1)[0] in declared_in_python)
    ]
    assert empty == []
