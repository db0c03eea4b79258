"""Profiles for the online store, built from the published tables, and their load into Redis.

One compact JSON profile per profiled person (``marts.person_features``: persons who consent to
analytics); persons without personalization consent get a reduced profile: their (default)
content decision only, no segments or scores, and they are in no segment member list. Every
identifier of a profiled person (``marts.person_identifiers``) points at the person.

What Redis holds is mirrored in the warehouse (``serving.online_profiles``,
``serving.online_identifiers``, with ``serving.online_store_log`` naming the version), so a load
of changes compares the new profiles with the mirror and sends only the difference. The mirror
is replaced in the same transaction as the log row is written, after Redis switched: if Redis
does not serve the version the log names (flushed, restarted, a crash between the two), the
next load writes everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import redis

from serving.online import store
from warehouse.connection import table_exists

# the warehouse's mirror of what Redis serves (erasure cleans it with Redis)
MIRROR_TABLES = ("serving.online_profiles", "serving.online_identifiers")
STATE_DDL = """
CREATE SCHEMA IF NOT EXISTS serving;
CREATE TABLE IF NOT EXISTS serving.online_profiles (
    person_id VARCHAR NOT NULL, profile VARCHAR NOT NULL, segment_keys VARCHAR[] NOT NULL
);
CREATE TABLE IF NOT EXISTS serving.online_identifiers (
    identifier VARCHAR NOT NULL, person_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS serving.online_store_log (
    version VARCHAR NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    mode VARCHAR NOT NULL,           -- full | changes
    persons BIGINT NOT NULL,
    identifiers BIGINT NOT NULL,
    profiles_written BIGINT NOT NULL,
    profiles_removed BIGINT NOT NULL,
    seconds DOUBLE NOT NULL
);
"""

# Optional inputs: a profile has no cluster before the first clustering, no churn score before
# the first trained model; the profile says so with nulls.
_OPTIONAL_JOINS = {
    "ml.person_clusters": (
        "LEFT JOIN ml.person_clusters AS clusters USING (person_id)",
        "{'id': clusters.cluster_id, 'name': clusters.cluster_name}",
        "clusters.cluster_id",
    ),
    "ml.churn_scores": (
        "LEFT JOIN ml.churn_scores AS churn USING (person_id)",
        "{'probability': round(churn.churn_probability, 4), 'risk_band': churn.risk_band, "
        "'at_risk': churn.is_at_risk, 'model_version': churn.model_version}",
        "churn.person_id",
    ),
}


def _profiles_sql(con: duckdb.DuckDBPyConnection) -> str:
    joins, sections = [], {}
    for table, (join, value, present) in _OPTIONAL_JOINS.items():
        name = "cluster" if table.endswith("clusters") else "churn"
        if table_exists(con, *table.split(".")):
            joins.append(join)
            sections[name] = f"CASE WHEN {present} IS NOT NULL THEN {value} END"
        else:
            sections[name] = "NULL"
    join_sql = "\n".join(joins)
    return f"""
    CREATE OR REPLACE TEMP TABLE _online_profiles AS
    WITH segments AS (
        SELECT person_id, list(segment_key ORDER BY segment_key) AS segment_keys
        FROM marts.person_segments GROUP BY person_id
    ),
    persons AS (
        SELECT
            features.person_id,
            strftime(features.as_of, '%Y-%m-%dT%H:%M:%SZ') AS as_of,
            coalesce(consents.has_personalization_consent, false) AS personalized,
            coalesce(segments.segment_keys, []::VARCHAR[]) AS segment_keys,
            rfm.rfm_segment_key,
            {sections["cluster"]} AS cluster,
            {sections["churn"]} AS churn,
            {{'content_variant': decisions.content_variant,
              'rule_id': decisions.decision_rule_id,
              'segment_key': decisions.decision_segment_key}} AS decision
        FROM marts.person_features AS features
        LEFT JOIN marts.person_consents AS consents USING (person_id)
        LEFT JOIN segments USING (person_id)
        LEFT JOIN marts.person_rfm_scores AS rfm USING (person_id)
        LEFT JOIN marts.content_decisions AS decisions USING (person_id)
        {join_sql}
    )
    SELECT
        person_id,
        CASE WHEN personalized THEN to_json({{
            'person_id': person_id, 'as_of': as_of, 'personalized': true,
            'segments': segment_keys, 'rfm_segment': rfm_segment_key,
            'cluster': cluster, 'churn': churn, 'decision': decision
        }}) ELSE to_json({{
            'person_id': person_id, 'as_of': as_of, 'personalized': false, 'decision': decision
        }}) END::VARCHAR AS profile,
        CASE WHEN personalized THEN segment_keys ELSE []::VARCHAR[] END AS segment_keys,
        personalized
    FROM persons
    """


def default_decision(con: duckdb.DuckDBPyConnection) -> dict:
    """The decision for visitors the store does not know: the rule for everyone (a rule
    without a segment) with the lowest priority, as ``marts.content_decisions`` applies it."""
    row = con.execute(
        "SELECT content_variant, rule_id FROM seeds.content_decision_rules "
        "WHERE segment_key IS NULL ORDER BY priority, rule_id LIMIT 1"
    ).fetchone()
    if row is None:
        raise store.StoreError(
            "seeds/content_decision_rules has no rule for everyone (empty segment_key): the "
            "online API needs one for unknown visitors; add a default rule"
        )
    return {"content_variant": row[0], "rule_id": row[1], "segment_key": None}


@dataclass(frozen=True)
class OnlineLoad:
    result: store.LoadResult
    persons: int
    identifiers: int
    personalized: int
    full_reason: str  # why everything was written ("" for a load of changes)


def _last_logged_version(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute(
        "SELECT version FROM serving.online_store_log ORDER BY loaded_at DESC LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def _rows(con: duckdb.DuckDBPyConnection, sql: str, batch: int = 50_000):
    """Stream the rows of ``sql`` lazily, sorted by the first column (the id, or the segment, that
    names the Redis key): consecutive rows share a key, so one command writes many of them (in
    random order, 200k profiles took 395k commands and three times as long). The temp tables
    live on ``con`` alone, so the streams share it: ``store.load`` reads them one after the
    other, never two at once."""
    result = con.execute(f"SELECT * FROM ({sql}) ORDER BY 1")
    while rows := result.fetchmany(batch):
        yield from rows


def load_online_store(
    con: duckdb.DuckDBPyConnection,
    client: redis.Redis,
    keys: store.Keys,
    version: str,
    *,
    changed_only: bool = False,
    grace_seconds: int = store.DEFAULT_GRACE_SECONDS,
) -> OnlineLoad:
    """Build the profiles of the published tables on ``con`` and load them into Redis as
    ``version``: everything, or with ``changed_only`` only what differs from the served version
    (everything when Redis does not serve the version the warehouse last loaded)."""
    con.execute(STATE_DDL)
    con.execute(_profiles_sql(con))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _online_identifiers AS "
        "SELECT identifier, person_id FROM marts.person_identifiers"
    )
    persons, personalized = con.execute(
        "SELECT count(*), count(*) FILTER (personalized) FROM _online_profiles"
    ).fetchone()
    identifiers = con.execute("SELECT count(*) FROM _online_identifiers").fetchone()[0]
    segments = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT unnest(segment_keys) FROM _online_profiles ORDER BY 1"
        ).fetchall()
    ]

    served = store.current_version(client, keys)
    logged = _last_logged_version(con)
    if not changed_only:
        full_reason = "a full load was asked for"
    elif served is None:
        full_reason = "Redis serves no version yet"
    elif served != logged:
        full_reason = (
            f"Redis serves {served}, the warehouse last loaded {logged or 'nothing'} "
            "(flushed, restarted or a load that did not finish)"
        )
    else:
        full_reason = ""
    base = (
        "serving.online_profiles"
        if not full_reason
        else "(SELECT * FROM serving.online_profiles LIMIT 0)"
    )
    base_ids = (
        "serving.online_identifiers"
        if not full_reason
        else "(SELECT * FROM serving.online_identifiers LIMIT 0)"
    )
    members = "SELECT unnest(segment_keys) AS segment_key, person_id FROM {}"
    changes = store.Changes(
        profiles=_rows(
            con,
            f"SELECT person_id, profile FROM _online_profiles "
            f"EXCEPT SELECT person_id, profile FROM {base}",
        ),
        removed_persons=(
            r[0]
            for r in _rows(
                con,
                f"SELECT person_id FROM {base} EXCEPT SELECT person_id FROM _online_profiles",
            )
        ),
        identifiers=_rows(
            con, f"SELECT * FROM _online_identifiers EXCEPT SELECT * FROM {base_ids}"
        ),
        removed_identifiers=(
            r[0]
            for r in _rows(
                con,
                f"SELECT identifier FROM {base_ids} "
                "EXCEPT SELECT identifier FROM _online_identifiers",
            )
        ),
        members_added=_rows(
            con,
            f"{members.format('_online_profiles')} EXCEPT {members.format(base)}",
        ),
        members_removed=_rows(
            con,
            f"{members.format(base)} EXCEPT {members.format('_online_profiles')}",
        ),
    )
    meta = store.VersionMeta(
        version=version,
        as_of=con.execute(
            "SELECT strftime(max(as_of), '%Y-%m-%dT%H:%M:%SZ') FROM marts.person_features"
        ).fetchone()[0]
        or "",
        loaded_at=datetime.now(UTC).isoformat(),
        persons=persons,
        identifiers=identifiers,
        segments=tuple(segments),
        default_decision=default_decision(con),
    )
    result = store.load(
        client,
        keys,
        meta,
        changes,
        base_version=None if full_reason else served,
        grace_seconds=grace_seconds,
    )
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM serving.online_profiles")
        con.execute(
            "INSERT INTO serving.online_profiles "
            "SELECT person_id, profile, segment_keys FROM _online_profiles"
        )
        con.execute("DELETE FROM serving.online_identifiers")
        con.execute("INSERT INTO serving.online_identifiers SELECT * FROM _online_identifiers")
        con.execute(
            "INSERT INTO serving.online_store_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                version,
                datetime.now(UTC),
                result.mode,
                persons,
                identifiers,
                result.profiles_written,
                result.profiles_removed,
                result.seconds,
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _online_profiles")
        con.execute("DROP TABLE IF EXISTS _online_identifiers")
    return OnlineLoad(result, persons, identifiers, personalized, full_reason)
