"""The tables the ml package writes: the one declaration of their columns and DuckDB types.

The Dagster assets create these tables from this declaration (``create_table_sql``), and so
does anything that builds the dbt project without running them (dbt reads ``ml.churn_scores``
as the declared source ``source('ml', 'churn_scores')``, whose columns are not listed again).
"""

from __future__ import annotations

CHURN_SCORES_TABLE = "ml.churn_scores"

CHURN_SCORE_COLUMNS: dict[str, str] = {
    "person_id": "VARCHAR",
    "churn_probability": "DOUBLE",
    "risk_band": "VARCHAR",
    "is_at_risk": "BOOLEAN",
    "model_version": "VARCHAR",
    "as_of": "TIMESTAMP",
}
"""One row per scored person (``ml.churn.score_churn``); every column is NOT NULL."""


def create_table_sql(table: str, columns: dict[str, str], *, replace: bool = True) -> str:
    """``CREATE OR REPLACE TABLE`` (or ``CREATE TABLE IF NOT EXISTS`` with ``replace=False``)
    with ``columns`` (name -> DuckDB type), every column NOT NULL, and its schema if missing."""
    schema = table.split(".", 1)[0]
    create = "CREATE OR REPLACE TABLE" if replace else "CREATE TABLE IF NOT EXISTS"
    body = ",\n    ".join(f"{name} {type_} NOT NULL" for name, type_ in columns.items())
    return f"CREATE SCHEMA IF NOT EXISTS {schema};\n{create} {table} (\n    {body}\n);"
