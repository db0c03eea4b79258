"""Serving (group ``serving``): publish the marts for BI tools, write-audit-publish style, then
load the online profile store that the API reads.

The marts are built and checked in the working warehouse first (write, audit); the publish asset
runs only after them, refuses to publish if any blocking check of the run failed, and then swaps
the published outputs atomically (publish). A failed check therefore leaves what BI tools read
exactly as it was. When SEGWH_ONLINE_REDIS_URL is set, the online profile store is loaded from
the published version next, under the same version id, and a check compares the two.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from orchestration.documentation import table_documentation
from orchestration.metadata import OWNER, markdown_table
from orchestration.resources import OnlineStoreResource, ServingResource, WarehouseResource
from serving.catalog import load_published_tables, undocumented, warehouse_columns
from serving.online import store as online_store
from serving.online.profiles import load_online_store
from serving.publish import (
    PublishResult,
    clear_journal,
    journal_entry,
    new_version,
    publish_duckdb,
    publish_parquet,
    publish_postgres,
    record_finished_publish,
    record_publish,
    recover_interrupted_publish,
    switch_parquet,
    write_journal,
)

PUBLISHED_SEGMENTS = dg.AssetKey(["serving", "published_segments"])
ONLINE_PROFILE_STORE = dg.AssetKey(["serving", "online_profile_store"])


class PublishConfig(dg.Config):
    only_changed_rows: bool = Field(
        default=False,
        description=(
            "Patch a copy of the published DuckDB file with the rows that changed since, instead "
            "of writing every table: only those rows are written (finding them still reads every "
            "table); the landing-files sensor sets it for its incremental runs. A full write (the "
            "default, the nightly run) also compacts the file. Parquet and PostgreSQL outputs are "
            "always written whole."
        ),
    )


def _failed_blocking_checks(context: dg.AssetExecutionContext) -> tuple[list[str], list[str]]:
    """(passed, failed) error-severity checks evaluated so far in this run."""
    passed, failed = [], []
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        if evaluation.passed:
            passed.append(name)
        elif evaluation.severity == dg.AssetCheckSeverity.ERROR:
            failed.append(name)
    return passed, failed


def build_published_segments(
    upstream: Sequence[dg.AssetKey], *, postgres: bool = False
) -> dg.AssetsDefinition:
    """The publish asset, downstream of ``upstream`` (every model it must wait for); its kinds
    name the outputs it writes (PostgreSQL only with ``postgres``: SEGWH_SERVING_POSTGRES_URL)."""

    @dg.asset(
        key=PUBLISHED_SEGMENTS,
        deps=list(upstream),
        group_name="serving",
        kinds={"duckdb", "parquet", *(["postgres"] if postgres else [])},
        owners=[OWNER],
        description=(
            "Publishes the tables listed in serving/published_tables.toml for BI tools, "
            "documented (table and column comments, Parquet key-value metadata), atomically: the "
            "DuckDB file segments.duckdb of the serving folder (SEGWH_SERVING_DIR; swapped by "
            "rename), Parquet under parquet/current there (symlink switched), and, when "
            "configured, a PostgreSQL schema with primary keys and indexes (swapped in one "
            "transaction, readable by the BI role). Runs only when every blocking check of the "
            "run passed; each publish is recorded in serving.publish_log."
        ),
    )
    def published_segments(
        context: dg.AssetExecutionContext,
        config: PublishConfig,
        warehouse: WarehouseResource,
        serving: ServingResource,
    ) -> dg.MaterializeResult:
        passed, failed = _failed_blocking_checks(context)
        if failed:
            raise dg.Failure(
                "not publishing: blocking checks failed in this run; the published tables "
                "stay as they were",
                metadata={"failed_checks": ", ".join(failed)},
            )
        published_at = datetime.now(UTC)
        version = new_version(published_at)
        outputs = {"duckdb": str(serving.folder / "segments.duckdb")}
        finished = recover_interrupted_publish(serving.folder)
        with warehouse.connect() as con:
            if finished is not None:
                record_finished_publish(con, finished)
            # published tables have no row order: writing them out of order lets DuckDB write
            # in parallel (Parquet of the 20M-event bench warehouse: 9.2 s -> 7.6 s)
            con.execute("SET preserve_insertion_order = false")
            listed = {table.name: table for table in load_published_tables()}
            columns, missing = warehouse_columns(con, list(listed.values()))
            tables = list(columns)
            if missing:
                context.log.warning(
                    "not published, missing in the warehouse (renamed or not built?): %s",
                    ", ".join(missing),
                )
            docs = table_documentation()
            without_docs = undocumented(tables, columns, docs)
            if without_docs:
                context.log.warning(
                    "%d table(s) or column(s) published without a description, e.g. %s (all in "
                    "the `undocumented` metadata; describe them where they are built)",
                    len(without_docs),
                    ", ".join(without_docs[:3]),
                )
            # Prepare the Parquet version, journal it, switch DuckDB (the commit point), then
            # Parquet: a publish killed in between is finished or undone by the next one.
            outputs["parquet"] = str(
                publish_parquet(
                    con, tables, serving.folder, version, documentation=docs, switch=False
                )
            )
            counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
            result = PublishResult(version, published_at, counts)
            if serving.postgres_url:
                outputs["postgres"] = serving.postgres_schema
            entry = journal_entry(
                result, run_id=context.run.run_id, checks_passed=passed, outputs=outputs
            )
            write_journal(serving.folder, entry)
            published = publish_duckdb(
                con,
                tables,
                serving.folder,
                version,
                patch=config.only_changed_rows,
                storage_version=serving.duckdb_storage_version,
                documentation=docs,
            )
            switch_parquet(serving.folder, version)
            if serving.postgres_url:
                engine = sa.create_engine(serving.postgres_url)
                try:
                    publish_postgres(
                        con,
                        tables,
                        engine,
                        serving.postgres_schema,
                        version,
                        serving.reader_role,
                        serving.folder / ".scratch",
                        documentation=docs,
                        keys=listed,
                    )
                except BaseException:
                    # the files are switched: the next publish records this version without
                    # PostgreSQL, which keeps its previous version (its swap is one transaction)
                    files_only = {k: v for k, v in outputs.items() if k != "postgres"}
                    write_journal(serving.folder, {**entry, "outputs": files_only})
                    raise
                finally:
                    engine.dispose()
            record_publish(
                con, result, run_id=context.run.run_id, checks_passed=passed, outputs=outputs
            )
        clear_journal(serving.folder)
        context.log.info("published version %s: %d table(s)", version, len(tables))
        return dg.MaterializeResult(
            metadata={
                "version": version,
                "tables": markdown_table(
                    [
                        {
                            "table": t,
                            "rows": published[t].rows,
                            "duckdb": "patched" if published[t].patched else "written whole",
                            "duckdb rows written": published[t].rows_written,
                        }
                        for t in tables
                    ]
                ),
                "duckdb_rows_written": sum(p.rows_written for p in published.values()),
                "duckdb_tables_written_whole": ", ".join(
                    t for t in tables if not published[t].patched
                )
                or "none (every table patched)",
                "published_duckdb": dg.MetadataValue.path(outputs["duckdb"]),
                "published_parquet": dg.MetadataValue.path(outputs["parquet"]),
                "published_postgres_schema": outputs.get("postgres", "not configured"),
                "checks_passed": len(passed),
                "tables_missing": ", ".join(missing) or "none",
                "undocumented": ", ".join(without_docs) or "none",
            }
        )

    return published_segments


class OnlineLoadConfig(dg.Config):
    only_changed_persons: bool = Field(
        default=False,
        description=(
            "Write only the profiles, identifiers and segment members that changed since the "
            "version Redis serves (the new version starts as a server-side copy of it); the "
            "landing-files sensor sets it. Everything is written when Redis serves another "
            "version than the warehouse last loaded (e.g. after a Redis restart)."
        ),
    )


def _last_published_version(con) -> str | None:
    row = con.execute(
        "SELECT version FROM serving.publish_log ORDER BY published_at DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


@dg.asset(
    key=ONLINE_PROFILE_STORE,
    deps=[PUBLISHED_SEGMENTS],
    group_name="serving",
    kinds={"redis"},
    owners=[OWNER],
    description=(
        "Loads the online profile store in Redis (SEGWH_ONLINE_REDIS_URL) from the version just "
        "published: one compact profile per profiled person (segments, RFM segment, cluster, "
        "churn, content decision; only the decision without personalization consent), an "
        "index from every identifier pseudonym to its person, and the members of each segment. "
        "The new version is written beside the served one and switched in with one command; "
        "the old one expires after a grace period. The API (`segwh serve`) reads it."
    ),
)
def online_profile_store(
    context: dg.AssetExecutionContext,
    config: OnlineLoadConfig,
    warehouse: WarehouseResource,
    online: OnlineStoreResource,
) -> dg.MaterializeResult:
    store = online.store()
    client = store.connect()
    try:
        with warehouse.connect() as con:
            version = _last_published_version(con)
            if version is None:
                raise dg.Failure("nothing has been published yet: run the publish asset first")
            if online_store.current_version(client, store.keys) == version:
                context.log.info("Redis already serves version %s: nothing to load", version)
                return dg.MaterializeResult(metadata={"version": version, "mode": "unchanged"})
            loaded = load_online_store(
                con,
                client,
                store.keys,
                version,
                changed_only=config.only_changed_persons,
                grace_seconds=store.grace_seconds,
            )
    finally:
        client.close()
    result = loaded.result
    context.log.info(
        "online store: version %s loaded (%s) in %.1f s: %d profiles written, %d removed",
        version,
        result.mode,
        result.seconds,
        result.profiles_written,
        result.profiles_removed,
    )
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "mode": result.mode,
            "why_everything_was_written": loaded.full_reason or "not: only the changes",
            "persons": loaded.persons,
            "personalized_persons": loaded.personalized,
            "identifiers": loaded.identifiers,
            "profiles_written": result.profiles_written,
            "profiles_removed": result.profiles_removed,
            "identifiers_written": result.identifiers_written,
            "identifiers_removed": result.identifiers_removed,
            "segment_members_changed": result.members_changed,
            "load_seconds": round(result.seconds, 2),
            "redis_key_prefix": store.prefix,
        }
    )


@dg.asset_check(
    asset=ONLINE_PROFILE_STORE,
    name="serves_the_published_version",
    description="Redis serves the version last published for BI tools (the API and the BI "
    "tables show the same results).",
)
def serves_the_published_version(
    warehouse: WarehouseResource, online: OnlineStoreResource
) -> dg.AssetCheckResult:
    store = online.store()
    client = store.connect()
    try:
        served = online_store.current_version(client, store.keys)
        meta = online_store.version_meta(client, store.keys, served) if served else None
    finally:
        client.close()
    with warehouse.connect(read_only=True) as con:
        published = _last_published_version(con)
    return dg.AssetCheckResult(
        passed=served is not None and served == published,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "the API serves the published version"
            if served == published
            else "the API does not serve the last published version: materialize "
            "serving/online_profile_store"
        ),
        metadata={
            "served_version": served or "none",
            "published_version": published or "none",
            "served_persons": meta.persons if meta else 0,
        },
    )


def build_defs(
    upstream: Sequence[dg.AssetKey], *, online: bool, postgres: bool = False
) -> dg.Definitions:
    """The publish asset waits for ``upstream``: every asset it must publish after; with
    ``online`` (SEGWH_ONLINE_REDIS_URL set), the online store is loaded after it; ``postgres``
    (SEGWH_SERVING_POSTGRES_URL set): it publishes to PostgreSQL too."""
    return dg.Definitions(
        assets=[
            build_published_segments(upstream, postgres=postgres),
            *([online_profile_store] if online else []),
        ],
        asset_checks=[serves_the_published_version] if online else [],
    )
