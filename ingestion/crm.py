"""Copying CRM tables from any SQLAlchemy URL into ``raw.crm_<entity>``.

Raw CRM tables hold every column as text, exactly as the source returned it (typing is staging's
job, in dbt), so nothing is lost or coerced on the way in and SQLite, PostgreSQL or any other
source look the same downstream. Each table is a full snapshot, replaced atomically. The tables
and columns copied are the CRM contract, declared once in ``contracts/crm.toml``.
"""

from __future__ import annotations

import logging
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import sqlalchemy as sa

from privacy.suppression import suppression_condition

log = logging.getLogger(__name__)

CHUNK_ROWS = 100_000


@dataclass(frozen=True)
class CrmEntity:
    name: str  # customers / orders / consents
    required_columns: tuple[str, ...]
    optional_columns: tuple[str, ...]
    table_required: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required_columns + self.optional_columns

    @property
    def raw_table(self) -> str:
        return f"raw.crm_{self.name}"


def crm_engine(url: str) -> sa.Engine:
    """An engine on the CRM database. A SQLite URL must name an existing file: SQLite would
    silently create an empty database at a mistyped path, and every CRM table would be missing."""
    parsed = sa.engine.make_url(url)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and not in_memory and not Path(database).is_file():
        raise FileNotFoundError(
            f"CRM database {database} does not exist: check the path in SEGWH_CRM_URL (a SQLite "
            "URL is sqlite:///relative/path.db or sqlite:////absolute/path.db)"
        )
    return sa.create_engine(url)


CONTRACT_PATH = Path(__file__).parent / "contracts" / "crm.toml"
"""The CRM contract, the one declaration of the CRM tables and columns ingestion copies."""

with CONTRACT_PATH.open("rb") as _handle:
    _CONTRACT = tomllib.load(_handle)

CRM_ENTITIES: dict[str, CrmEntity] = {
    name: CrmEntity(
        name,
        required_columns=tuple(entity["required"]),
        optional_columns=tuple(entity.get("optional", ())),
        table_required=entity.get("table_required", True),
    )
    for name, entity in _CONTRACT["entities"].items()
}
LOADED_AT_COLUMN: str = _CONTRACT["load_columns"]["loaded_at"]
LOAD_ID_COLUMN: str = _CONTRACT["load_columns"]["load_id"]
"""Columns ingestion adds to every raw CRM row: when it was loaded, and by which run."""


class CrmSchemaError(ValueError):
    """The CRM database lacks a table or column the contract requires."""


@dataclass(frozen=True)
class CrmLoadResult:
    entity: str
    source_table: str
    raw_table: str
    rows: int
    missing_optional_columns: list[str]
    table_found: bool
    elapsed_seconds: float
    suppressed: int = 0  # rows of erased persons, not loaded


def _source_columns(inspector: sa.Inspector, table: str) -> dict[str, str] | None:
    """Map of lower-case column name -> actual name, or None when the table does not exist."""
    schema, _, name = table.rpartition(".")
    if not inspector.has_table(name, schema=schema or None):
        return None
    return {
        c["name"].lower(): c["name"] for c in inspector.get_columns(name, schema=schema or None)
    }


def _check_columns(
    entity: CrmEntity, source_table: str, columns: dict[str, str], url: str
) -> list[str]:
    missing = [c for c in entity.required_columns if c not in columns]
    if missing:
        raise CrmSchemaError(
            f"CRM table {source_table!r} at {url} lacks required column(s) "
            f"{', '.join(missing)} (found: {', '.join(sorted(columns.values()))})"
        )
    return [c for c in entity.optional_columns if c not in columns]


def load_crm_table(
    con: duckdb.DuckDBPyConnection,
    engine: sa.Engine | None,
    entity: CrmEntity,
    source_table: str,
    *,
    load_id: str,
) -> CrmLoadResult:
    """Copy one CRM table into its raw table (all columns as text); atomic replace. Without an
    engine (a deployment whose sources do not include a CRM) the raw table is created empty."""
    started = time.perf_counter()
    url = engine.url.render_as_string(hide_password=True) if engine else "(no CRM)"
    columns = _source_columns(sa.inspect(engine), source_table) if engine else {}
    missing_optional: list[str] = []
    if columns is None:
        if entity.table_required:
            raise CrmSchemaError(
                f"CRM table {source_table!r} ({entity.name}) not found at {url}; set its name "
                f"with SEGWH_CRM_{entity.name.upper()}_TABLE"
            )
        log.warning("optional CRM table %r not found at %s: loading it empty", source_table, url)
        columns = {}
    elif columns:
        missing_optional = _check_columns(entity, source_table, columns, url)
    if missing_optional:
        log.warning(
            "CRM table %r has no column(s) %s: loaded as NULL",
            source_table,
            ", ".join(missing_optional),
        )

    column_defs = ", ".join(f"{c} VARCHAR" for c in entity.columns)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _crm_chunk_target ({column_defs})")
        rows = 0
        if columns:
            present = [c for c in entity.columns if c in columns]
            schema, _, name = source_table.rpartition(".")
            query = sa.select(*(sa.column(columns[c]).label(c) for c in present)).select_from(
                sa.table(name, schema=schema or None)
            )
            import pandas as pd  # only here: the code location loads without pandas

            with engine.connect() as source:  # type: ignore[union-attr]  # columns came from it
                as_text = ", ".join(f"CAST({c} AS VARCHAR) AS {c}" for c in present)
                # Arrow-backed frames keep integers and decimals exact (no float coercion);
                # DuckDB renders every value as text.
                chunks = pd.read_sql(query, source, chunksize=CHUNK_ROWS, dtype_backend="pyarrow")
                for chunk in chunks:
                    con.register("_crm_chunk", chunk)
                    con.execute(
                        f"INSERT INTO _crm_chunk_target BY NAME SELECT {as_text} FROM _crm_chunk"
                    )
                    con.unregister("_crm_chunk")
                    rows += len(chunk)
        # rows of erased persons (privacy.suppressed_identifiers) are not loaded, only counted
        identifiers = ["trim(customer_id)"]
        if "email" in entity.columns:
            identifiers.append("lower(trim(email))")
        suppressed_if = suppression_condition(con, identifiers)
        suppressed = 0
        if suppressed_if:
            suppressed = con.execute(
                f"SELECT count(*) FROM _crm_chunk_target WHERE {suppressed_if}"
            ).fetchone()[0]
        con.execute(
            f"""CREATE OR REPLACE TABLE {entity.raw_table} AS
            SELECT *, now() AS {LOADED_AT_COLUMN}, ? AS {LOAD_ID_COLUMN} FROM _crm_chunk_target
            WHERE NOT ({suppressed_if or "false"})""",
            [load_id],
        )
        con.execute("DROP TABLE _crm_chunk_target")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    elapsed = time.perf_counter() - started
    log.info(
        "loaded %d rows from CRM %s into %s in %.1fs (%d of erased persons suppressed)",
        rows - suppressed,
        source_table,
        entity.raw_table,
        elapsed,
        suppressed,
    )
    return CrmLoadResult(
        entity=entity.name,
        source_table=source_table,
        raw_table=entity.raw_table,
        rows=rows - suppressed,
        suppressed=suppressed,
        missing_optional_columns=missing_optional,
        table_found=bool(columns),
        elapsed_seconds=elapsed,
    )
