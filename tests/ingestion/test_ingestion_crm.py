"""CRM ingestion from SQLite and from the PostgreSQL server on loopback."""

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from ingestion.crm import CRM_ENTITIES, CrmSchemaError, crm_engine, load_crm_table
from warehouse.connection import connect

CUSTOMERS_DDL = """CREATE TABLE {schema}customers (
    customer_id VARCHAR(20) PRIMARY KEY, email VARCHAR(100), first_name VARCHAR(50),
    last_name VARCHAR(50), phone VARCHAR(30), country VARCHAR(2), city VARCHAR(50),
    birth_year INTEGER, income_bracket VARCHAR(20), education VARCHAR(20),
    signup_at TIMESTAMP, loyalty_tier VARCHAR(10), updated_at TIMESTAMP)"""
ORDERS_DDL = """CREATE TABLE {schema}orders (
    order_id VARCHAR(20) PRIMARY KEY, customer_id VARCHAR(20), ordered_at TIMESTAMP,
    total_amount NUMERIC(12, 2), currency VARCHAR(3), status VARCHAR(20), items_count INTEGER)"""
ROWS = {
    "customers": [
        {
            "customer_id": "C1",
            "email": "ann.lee@example.com",
            "birth_year": 1980,
            "signup_at": "2025-01-02 03:04:05",
            "loyalty_tier": "gold",
        },
        {
            "customer_id": "C2",
            "email": None,
            "birth_year": None,
            "signup_at": None,
            "loyalty_tier": None,
        },
    ],
    "orders": [
        {
            "order_id": "O1",
            "customer_id": "C1",
            "ordered_at": "2026-10-01 10:00:00",
            "total_amount": "12.50",
            "currency": "EUR",
            "status": "completed",
            "items_count": 2,
        },
    ],
}


def _create_crm(engine: sa.Engine, schema: str | None = None) -> None:
    prefix = f"{schema}." if schema else ""
    with engine.begin() as con:
        con.execute(sa.text(CUSTOMERS_DDL.format(schema=prefix)))
        con.execute(sa.text(ORDERS_DDL.format(schema=prefix)))
        for entity, rows in ROWS.items():
            table = sa.table(entity, *(sa.column(c) for c in rows[0]), schema=schema)
            con.execute(sa.insert(table), rows)


def _load(warehouse: Path, engine: sa.Engine, entity: str, source_table: str | None = None):
    with connect(warehouse) as con:
        return load_crm_table(
            con, engine, CRM_ENTITIES[entity], source_table or entity, load_id="test"
        )


def _rows(warehouse: Path, sql: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture
def sqlite_engine(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    _create_crm(engine)
    yield engine
    engine.dispose()


def _assert_loaded_exactly(warehouse: Path) -> None:
    assert _rows(
        warehouse,
        "SELECT customer_id, email, birth_year, loyalty_tier FROM raw.crm_customers ORDER BY 1",
    ) == [("C1", "ann.lee@example.com", "1980", "gold"), ("C2", None, None, None)]
    ((amount, ordered_at, items),) = _rows(
        warehouse, "SELECT total_amount, ordered_at, items_count FROM raw.crm_orders"
    )
    assert (float(amount), items) == (12.5, "2")
    assert ordered_at.startswith("2026-10-01") and "10:00:00" in ordered_at


def test_sqlite_tables_are_copied_as_text(tmp_path, sqlite_engine):
    warehouse = tmp_path / "w.duckdb"
    results = [_load(warehouse, sqlite_engine, entity) for entity in ("customers", "orders")]

    assert [r.rows for r in results] == [2, 1]
    _assert_loaded_exactly(warehouse)


def test_reload_replaces_the_snapshot_instead_of_appending(tmp_path, sqlite_engine):
    warehouse = tmp_path / "w.duckdb"
    _load(warehouse, sqlite_engine, "customers")
    with sqlite_engine.begin() as con:
        con.execute(sa.text("DELETE FROM customers WHERE customer_id = 'C2'"))
    _load(warehouse, sqlite_engine, "customers")

    assert _rows(warehouse, "SELECT customer_id FROM raw.crm_customers") == [("C1",)]


def test_missing_table_error_names_it(tmp_path, sqlite_engine):
    with pytest.raises(CrmSchemaError, match=r"'clients' \(customers\) not found"):
        _load(tmp_path / "w.duckdb", sqlite_engine, "customers", source_table="clients")


def test_missing_required_column_error_names_it(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    with engine.begin() as con:
        con.execute(sa.text("CREATE TABLE orders (order_id TEXT, customer_id TEXT)"))
    with pytest.raises(CrmSchemaError, match=r"lacks required column.*ordered_at, total_amount"):
        _load(tmp_path / "w.duckdb", engine, "orders")


def test_missing_optional_column_and_optional_table_load_as_null_and_empty(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    with engine.begin() as con:
        con.execute(sa.text("CREATE TABLE customers (customer_id TEXT, email TEXT)"))
        con.execute(sa.text("INSERT INTO customers VALUES ('C9', 'x@example.com')"))
    warehouse = tmp_path / "w.duckdb"

    customers = _load(warehouse, engine, "customers")
    consents = _load(warehouse, engine, "consents")

    assert "phone" in customers.missing_optional_columns
    assert _rows(warehouse, "SELECT customer_id, phone FROM raw.crm_customers") == [("C9", None)]
    assert (consents.table_found, consents.rows) == (False, 0)
    assert _rows(warehouse, "SELECT count(*) FROM raw.crm_consents") == [(0,)]


@pytest.mark.postgres
def test_postgresql_tables_load_the_same(tmp_path, postgres_url):
    engine = sa.create_engine(postgres_url)
    schema = f"crm_{uuid.uuid4().hex[:8]}"
    with engine.begin() as con:
        con.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        _create_crm(engine, schema)
        warehouse = tmp_path / "w.duckdb"
        for entity in ("customers", "orders"):
            _load(warehouse, engine, entity, source_table=f"{schema}.{entity}")
        _assert_loaded_exactly(warehouse)
    finally:
        with engine.begin() as con:
            con.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def test_a_mistyped_sqlite_path_is_an_error_not_an_empty_crm(tmp_path):
    """SQLite creates an empty database at any path it is given: a typo in SEGWH_CRM_URL made
    every CRM table look missing. The engine now refuses a path that does not exist."""
    existing = tmp_path / "crm.db"
    sa.create_engine(f"sqlite:///{existing}").connect().close()
    mistyped = tmp_path / "crm-typo.db"

    with pytest.raises(FileNotFoundError, match=r"crm-typo.db does not exist.*SEGWH_CRM_URL"):
        crm_engine(f"sqlite:///{mistyped}")
    assert not mistyped.exists()
    assert crm_engine(f"sqlite:///{existing}").dialect.name == "sqlite"
    assert crm_engine("sqlite://").dialect.name == "sqlite"  # in memory: nothing to mistype
