"""Dagster resources: thin, configurable handles on the warehouse, the landing folder, the CRM,
the run's ``as_of``, the published outputs, the model store, the privacy key and dbt.

``build_resources(settings)`` makes them from ``warehouse.settings`` (the environment); each
can be changed per run in the launchpad."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import duckdb
import sqlalchemy as sa
from dagster_dbt import DbtCliResource
from pydantic import Field

from ingestion.crm import crm_engine
from ml.config import ChurnConfig
from orchestration.dbt import DBT_EXECUTABLE, dbt_project
from orchestration.dbt_in_process import DbtStepInvocation
from privacy import pseudonyms
from warehouse import connection as warehouse
from warehouse.settings import (
    CRM_URL_VARIABLE,
    ONLINE_REDIS_URL_VARIABLE,
    POSTGRES_URL_VARIABLE,
    Settings,
    dbt_environment,
    parse_as_of,
)

if TYPE_CHECKING:  # imported by the methods that return them: loading the code location does
    # not import scikit-learn through the model registry (tests/test_startup.py)
    from ml.registry import ModelRegistry
    from serving.online.store import OnlineStore


class WarehouseResource(dg.ConfigurableResource):
    """The working DuckDB warehouse file (one writer at a time; BI tools never open it)."""

    path: str = Field(description="Path of the DuckDB warehouse file.")
    memory_limit: str = Field(
        default=warehouse.DEFAULT_MEMORY_LIMIT,
        description="DuckDB memory limit (e.g. 2GB); beyond it DuckDB spills to disk.",
    )

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(
            self.path, read_only=read_only, memory_limit=self.memory_limit
        ) as con:
            yield con


class LandingZoneResource(dg.ConfigurableResource):
    """The folder where event files (JSONL / Parquet) land."""

    path: str = Field(description="Folder of landed event files, searched recursively.")
    enabled: bool = Field(
        default=True,
        description="Events are a source (SEGWH_SOURCES); off: raw.events stays empty.",
    )

    @property
    def folder(self) -> Path:
        return Path(self.path)


class CrmResource(dg.ConfigurableResource):
    """The CRM database, reached through SQLAlchemy."""

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql://user@host/db.")
    customers_table: str = "customers"
    orders_table: str = "orders"
    consents_table: str = "consents"
    enabled: bool = Field(
        default=True,
        description="A CRM is a source (SEGWH_SOURCES); off: the raw CRM tables stay empty.",
    )

    def source_table(self, entity: str) -> str:
        return getattr(self, f"{entity}_table")

    def engine(self) -> sa.Engine | None:
        """The CRM database; None when the CRM is not a source."""
        return crm_engine(self.url) if self.enabled else None


class AsOfResource(dg.ConfigurableResource):
    """The instant every time-dependent result of a run is computed at."""

    as_of: str = Field(
        default="",
        description="ISO-8601 instant (e.g. 2026-11-01T00:00:00Z); empty means the run's start.",
    )

    def resolve(self, context: dg.OpExecutionContext | dg.AssetCheckExecutionContext) -> datetime:
        """The configured instant, or the creation time of the run (the same for every step)."""
        if self.as_of.strip():
            return parse_as_of(self.as_of)
        record = context.instance.get_run_record_by_id(context.run_id)
        created = record.create_timestamp if record else datetime.now(UTC)
        return created.astimezone(UTC).replace(microsecond=0)


class ServingResource(dg.ConfigurableResource):
    """Where BI tools read: a published DuckDB file and Parquet folder, optionally PostgreSQL."""

    path: str = Field(description="Folder of the published DuckDB file and Parquet versions.")
    duckdb_storage_version: str = Field(
        default="v1.4.0",
        description="DuckDB storage version of the published file (v1.4.0: 1.x clients read it; "
        "empty: this DuckDB's own).",
    )
    postgres_url: str = Field(
        default="", description="SQLAlchemy URL of a PostgreSQL database to publish to (optional)."
    )
    postgres_schema: str = Field(default="segments", description="Published PostgreSQL schema.")
    reader_role: str = Field(
        default="segwh_bi_reader",
        description="PostgreSQL role granted read access to the published schema (NOLOGIN).",
    )

    @property
    def folder(self) -> Path:
        return Path(self.path)


class OnlineStoreResource(dg.ConfigurableResource):
    """The online profile store in Redis that the API reads (off when the URL is empty). The
    URL comes from the environment variable at run time (``dg.EnvVar``): a password in it never
    reaches run configuration or Dagster's storage."""

    url: str = Field(default="", description="Redis URL (SEGWH_ONLINE_REDIS_URL); empty: off.")
    prefix: str = Field(default="segwh", description="Prefix of every key the store writes.")
    grace_seconds: int = Field(
        default=300, description="Seconds a replaced version stays readable, then expires."
    )

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    def store(self) -> "OnlineStore":
        from serving.online.store import OnlineStore

        return OnlineStore(self.url, self.prefix, self.grace_seconds)


class ModelStoreResource(dg.ConfigurableResource):
    """The folder of the trained models: the churn model registry and the clustering state."""

    path: str = Field(description="Folder of the model registry and the clustering state.")
    churn_at_risk_threshold: float | None = Field(
        default=None,
        description=(
            "Persons with a churn probability at or above this are at risk; None: the rule of "
            "ChurnConfig.at_risk_rule (default: the top ChurnConfig.at_risk_top_share)."
        ),
    )

    def registry(self) -> "ModelRegistry":
        from ml.registry import ModelRegistry

        return ModelRegistry(Path(self.path) / "churn")

    def recommendation_registry(self) -> "ModelRegistry":
        from ml.recommendations import Recommender
        from ml.registry import ModelRegistry

        return ModelRegistry(Path(self.path) / "recommendations", model_class=Recommender)

    @property
    def clustering_state_path(self) -> Path:
        return Path(self.path) / "clustering" / "state.bin"

    def churn_config(self) -> ChurnConfig:
        if self.churn_at_risk_threshold is None:
            return ChurnConfig()
        return ChurnConfig(at_risk_rule="threshold", risk_threshold=self.churn_at_risk_threshold)


class PrivacyResource(dg.ConfigurableResource):
    """The pseudonymization key and the retention period of raw events.

    The key is configured as ``dg.EnvVar(SEGWH_PSEUDONYMIZATION_KEY)``: the UI shows the variable's
    name, never its value."""

    pseudonymization_key: str = Field(
        description="Secret key of the keyed hash (HMAC-SHA256) that pseudonymizes identifiers."
    )
    raw_retention_days: int = Field(
        default=Settings.raw_retention_days,  # the documented default of the environment
        description="Raw and staged events older than this many days before as_of are deleted.",
    )

    def key(self) -> bytes:
        return pseudonyms.validated_key(self.pseudonymization_key)

    def install(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make ``segwh_pseudonymize`` available in the warehouse (see privacy/pseudonyms.py)."""
        pseudonyms.install(con, self.key())


class DbtResource(DbtCliResource):
    """dbt, run with the run's parameters: ``build`` is the one place where the warehouse, the
    as_of and the tested load reach dbt (``warehouse.settings.dbt_environment``). dbt runs in
    this process on the project parsed once (``orchestration.dbt_in_process``); ``segwh dbt``
    runs the executable."""

    def build(
        self,
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        as_of: str,
        tested_load_id: str,
        *,
        full_refresh: bool = False,
    ) -> DbtStepInvocation:
        """``dbt build`` of the step's selected models and seeds, and their data tests (dbt unit
        tests check the SQL on fixed inputs: the test suite runs them, not production);
        ``full_refresh`` rebuilds the incremental models from scratch. Returns when dbt is done
        (it has closed the warehouse file)."""
        environment = dbt_environment(warehouse.path, warehouse.memory_limit, as_of, tested_load_id)
        args = ["build", "--exclude-resource-type", "unit_test"]
        if full_refresh:
            args.append("--full-refresh")
        return DbtStepInvocation(
            context,
            args,
            project_dir=self.project_dir,
            profiles_dir=self.profiles_dir or self.project_dir,
            warehouse_path=warehouse.path,
            environment=environment,
        ).start()


def _secret_url(variable: str, value: str) -> str | dg.EnvVar:
    """A URL that may hold a password, as the resource configuration Dagster stores: a URL from
    its environment variable is referenced by name (``EnvVar``, read at run time), so its
    password never reaches a job snapshot in Dagster's run storage."""
    if value and os.environ.get(variable) == value:
        return dg.EnvVar(variable)
    if value and sa.engine.make_url(value).password:
        raise ValueError(f"a URL with a password is read from {variable} only, never set in code")
    return value


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """Every resource of the code location, configured by ``settings``."""
    return {
        "warehouse": WarehouseResource(
            path=str(settings.warehouse_path), memory_limit=settings.duckdb_memory_limit
        ),
        "landing": LandingZoneResource(
            path=str(settings.landing_dir), enabled="events" in settings.sources
        ),
        "crm": CrmResource(
            enabled="crm" in settings.sources,
            url=_secret_url(CRM_URL_VARIABLE, settings.crm_url),
            customers_table=settings.crm_customers_table,
            orders_table=settings.crm_orders_table,
            consents_table=settings.crm_consents_table,
        ),
        "as_of": AsOfResource(as_of=settings.as_of),
        "serving": ServingResource(
            path=str(settings.resolved_serving_dir),
            duckdb_storage_version=settings.serving_duckdb_storage_version,
            postgres_url=_secret_url(POSTGRES_URL_VARIABLE, settings.serving_postgres_url),
            postgres_schema=settings.serving_postgres_schema,
            reader_role=settings.serving_reader_role,
        ),
        "online": OnlineStoreResource(
            url=dg.EnvVar(ONLINE_REDIS_URL_VARIABLE) if settings.online_redis_url else "",
            prefix=settings.online_redis_prefix,
            grace_seconds=settings.online_grace_seconds,
        ),
        "models": ModelStoreResource(
            path=str(settings.resolved_models_dir),
            **(
                {"churn_at_risk_threshold": settings.churn_at_risk_threshold}
                if settings.churn_at_risk_threshold is not None
                else {}
            ),
        ),
        "privacy": PrivacyResource(
            pseudonymization_key=dg.EnvVar(pseudonyms.KEY_ENV_VAR),
            raw_retention_days=settings.raw_retention_days,
        ),
        # the code location's manifest is the one of DBT_PROJECT_DIR (orchestration/dbt.py); a
        # run may build a copy of that project with other seeds and vars (same models)
        "dbt": DbtResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)
        if settings.dbt_project_dir == dbt_project.project_dir
        else DbtResource(
            project_dir=str(settings.dbt_project_dir),
            profiles_dir=str(settings.dbt_project_dir),
            dbt_executable=DBT_EXECUTABLE,
        ),
    }
