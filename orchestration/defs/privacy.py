"""Privacy (group ``privacy``): raw-event retention and the erasure job.

Consent and pseudonymization are part of the dbt models (marts/person_consents, the staging
models); the pieces here need Python: deleting old raw events on schedule, and erasing a person
from every layer on request (privacy/erasure.py).
"""

import dagster as dg
from pydantic import Field

from orchestration.defs.ingestion import RAW_EVENTS
from orchestration.metadata import OWNER, markdown_table
from orchestration.resources import (
    AsOfResource,
    OnlineStoreResource,
    PrivacyResource,
    ServingResource,
    WarehouseResource,
)
from privacy import pseudonyms
from privacy.retention import delete_expired_raw_rows, retention_cutoff
from serving.erasure import erase_person
from warehouse.compaction import compact

RAW_EVENTS_RETENTION = dg.AssetKey(["privacy", "raw_events_retention"])
# below every other step's priority (0 unless set): see raw_events_retention
LAST_STEP_PRIORITY = "-100"
# raw tables that are assets of their own (the rest of raw is bookkeeping: rejected rows, audit)
RAW_TABLE_ASSETS = ("events", "crm_customers", "crm_orders", "crm_consents")


def _shrunk_table_materializations(
    con, tables: list[str], reason: str
) -> list[dg.AssetMaterialization]:
    """A materialization with the new row count for every asset table that rows were deleted
    from on purpose: the row-count checks of the next run compare with it, so an erasure or a
    retention cut is not mistaken for data loss (raw.events may otherwise never shrink)."""
    events = []
    for table in sorted(set(tables)):
        schema, _, name = table.partition(".")
        if schema == "raw" and name not in RAW_TABLE_ASSETS:
            continue
        rows = con.execute(f'SELECT count(*) FROM "{schema}"."{name}"').fetchone()[0]
        events.append(
            dg.AssetMaterialization(
                asset_key=dg.AssetKey([schema, name]),
                description=f"rows deleted by {reason}",
                metadata={"dagster/row_count": rows, "changed_by": reason},
            )
        )
    return events


@dg.asset(
    key=RAW_EVENTS_RETENTION,
    # It reads raw events only, so the lineage shows it beside the layers, not downstream of
    # serving. It still runs last in full_build: this run's checks and publish see the tables
    # before the cut, the next run's row-count checks compare with the counts recorded after it.
    # The run's steps execute one at a time (in-process executor), the ready step of highest
    # priority first: at the lowest priority, it starts only when no other step is left to run.
    deps=[RAW_EVENTS],
    op_tags={"dagster/priority": LAST_STEP_PRIORITY},
    group_name="privacy",
    kinds={"python", "duckdb"},
    owners=[OWNER],
    description=(
        "Deletes raw events and rejected rows (the personal data: ip, user agent, raw ids) "
        "older than the retention period (SEGWH_RAW_RETENTION_DAYS, default 730 days) before "
        "the run's as_of. Runs last in the nightly full_build, after publishing. The "
        "pseudonymized, minimized staged events and everything built from them are kept, so "
        "identities and lifetime features stay whole; a full refresh of staging can only "
        "rebuild what raw still holds."
    ),
)
def raw_events_retention(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    privacy: PrivacyResource,
    as_of: AsOfResource,
) -> dg.MaterializeResult:
    cutoff = retention_cutoff(as_of.resolve(context), privacy.raw_retention_days)
    with warehouse.connect() as con:
        deleted = delete_expired_raw_rows(con, cutoff)
        for event in _shrunk_table_materializations(
            con, [t for t, n in deleted.items() if n], "raw-event retention"
        ):
            context.log_event(event)
    context.log.info("retention cutoff %s: deleted %s", cutoff.isoformat(), deleted)
    return dg.MaterializeResult(
        metadata={
            "retention_days": privacy.raw_retention_days,
            "cutoff": cutoff.isoformat(),
            "rows_deleted": markdown_table(
                [{"table": table, "rows": rows} for table, rows in deleted.items()]
            ),
            "dagster/row_count": sum(deleted.values()),
        }
    )


class ErasureRequestConfig(dg.Config):
    """Exactly one of customer_id or email_pseudonym. There is no email field: run
    configuration is kept in Dagster's run storage, so an address given here would outlive the
    erasure. ``segwh erase --email`` hashes the address before it submits the run."""

    customer_id: str = Field(default="", description="CRM customer id of the person to erase.")
    email_pseudonym: str = Field(
        default="",
        description=(
            "Keyed hash of the person's email, lowercased and trimmed (what `segwh pseudonym "
            "--email ADDRESS` prints; `segwh erase --email` computes it itself)."
        ),
    )


# the op of job erase_person (run config: ops.erasure.config.customer_id / .email)
ERASURE_OP = "erasure"


@dg.op(
    name=ERASURE_OP,
    description=(
        "Removes every trace of one customer (by customer id or email) from raw, rejected, "
        "staging, intermediate, marts, ML outputs and churn training snapshots, and from the "
        "published DuckDB, Parquet and PostgreSQL outputs and the online profile store in "
        "Redis; adds their pseudonyms (hashed) to the suppression list so later loads do not "
        "bring them back; records the request in privacy.erasure_requests (no personal data); "
        "compacts the warehouse file (rewritten and swapped) so no freed block keeps them."
    ),
)
def erase_person_op(
    context: dg.OpExecutionContext,
    config: ErasureRequestConfig,
    warehouse: WarehouseResource,
    privacy: PrivacyResource,
    serving: ServingResource,
    online: OnlineStoreResource,
) -> None:
    customer_id, email_pseudonym = config.customer_id.strip(), config.email_pseudonym.strip()
    with warehouse.connect() as con:  # erase_person refuses a request without exactly one
        privacy.install(con)
        report = erase_person(
            con,
            privacy.key(),
            serving.folder,
            customer_id=customer_id or None,
            email_pseudonym=email_pseudonym or None,
            postgres_url=serving.postgres_url,
            postgres_schema=serving.postgres_schema,
            online=online.store() if online.enabled else None,
            storage_version=serving.duckdb_storage_version,
        )
        warehouse_tables = [t for t, n in report.rows_removed.items() if n and ":" not in t]
        for event in _shrunk_table_materializations(con, warehouse_tables, "erasure"):
            context.log_event(event)
    # deleted rows stay in the file's free blocks: rewrite it into a fresh file and swap it in
    # (this run holds the one-writer slot; a kill before the swap leaves the old file whole)
    compaction = compact(
        warehouse.path,
        memory_limit=warehouse.memory_limit,
        session_sql=[pseudonyms.session_macro_sql(privacy.key())],
    )
    if not report.customers_found:
        context.log.warning(
            "erasure %s: no customer in the raw layer matches the %s (derived rows were still "
            "searched by pseudonym); the %s is suppressed for later loads",
            report.request_id,
            report.subject_type,
            report.subject_type,
        )
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(["privacy", "erasure_requests"]),
            metadata={
                "request_id": report.request_id,
                "subject_pseudonym": report.subject_pseudonym,
                "customers_found": report.customers_found,
                "rows_removed": report.total_rows_removed,
                "warehouse_bytes_before_compaction": compaction.bytes_before,
                "warehouse_bytes_after_compaction": compaction.bytes_after,
                "per_table": markdown_table(
                    [{"table": t, "rows": n} for t, n in sorted(report.rows_removed.items()) if n]
                ),
            },
        )
    )


@dg.job(
    name="erase_person",
    description=(
        "Right to be forgotten: run with config ops.erasure.config.customer_id (or "
        ".email_pseudonym, the keyed hash of the email). "
        "The CLI does the same: `segwh erase --customer-id ...` / `--email ...`."
    ),
)
def erase_person_job():
    erase_person_op()


def build_defs() -> dg.Definitions:
    return dg.Definitions(assets=[raw_events_retention], jobs=[erase_person_job])
