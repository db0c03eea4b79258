"""Ingestion (group ``ingestion``): landing files and CRM tables into the ``raw`` schema, and the
expectation checks of the raw tables. The loading code is the ``ingestion`` package."""

from dataclasses import asdict
from pathlib import Path

import dagster as dg
from pydantic import Field

from ingestion.crm import CRM_ENTITIES, load_crm_table
from ingestion.events import discover_files, files_in_quarantine, load_event_files
from orchestration.checks import expectation_check
from orchestration.metadata import OWNER, markdown_table, rounded, table_metadata
from orchestration.plots import table_plots_metadata
from orchestration.resources import (
    CrmResource,
    LandingZoneResource,
    PrivacyResource,
    WarehouseResource,
)

RAW_EVENTS = dg.AssetKey(["raw", "events"])


class RawEventsConfig(dg.Config):
    files: list[str] = Field(
        default_factory=list,
        description=(
            "Load only these landing files (paths as the landing-files sensor lists them); "
            "empty means every file in the landing folder. Files already loaded are skipped."
        ),
    )


@dg.asset(
    key=RAW_EVENTS,
    group_name="ingestion",
    kinds={"python", "duckdb", "great-expectations"},
    owners=[OWNER],
    description=(
        "Events from the landing folder (JSONL and Parquet) loaded into raw.events with DuckDB's "
        "readers. Files already loaded (same content) are skipped; duplicate event_ids are dropped "
        "and counted; rows that break the event contract go to raw.rejected_events with their "
        "payload and a reason; events of erased persons are dropped and counted. Per file, "
        "landed = loaded + rejected + duplicate + suppressed is recorded in raw.event_load_audit. "
        "A file that cannot be read at all (truncated .gz, corrupt Parquet) is quarantined in "
        "raw.quarantined_files with the error, never blocks the other files, and is retried only "
        "when its content changes (check quarantined_landing_files)."
    ),
)
def raw_events(
    context: dg.AssetExecutionContext,
    config: RawEventsConfig,
    warehouse: WarehouseResource,
    landing: LandingZoneResource,
    privacy: PrivacyResource,
) -> dg.MaterializeResult:
    if not landing.enabled:
        context.log.info("events are not a source (SEGWH_SOURCES): raw.events stays empty")
    files = discover_files(landing.folder) if landing.enabled else []
    if config.files:
        wanted = {str(Path(f).resolve()) for f in config.files}
        missing = wanted - {str(f.path) for f in files}
        if missing:
            raise FileNotFoundError(
                f"requested landing file(s) not found in {landing.folder}: {sorted(missing)}"
            )
        files = [f for f in files if str(f.path) in wanted]
    context.log.info("loading from %d event file(s) in %s", len(files), landing.folder)
    with warehouse.connect() as con:
        privacy.install(con)  # to recognise events of erased persons by their pseudonyms
        report = load_event_files(con, files, load_id=context.run.run_id)
        rejected_total = con.execute("SELECT count(*) FROM raw.rejected_events").fetchone()[0]
        metadata = table_metadata(con, "raw.events")
        plots = table_plots_metadata(context, RAW_EVENTS, con)
    landed = report.total("landed")
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "files_loaded": len(report.files),
            "files_skipped_already_loaded": len(report.skipped_files),
            "files_quarantined": len(report.quarantined),
            "files_still_quarantined": len(report.still_quarantined),
            "landed": landed,
            "loaded": report.total("loaded"),
            "rejected": report.total("rejected"),
            "duplicate": report.total("duplicate"),
            "suppressed_erased_persons": report.total("suppressed"),
            "rejected_share": rounded(report.total("rejected") / landed if landed else 0.0),
            "rejected_rows_total": rejected_total,
            "load_audit": markdown_table(
                [
                    {
                        **{k: v for k, v in asdict(r).items() if k != "reasons"},
                        "reasons": ", ".join(f"{k}: {v}" for k, v in r.reasons.items()) or "-",
                    }
                    for r in report.files
                ]
            ),
            "load_seconds": dg.MetadataValue.float(round(report.elapsed_seconds, 2)),
            **plots,
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key=dg.AssetKey(["raw", f"crm_{entity.name}"]),
            group_name="ingestion",
            kinds={"python", "duckdb"},
            owners=[OWNER],
            skippable=True,
            description=(
                f"Snapshot of the CRM {entity.name} table (every column as text), copied from the "
                "configured SQLAlchemy URL and replaced atomically. Required columns: "
                f"{', '.join(entity.required_columns)}."
            ),
        )
        for entity in CRM_ENTITIES.values()
    ],
    can_subset=True,
)
def raw_crm_tables(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    crm: CrmResource,
    privacy: PrivacyResource,
):
    engine = crm.engine()
    try:
        with warehouse.connect() as con:
            privacy.install(con)  # to recognise rows of erased persons by their pseudonyms
            for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
                entity = CRM_ENTITIES[key.path[-1].removeprefix("crm_")]
                result = load_crm_table(
                    con, engine, entity, crm.source_table(entity.name), load_id=context.run.run_id
                )
                yield dg.MaterializeResult(
                    asset_key=key,
                    metadata={
                        **table_metadata(con, entity.raw_table),
                        "source_table": result.source_table,
                        "source_table_found": result.table_found,
                        "suppressed_erased_persons": result.suppressed,
                        "missing_optional_columns": ", ".join(result.missing_optional_columns)
                        or "-",
                        "load_seconds": dg.MetadataValue.float(round(result.elapsed_seconds, 2)),
                    },
                )
    finally:
        if engine is not None:
            engine.dispose()


@dg.asset_check(
    asset=RAW_EVENTS,
    name="quarantined_landing_files",
    description=(
        "Warns while a landing file is in quarantine (raw.quarantined_files): it could not be "
        "read at all, so none of its events are loaded. Replace it with a readable copy (same "
        "path, or a new name) and the next load takes it."
    ),
)
def quarantined_landing_files(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.connect() as con:
        files = files_in_quarantine(con)
    return dg.AssetCheckResult(
        passed=not files,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(files)} landing file(s) in quarantine: "
            + "; ".join(f"{Path(path).name}: {error}" for path, error, _ in files[:10])
            if files
            else "no landing file in quarantine"
        ),
        metadata={
            "files_in_quarantine": len(files),
            "quarantine": markdown_table(
                [{"file": path, "error": error, "since": str(at)} for path, error, at in files]
            ),
        },
    )


def build_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_events, raw_crm_tables],
        asset_checks=[
            quarantined_landing_files,
            expectation_check(RAW_EVENTS, "raw.events", "raw_events", load_id_column="_load_id"),
            expectation_check(RAW_EVENTS, "raw.event_load_audit", "event_load"),
            *(
                expectation_check(
                    dg.AssetKey(["raw", f"crm_{entity}"]),
                    f"raw.crm_{entity}",
                    f"crm_{entity}",
                    load_id_column="_load_id",
                )
                for entity in CRM_ENTITIES
            ),
        ],
    )
