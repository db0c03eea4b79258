"""Benchmark: publish-to-Redis of the online profile store (default 1M persons).

    .venv/bin/python bench/online_load.py --persons 1000000 [--changed-share 0.01]
        [--redis-url redis://127.0.0.1:6379/0]

Builds the published tables the profiles are made of (the columns ``serving/online/profiles.py``
reads) for N synthetic persons in a DuckDB file: 1.5 identifiers per person, 0-4 segments each,
RFM for 30 %, a churn score for 60 %, a cluster for everyone, 85 % with personalization consent.
Then, timed: a full load into Redis (``load_online_store``, as a nightly run does), and a load of
changes after ``--changed-share`` of the persons changed their decision and segments and 0.1 %
left (as a sensor run does). Reports seconds, rows written, and Redis memory per million
profiles (used_memory of one version, measured as the growth of the server's used_memory).
Writes ``bench/out/online_load.json``; deletes its keys at the end. Target (issue 26):
publish-to-Redis for 1M persons under 60 s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

from serving.online import store
from serving.online.profiles import load_online_store

OUT = Path(__file__).resolve().parent / "out"
TARGET_SECONDS = 60.0

SEGMENTS = [
    "cart_abandoner",
    "frequent_visitor",
    "high_intent_browser",
    "new_visitor",
    "price_sensitive",
    "content_explorer",
    "stage_awareness",
    "stage_consideration",
    "stage_purchase",
    "stage_loyalty",
    "churn_at_risk",
]


def build_tables(con: duckdb.DuckDBPyConnection, persons: int) -> None:
    """The published tables the profiles read, for ``persons`` synthetic persons."""
    con.execute(f"""
    CREATE SCHEMA marts; CREATE SCHEMA ml; CREATE SCHEMA seeds;
    CREATE TABLE persons AS
        SELECT i, md5('person' || i)::VARCHAR AS person_id FROM range({persons}) t(i);
    CREATE TABLE marts.person_features AS
        SELECT person_id, TIMESTAMP '2026-11-01' AS as_of FROM persons;
    CREATE TABLE marts.person_consents AS
        SELECT person_id, hash(i, 'consent') % 100 < 85 AS has_personalization_consent
        FROM persons;
    CREATE TABLE marts.person_segments AS
        SELECT DISTINCT person_id,
            {SEGMENTS!r}[1 + (hash(i, k) % {len(SEGMENTS)})::INTEGER] AS segment_key
        FROM persons, range((hash(i, 'n') % 5)::BIGINT) t(k);
    CREATE TABLE marts.person_rfm_scores AS
        SELECT person_id, 'rfm_' || ['champions','loyal','at_risk','lost'][1 + i % 4]
            AS rfm_segment_key
        FROM persons WHERE hash(i, 'rfm') % 100 < 30;
    CREATE TABLE marts.content_decisions AS
        SELECT person_id, ['default','vip_offers','cart_reminder'][1 + i % 3] AS content_variant,
            ['default','vip_frequent_buyer','cart_reminder'][1 + i % 3] AS decision_rule_id,
            [NULL,'frequent_buyer','cart_abandoner'][1 + i % 3] AS decision_segment_key
        FROM persons;
    CREATE TABLE marts.person_identifiers AS
        SELECT md5('cookie' || i)::VARCHAR AS identifier, 'anonymous_id' AS identifier_type,
            person_id FROM persons
        UNION ALL
        SELECT md5('user' || i)::VARCHAR, 'user_id', person_id FROM persons WHERE i % 2 = 0;
    CREATE TABLE ml.churn_scores AS
        SELECT person_id, (hash(i, 'churn') % 10000) / 10000.0 AS churn_probability,
            'medium' AS risk_band, false AS is_at_risk, '20261101T000000Z-bench' AS model_version
        FROM persons WHERE hash(i, 'scored') % 100 < 60;
    CREATE TABLE ml.person_clusters AS
        SELECT person_id, (i % 8)::INTEGER AS cluster_id,
            'high session_count_30d, low lifetime_spend' AS cluster_name
        FROM persons;
    CREATE TABLE seeds.content_decision_rules AS SELECT * FROM (VALUES
        ('default', 1000, NULL, 'default')) t(rule_id, priority, segment_key, content_variant);
    """)


def change_some(con: duckdb.DuckDBPyConnection, share: float) -> None:
    """``share`` of the persons get another decision and segment; 0.1 % leave."""
    modulus = max(int(1 / share), 1)
    con.execute(f"""
    UPDATE marts.content_decisions SET content_variant = 'retention_offer',
        decision_rule_id = 'retention_at_risk', decision_segment_key = 'churn_at_risk'
    WHERE hash(person_id, 'change') % {modulus} = 0;
    INSERT INTO marts.person_segments
        SELECT person_id, 'churn_at_risk' FROM marts.person_features
        WHERE hash(person_id, 'change') % {modulus} = 0
        EXCEPT SELECT person_id, segment_key FROM marts.person_segments;
    DELETE FROM marts.person_features WHERE hash(person_id, 'leave') % 1000 = 0;
    DELETE FROM marts.person_identifiers WHERE hash(person_id, 'leave') % 1000 = 0;
    """)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--changed-share", type=float, default=0.01)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    online = store.OnlineStore(args.redis_url, f"segwhbench{uuid.uuid4().hex[:8]}", 5)
    client, keys = online.connect(), online.keys
    results: dict = {"persons": args.persons, "changed_share": args.changed_share}
    try:
        with tempfile.TemporaryDirectory() as folder:
            con = duckdb.connect(str(Path(folder) / "bench.duckdb"))
            started = time.perf_counter()
            build_tables(con, args.persons)
            results["build_tables_seconds"] = round(time.perf_counter() - started, 2)

            memory_before = client.info("memory")["used_memory"]
            full = load_online_store(con, client, keys, "v1", grace_seconds=5)
            memory_after = client.info("memory")["used_memory"]
            results["full"] = {
                "seconds": round(full.result.seconds, 2),
                "profiles_written": full.result.profiles_written,
                "identifiers_written": full.result.identifiers_written,
                "members_written": full.result.members_changed,
            }
            results["redis_mib_per_million_profiles"] = round(
                (memory_after - memory_before) / 2**20 / (args.persons / 1e6), 1
            )

            change_some(con, args.changed_share)
            started = time.perf_counter()
            changes = load_online_store(con, client, keys, "v2", changed_only=True)
            results["changes"] = {
                "seconds_total": round(time.perf_counter() - started, 2),
                "seconds_redis": round(changes.result.seconds, 2),
                "profiles_written": changes.result.profiles_written,
                "profiles_removed": changes.result.profiles_removed,
                "members_changed": changes.result.members_changed,
            }
            con.close()
    finally:
        for key in client.scan_iter(match=f"{online.prefix}:*", count=5000):
            client.unlink(key)
        client.close()
    OUT.mkdir(exist_ok=True)
    (OUT / "online_load.json").write_text(json.dumps(results, indent=2))
    full_seconds = results["full"]["seconds"]
    verdict = "met" if full_seconds < TARGET_SECONDS * args.persons / 1e6 else "**missed**"
    print(json.dumps(results, indent=2))
    print(
        f"\n| measure | {args.persons:,} persons |\n|---|---|\n"
        f"| full load into Redis (target < {TARGET_SECONDS:.0f} s per 1M) | "
        f"{full_seconds} s ({verdict}) |\n"
        f"| load of changes ({args.changed_share:.0%} changed) | "
        f"{results['changes']['seconds_total']} s |\n"
        f"| Redis memory per 1M profiles (one version) | "
        f"{results['redis_mib_per_million_profiles']} MiB |"
    )


if __name__ == "__main__":
    main()
