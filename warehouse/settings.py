"""Deployment settings: every environment variable the project reads, declared once.

``ENVIRONMENT_VARIABLES`` is the index (name, default, meaning); ``load_settings()`` resolves
them into ``Settings``; `segwh config` prints each effective value and where it came from, next
to the other kinds of settings (dbt vars and seeds, ML tunables in ``ml/config.py``, Dagster run
config in the launchpad). The defaults point at the generated sample data under
``<project>/data``. Dagster resources are built from these values (orchestration/resources.py);
dbt reads the values of one run from the environment of its process (``dbt_environment``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from warehouse.connection import DEFAULT_MEMORY_LIMIT, session_settings

PROJECT_DIR = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR_VARIABLE = "SEGWH_DBT_PROJECT_DIR"
# The dbt project this process builds: the code location's assets come from its manifest.
DBT_PROJECT_DIR = Path(
    os.environ.get(DBT_PROJECT_DIR_VARIABLE, "").strip() or PROJECT_DIR / "dbt_project"
).resolve()


def _path(value: str) -> Path:
    return Path(value).expanduser().resolve()


SOURCES = ("events", "crm")
"""The kinds of source data a deployment may have: landed event files and a CRM database."""


def _sources(value: str) -> tuple[str, ...]:
    """``events,crm`` (both), ``events`` (no CRM) or ``crm`` (no clickstream)."""
    given = tuple(dict.fromkeys(part.strip().lower() for part in value.split(",") if part.strip()))
    unknown = [part for part in given if part not in SOURCES]
    if unknown or not given:
        raise ValueError(
            f"SEGWH_SOURCES={value!r}: expected a comma-separated list of {', '.join(SOURCES)} "
            "(e.g. 'events,crm', 'events' for a clickstream without a CRM, 'crm' for order "
            "history without a clickstream)"
        )
    return given


@dataclass(frozen=True)
class EnvironmentVariable:
    name: str
    field: str  # of Settings
    default: str  # as documented; <project> and $SEGWH_DATA_DIR are expanded; empty: none
    meaning: str
    secret: bool = False
    parse: Callable[[str], object] = str


# read by Dagster from the environment at run time (it may hold a password)
ONLINE_REDIS_URL_VARIABLE = "SEGWH_ONLINE_REDIS_URL"
CRM_URL_VARIABLE = "SEGWH_CRM_URL"
POSTGRES_URL_VARIABLE = "SEGWH_SERVING_POSTGRES_URL"

ENVIRONMENT_VARIABLES = (
    EnvironmentVariable(
        "SEGWH_DATA_DIR",
        "data_dir",
        "<project>/data",
        "root folder for everything the project writes",
        parse=_path,
    ),
    EnvironmentVariable(
        "SEGWH_LANDING_DIR",
        "landing_dir",
        "$SEGWH_DATA_DIR/sample/landing",
        "folder of landed event files (JSONL / Parquet), searched recursively",
        parse=_path,
    ),
    EnvironmentVariable(
        "SEGWH_SOURCES",
        "sources",
        "events,crm",
        "the sources this deployment has: `events,crm`, `events` (clickstream only: order "
        "features come from purchase events) or `crm` (orders only: no sessions); a source not "
        "listed is not read and its minimum-row checks do not apply",
        parse=_sources,
    ),
    EnvironmentVariable(
        CRM_URL_VARIABLE,
        "crm_url",
        "sqlite:///$SEGWH_DATA_DIR/sample/crm.sqlite",
        "SQLAlchemy URL of the CRM database",
    ),
    EnvironmentVariable(
        "SEGWH_CRM_CUSTOMERS_TABLE", "crm_customers_table", "customers", "CRM customers table"
    ),
    EnvironmentVariable("SEGWH_CRM_ORDERS_TABLE", "crm_orders_table", "orders", "CRM orders table"),
    EnvironmentVariable(
        "SEGWH_CRM_CONSENTS_TABLE",
        "crm_consents_table",
        "consents",
        "CRM consents table (optional; `schema.table` allowed for every CRM table)",
    ),
    EnvironmentVariable(
        "SEGWH_WAREHOUSE_PATH",
        "warehouse_path",
        "$SEGWH_DATA_DIR/warehouse.duckdb",
        "the working DuckDB warehouse file (one writer; BI tools never open it)",
        parse=_path,
    ),
    EnvironmentVariable(
        DBT_PROJECT_DIR_VARIABLE,
        "dbt_project_dir",
        "<project>/dbt_project",
        "the dbt project runs build: its seeds are the editable rules (event taxonomy, segments, "
        "exchange rates, ...) and its vars the business rules; point it at your own copy of "
        "dbt_project/ to keep them outside this checkout (models must keep their names)",
        parse=_path,
    ),
    EnvironmentVariable(
        "SEGWH_AS_OF",
        "as_of",
        "",
        "ISO-8601 instant results are computed at; empty: the start of each run",
    ),
    EnvironmentVariable(
        "SEGWH_DUCKDB_MEMORY_LIMIT",
        "duckdb_memory_limit",
        DEFAULT_MEMORY_LIMIT,
        "DuckDB memory limit for ingestion, dbt and checks (DuckDB spills to disk beyond it)",
    ),
    EnvironmentVariable(
        "SEGWH_SERVING_DIR",
        "serving_dir",
        "$SEGWH_DATA_DIR/serving",
        "the published DuckDB file and Parquet folder that BI tools read",
        parse=_path,
    ),
    EnvironmentVariable(
        "SEGWH_SERVING_DUCKDB_STORAGE_VERSION",
        "serving_duckdb_storage_version",
        "v1.4.0",
        "DuckDB storage version of the published DuckDB file: v1.4.0 opens in DuckDB 1.4 and "
        "later, the 1.x drivers of BI tools included; empty: this DuckDB's own (2.x clients only)",
    ),
    EnvironmentVariable(
        POSTGRES_URL_VARIABLE,
        "serving_postgres_url",
        "",
        "SQLAlchemy URL of a PostgreSQL database to publish to as well; empty: off",
        secret=True,  # may hold a password
    ),
    EnvironmentVariable(
        "SEGWH_SERVING_POSTGRES_SCHEMA",
        "serving_postgres_schema",
        "segments",
        "published PostgreSQL schema",
    ),
    EnvironmentVariable(
        "SEGWH_SERVING_READER_ROLE",
        "serving_reader_role",
        "segwh_bi_reader",
        "PostgreSQL role (NOLOGIN) granted read access to the published schema",
    ),
    EnvironmentVariable(
        ONLINE_REDIS_URL_VARIABLE,
        "online_redis_url",
        "",
        "Redis URL of the online profile store (e.g. redis://127.0.0.1:6379/0), loaded after "
        "every publish and read by the API (`segwh serve`); empty: off",
        secret=True,  # may hold a password
    ),
    EnvironmentVariable(
        "SEGWH_ONLINE_REDIS_PREFIX",
        "online_redis_prefix",
        "segwh",
        "prefix of every key the online profile store writes in Redis",
    ),
    EnvironmentVariable(
        "SEGWH_ONLINE_GRACE_SECONDS",
        "online_grace_seconds",
        "300",
        "seconds a replaced version of the online store stays readable (pages of segment "
        "members being read), then expires",
        parse=int,
    ),
    EnvironmentVariable(
        "SEGWH_API_HOST", "api_host", "127.0.0.1", "address the online API (`segwh serve`) binds"
    ),
    EnvironmentVariable("SEGWH_API_PORT", "api_port", "8000", "port of the online API", parse=int),
    EnvironmentVariable(
        "SEGWH_NIGHTLY_CRON", "nightly_cron", "0 2 * * *", "cron schedule of the nightly full build"
    ),
    EnvironmentVariable(
        "SEGWH_NIGHTLY_TIMEZONE", "nightly_timezone", "UTC", "time zone of the nightly schedule"
    ),
    EnvironmentVariable(
        "SEGWH_SENSOR_INTERVAL_SECONDS",
        "sensor_interval_seconds",
        "900",
        "minimum interval of the landing-files sensor",
        parse=int,
    ),
    EnvironmentVariable(
        "SEGWH_MODELS_DIR",
        "models_dir",
        "$SEGWH_DATA_DIR/models",
        "churn model registry and clustering state",
        parse=_path,
    ),
    EnvironmentVariable(
        "SEGWH_CHURN_AT_RISK_THRESHOLD",
        "churn_at_risk_threshold",
        "",
        "churn probability from which a person is at risk; empty: ChurnConfig.at_risk_rule in "
        "ml/config.py (default: the top ChurnConfig.at_risk_top_share of scored persons)",
        parse=float,
    ),
    EnvironmentVariable(
        "SEGWH_RAW_RETENTION_DAYS",
        "raw_retention_days",
        "730",
        "raw events older than this many days before as_of are deleted nightly",
        parse=int,
    ),
    EnvironmentVariable(
        "SEGWH_PSEUDONYMIZATION_KEY",
        "",  # read by Dagster as an EnvVar (privacy/pseudonyms.py), never held in Settings
        "",
        "required secret key of the keyed hash that pseudonymizes identifiers",
        secret=True,
    ),
    EnvironmentVariable(
        "SEGWH_BROKER_URL",
        "broker_url",
        "redis://127.0.0.1:6379/0",
        "Redis URL of the event stream between the collector, the landing-file writer and the "
        "stream consumer (warehouse/broker.py)",
        secret=True,  # may hold a password
    ),
    EnvironmentVariable(
        "SEGWH_BROKER_STREAM",
        "broker_stream",
        "segwh:events",
        "name of the event stream (one entry per accepted collector request)",
    ),
    EnvironmentVariable(
        "SEGWH_COLLECTOR_WRITE_KEYS",
        "collector_write_keys",
        "",
        "comma-separated write keys the collector accepts (the SDKs' writeKey); required by "
        "`segwh collect`",
        secret=True,
        parse=lambda value: tuple(k.strip() for k in value.split(",") if k.strip()),
    ),
    EnvironmentVariable(
        "SEGWH_COLLECTOR_HOST", "collector_host", "127.0.0.1", "address the collector binds"
    ),
    EnvironmentVariable(
        "SEGWH_COLLECTOR_PORT", "collector_port", "8088", "port of the collector", parse=int
    ),
    EnvironmentVariable(
        "SEGWH_COLLECTOR_WORKERS",
        "collector_workers",
        "2",
        "HTTP worker processes of the collector (one per core)",
        parse=int,
    ),
    EnvironmentVariable(
        "SEGWH_STREAM_ALLOWED_LATENESS_SECONDS",
        "stream_allowed_lateness_seconds",
        "60",
        "event-time lateness the stream consumer accepts: older events change no real-time "
        "state (they still reach the warehouse)",
        parse=int,
    ),
)
_DEFAULTS = {v.field: v.default for v in ENVIRONMENT_VARIABLES if v.field}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    landing_dir: Path
    crm_url: str
    crm_customers_table: str
    crm_orders_table: str
    crm_consents_table: str
    warehouse_path: Path
    dbt_project_dir: Path = DBT_PROJECT_DIR
    sources: tuple[str, ...] = SOURCES
    as_of: str = ""
    duckdb_memory_limit: str = _DEFAULTS["duckdb_memory_limit"]
    serving_dir: Path | None = None  # None: <data_dir>/serving
    serving_duckdb_storage_version: str = _DEFAULTS["serving_duckdb_storage_version"]
    serving_postgres_url: str = ""
    serving_postgres_schema: str = _DEFAULTS["serving_postgres_schema"]
    serving_reader_role: str = _DEFAULTS["serving_reader_role"]
    online_redis_url: str = ""
    online_redis_prefix: str = _DEFAULTS["online_redis_prefix"]
    online_grace_seconds: int = int(_DEFAULTS["online_grace_seconds"])
    api_host: str = _DEFAULTS["api_host"]
    api_port: int = int(_DEFAULTS["api_port"])
    nightly_cron: str = _DEFAULTS["nightly_cron"]
    nightly_timezone: str = _DEFAULTS["nightly_timezone"]
    sensor_interval_seconds: int = int(_DEFAULTS["sensor_interval_seconds"])
    models_dir: Path | None = None  # None: <data_dir>/models
    churn_at_risk_threshold: float | None = None  # None: ml/config.py's ChurnConfig default
    raw_retention_days: int = int(_DEFAULTS["raw_retention_days"])
    broker_url: str = _DEFAULTS["broker_url"]
    broker_stream: str = _DEFAULTS["broker_stream"]
    collector_write_keys: tuple[str, ...] = ()
    collector_host: str = _DEFAULTS["collector_host"]
    collector_port: int = int(_DEFAULTS["collector_port"])
    collector_workers: int = int(_DEFAULTS["collector_workers"])
    stream_allowed_lateness_seconds: int = int(_DEFAULTS["stream_allowed_lateness_seconds"])

    @classmethod
    def in_folder(
        cls, folder: Path, landing_dir: Path, crm_url: str, /, **fields: object
    ) -> Settings:
        """Settings of a warehouse in ``folder`` (``folder/warehouse.duckdb``, outputs below it)
        on these landing files and CRM; the CRM tables and everything else at their documented
        defaults; ``fields`` overrides any of them (tests, benchmarks)."""
        values: dict[str, object] = {
            "data_dir": folder,
            "landing_dir": landing_dir,
            "crm_url": crm_url,
            "warehouse_path": folder / "warehouse.duckdb",
            **{
                name: _DEFAULTS[name]
                for name in ("crm_customers_table", "crm_orders_table", "crm_consents_table")
            },
        }
        return cls(**{**values, **fields})

    @property
    def resolved_serving_dir(self) -> Path:
        return self.serving_dir or self.data_dir / "serving"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.data_dir / "models"


def _environment_values() -> dict[str, str]:
    """The non-empty values of ``ENVIRONMENT_VARIABLES`` in the environment, by variable."""
    values = {v.name: os.environ.get(v.name, "").strip() for v in ENVIRONMENT_VARIABLES}
    return {name: value for name, value in values.items() if value}


def load_settings() -> Settings:
    """Resolve the settings from the environment (nothing is written back to it): each
    variable's value, else its documented default; empty leaves the field's own default."""
    environment = _environment_values()
    values: dict[str, object] = {}
    for variable in ENVIRONMENT_VARIABLES:
        if not variable.field:
            continue
        text = environment.get(variable.name) or variable.default.replace(
            "<project>", str(PROJECT_DIR)
        ).replace("$SEGWH_DATA_DIR", str(values.get("data_dir", "")))
        if text:
            values[variable.field] = variable.parse(text)
    return Settings(**values)


def effective_environment() -> list[tuple[EnvironmentVariable, str, str]]:
    """(variable, effective value, source) of every environment variable: source is
    ``environment`` or ``default``; secrets show only whether they are set."""
    given = _environment_values()
    settings = load_settings()
    rows = []
    for variable in ENVIRONMENT_VARIABLES:
        source = "environment" if variable.name in given else "default"
        if variable.secret:
            value = "(set, hidden)" if variable.name in given else "(not set)"
        elif variable.field:
            value = getattr(settings, variable.field)
            value = "" if value is None else str(value)
        else:
            value = given.get(variable.name, "")
        rows.append((variable, value, source))
    return rows


# Every environment variable dbt reads, and nothing else: profiles.yml the warehouse path and
# the DuckDB session settings (JSON), macros/as_of_timestamp.sql the as_of,
# macros/get_where_subquery.sql the load whose events the event tests check (empty: every event).
DBT_ENVIRONMENT = (
    "SEGWH_WAREHOUSE_PATH",
    "SEGWH_DUCKDB_SETTINGS",
    "SEGWH_DBT_AS_OF",
    "SEGWH_DBT_TESTED_LOAD_ID",
)


def dbt_environment(
    warehouse_path: Path | str,
    memory_limit: str,
    as_of: str | None = None,
    tested_load_id: str | None = None,
) -> dict[str, str]:
    """The environment of one dbt invocation (``DBT_ENVIRONMENT``): the one path by which run
    parameters reach dbt. Environment variables rather than ``--vars``: a new as_of on every
    run in ``--vars`` would make dbt re-parse the whole project every time."""
    values = [
        str(warehouse_path),
        json.dumps(session_settings(memory_limit)),
        as_of,
        tested_load_id,
    ]
    pairs = zip(DBT_ENVIRONMENT, values, strict=True)
    return {name: value for name, value in pairs if value is not None}


@contextmanager
def dbt_environment_set(values: Mapping[str, str]) -> Iterator[None]:
    """Within the block, this process's environment holds exactly ``values`` for the variables
    of ``DBT_ENVIRONMENT`` (a dbt subprocess started in it, or dbt run in-process, reads them);
    the previous environment is restored afterwards."""
    previous = {name: os.environ.get(name) for name in DBT_ENVIRONMENT}
    for name in DBT_ENVIRONMENT:
        os.environ.pop(name, None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
