"""The one place where deployment configuration is read.

Every path, URL and the ``as_of`` clock come from environment variables with defaults that point
at the generated sample data under ``<project>/data``. Dagster resources are built from these
values (and can be overridden per run in the launchpad); dbt reads the same variables from the
environment, so ``load_settings()`` exports the resolved values for the dbt subprocess.

- SEGWH_DATA_DIR (default <project>/data): root folder for everything the project writes;
- SEGWH_LANDING_DIR ($SEGWH_DATA_DIR/sample/landing): landed event files (JSONL / Parquet);
- SEGWH_CRM_URL (sqlite:///$SEGWH_DATA_DIR/sample/crm.sqlite): SQLAlchemy URL of the CRM;
- SEGWH_CRM_CUSTOMERS_TABLE, _ORDERS_TABLE, _CONSENTS_TABLE (customers, orders, consents);
- SEGWH_WAREHOUSE_PATH ($SEGWH_DATA_DIR/warehouse.duckdb): the working DuckDB warehouse;
- SEGWH_DUCKDB_MEMORY_LIMIT (2GB): DuckDB memory limit for ingestion and dbt (it spills beyond);
- SEGWH_AS_OF (empty = when the run starts): ISO-8601 instant results are computed at;
- SEGWH_SERVING_DIR ($SEGWH_DATA_DIR/serving): the published DuckDB file and Parquet folder;
- SEGWH_SERVING_POSTGRES_URL (empty = off), SEGWH_SERVING_POSTGRES_SCHEMA (segments),
  SEGWH_SERVING_READER_ROLE (segwh_bi_reader): the published PostgreSQL schema for BI;
- SEGWH_NIGHTLY_CRON (0 2 * * *) and SEGWH_NIGHTLY_TIMEZONE (UTC): the nightly full build;
- SEGWH_SENSOR_INTERVAL_SECONDS (900): minimum interval of the landing-files sensor;
- SEGWH_MODELS_DIR ($SEGWH_DATA_DIR/models): churn model registry and clustering state;
- SEGWH_CHURN_AT_RISK_THRESHOLD (0.5): churn probability from which a person is at risk;
- SEGWH_PSEUDONYMIZATION_KEY (required, secret, never in the repository): the key of the keyed
  hash that pseudonymizes identifiers (privacy/pseudonyms.py); Dagster reads it
  as an EnvVar, so it is not held here;
- SEGWH_RAW_RETENTION_DAYS (730): raw events older than this many days before as_of are deleted.

Model tunables (k range, candidate models, drift thresholds, ...) live in ``ml/config.py``;
the segment, session and churn-label rules in ``dbt_project/dbt_project.yml`` and its seeds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from warehouse.connection import DEFAULT_MEMORY_LIMIT

PROJECT_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_DIR / "dbt_project"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    landing_dir: Path
    crm_url: str
    crm_customers_table: str
    crm_orders_table: str
    crm_consents_table: str
    warehouse_path: Path
    as_of: str

    @property
    def resolved_serving_dir(self) -> Path:
        return self.serving_dir or self.data_dir / "serving"

    duckdb_memory_limit: str = DEFAULT_MEMORY_LIMIT
    serving_dir: Path | None = None  # None: <data_dir>/serving
    serving_postgres_url: str = ""
    serving_postgres_schema: str = "segments"
    serving_reader_role: str = "segwh_bi_reader"
    nightly_cron: str = "0 2 * * *"
    nightly_timezone: str = "UTC"
    sensor_interval_seconds: int = 900
    models_dir: Path | None = None  # None: <data_dir>/models
    churn_at_risk_threshold: float = 0.5
    raw_retention_days: int = 730

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def load_settings() -> Settings:
    """Resolve the settings from the environment and export them for dbt subprocesses."""
    data_dir = _env_path("SEGWH_DATA_DIR", PROJECT_DIR / "data")
    settings = Settings(
        data_dir=data_dir,
        landing_dir=_env_path("SEGWH_LANDING_DIR", data_dir / "sample" / "landing"),
        crm_url=os.environ.get("SEGWH_CRM_URL", "").strip()
        or f"sqlite:///{data_dir / 'sample' / 'crm.sqlite'}",
        crm_customers_table=os.environ.get("SEGWH_CRM_CUSTOMERS_TABLE", "customers"),
        crm_orders_table=os.environ.get("SEGWH_CRM_ORDERS_TABLE", "orders"),
        crm_consents_table=os.environ.get("SEGWH_CRM_CONSENTS_TABLE", "consents"),
        warehouse_path=_env_path("SEGWH_WAREHOUSE_PATH", data_dir / "warehouse.duckdb"),
        as_of=os.environ.get("SEGWH_AS_OF", "").strip(),
        duckdb_memory_limit=os.environ.get("SEGWH_DUCKDB_MEMORY_LIMIT", "").strip()
        or DEFAULT_MEMORY_LIMIT,
        serving_dir=_env_path("SEGWH_SERVING_DIR", data_dir / "serving"),
        serving_postgres_url=os.environ.get("SEGWH_SERVING_POSTGRES_URL", "").strip(),
        serving_postgres_schema=os.environ.get("SEGWH_SERVING_POSTGRES_SCHEMA", "").strip()
        or Settings.serving_postgres_schema,
        serving_reader_role=os.environ.get("SEGWH_SERVING_READER_ROLE", "").strip()
        or Settings.serving_reader_role,
        nightly_cron=os.environ.get("SEGWH_NIGHTLY_CRON", "").strip() or Settings.nightly_cron,
        nightly_timezone=os.environ.get("SEGWH_NIGHTLY_TIMEZONE", "").strip()
        or Settings.nightly_timezone,
        sensor_interval_seconds=int(
            os.environ.get("SEGWH_SENSOR_INTERVAL_SECONDS", "").strip()
            or Settings.sensor_interval_seconds
        ),
        models_dir=_env_path("SEGWH_MODELS_DIR", data_dir / "models"),
        churn_at_risk_threshold=float(
            os.environ.get("SEGWH_CHURN_AT_RISK_THRESHOLD", "").strip()
            or Settings.churn_at_risk_threshold
        ),
        raw_retention_days=int(
            os.environ.get("SEGWH_RAW_RETENTION_DAYS", "").strip() or Settings.raw_retention_days
        ),
    )
    export_for_dbt(str(settings.warehouse_path), settings.duckdb_memory_limit)
    return settings


# What export_for_dbt sets: everything dbt reads from this process's environment.
DBT_ENVIRONMENT = (
    "SEGWH_WAREHOUSE_PATH",
    "SEGWH_DUCKDB_MEMORY_LIMIT",
    "SEGWH_DBT_AS_OF",
    "SEGWH_DBT_TESTED_LOAD_ID",
)


def export_for_dbt(
    warehouse_path: str,
    memory_limit: str,
    as_of: str | None = None,
    tested_load_id: str | None = None,
) -> None:
    """dbt's profiles.yml reads the warehouse path and memory limit, its as_of macro the as_of,
    its get_where_subquery macro the load whose events the event tests check (empty: every
    event); a dbt subprocess inherits this process's environment."""
    os.environ["SEGWH_WAREHOUSE_PATH"] = warehouse_path
    os.environ["SEGWH_DUCKDB_MEMORY_LIMIT"] = memory_limit
    if as_of is not None:
        os.environ["SEGWH_DBT_AS_OF"] = as_of
    if tested_load_id is not None:
        os.environ["SEGWH_DBT_TESTED_LOAD_ID"] = tested_load_id


def parse_as_of(value: str) -> datetime:
    """Parse an ISO-8601 ``as_of`` (``Z`` or offset; naive means UTC); empty means now."""
    if not value.strip():
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(
            f"as_of must be an ISO-8601 timestamp such as 2026-11-01T00:00:00Z, got {value!r}"
        ) from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
