"""Profiles built from the published tables and loaded into Redis: what a profile holds, who
is reduced to the default decision, and loads of changes that send only what changed. A real
DuckDB file and the real Redis on loopback; the mart tables hold only the columns read here."""

from __future__ import annotations

import json

import duckdb
import pytest

from serving.online import store
from serving.online.profiles import load_online_store

P1, P2, P3 = "a1" + "0" * 30, "b2" + "0" * 30, "c3" + "0" * 30  # person ids (pseudonyms)
COOKIE1, USER1, COOKIE2, COOKIE3 = ("d" + str(i) * 31 for i in range(4))

MARTS = f"""
CREATE SCHEMA marts; CREATE SCHEMA ml; CREATE SCHEMA seeds;
CREATE TABLE marts.person_features AS SELECT * FROM (VALUES
    ('{P1}', TIMESTAMP '2026-11-01'), ('{P2}', TIMESTAMP '2026-11-01'),
    ('{P3}', TIMESTAMP '2026-11-01')) t(person_id, as_of);
CREATE TABLE marts.person_consents AS SELECT * FROM (VALUES
    ('{P1}', true), ('{P2}', false), ('{P3}', true)) t(person_id, has_personalization_consent);
CREATE TABLE marts.person_segments AS SELECT * FROM (VALUES
    ('{P1}', 'cart_abandoner'), ('{P1}', 'stage_purchase'), ('{P2}', 'stage_purchase'),
    ('{P3}', 'stage_awareness')) t(person_id, segment_key);
CREATE TABLE marts.person_rfm_scores AS SELECT * FROM (VALUES
    ('{P1}', 'rfm_champions')) t(person_id, rfm_segment_key);
CREATE TABLE marts.content_decisions AS SELECT * FROM (VALUES
    ('{P1}', 'cart_reminder', 'cart_reminder', 'cart_abandoner'),
    ('{P2}', 'default', 'default', NULL),
    ('{P3}', 'onboarding', 'onboarding', 'stage_awareness'))
    t(person_id, content_variant, decision_rule_id, decision_segment_key);
CREATE TABLE marts.person_identifiers AS SELECT * FROM (VALUES
    ('{COOKIE1}', 'anonymous_id', '{P1}'), ('{USER1}', 'user_id', '{P1}'),
    ('{COOKIE2}', 'anonymous_id', '{P2}'), ('{COOKIE3}', 'anonymous_id', '{P3}'))
    t(identifier, identifier_type, person_id);
CREATE TABLE ml.churn_scores AS SELECT * FROM (VALUES
    ('{P1}', 0.123456, 'low', false, 'model-1')) t(person_id, churn_probability, risk_band,
    is_at_risk, model_version);
CREATE TABLE seeds.content_decision_rules AS SELECT * FROM (VALUES
    ('cart_reminder', 10, 'cart_abandoner', 'cart_reminder'),
    ('fallback', 2000, NULL, 'fallback'), ('default', 1000, NULL, 'default'))
    t(rule_id, priority, segment_key, content_variant);
"""


@pytest.fixture
def warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(MARTS)
    yield con
    con.close()


def _profile(client, keys, identifier: str) -> dict | None:
    version = store.current_version(client, keys)
    person = client.hget(keys.identifiers(version, store.bucket(identifier)), identifier)
    if person is None:
        return None
    return json.loads(client.hget(keys.profiles(version, store.bucket(person.decode())), person))


def _members(client, keys, segment: str) -> list[str]:
    version = store.current_version(client, keys)
    return [m.decode() for m in client.zrange(keys.members(version, segment), 0, -1)]


def test_profiles_hold_segments_scores_and_decision_and_consent_reduces_them(
    warehouse, online_store
):
    client, keys = online_store.connect(), online_store.keys

    loaded = load_online_store(warehouse, client, keys, "v1")

    assert (loaded.persons, loaded.personalized, loaded.identifiers) == (3, 2, 4)
    assert loaded.result.mode == "full"
    assert (
        _profile(client, keys, COOKIE1)
        == _profile(client, keys, USER1)
        == {
            "person_id": P1,
            "as_of": "2026-11-01T00:00:00Z",
            "personalized": True,
            "segments": ["cart_abandoner", "stage_purchase"],
            "rfm_segment": "rfm_champions",
            "cluster": None,  # no clustering has run: no ml.person_clusters
            "churn": {
                "probability": 0.1235,
                "risk_band": "low",
                "at_risk": False,
                "model_version": "model-1",
            },
            "decision": {
                "content_variant": "cart_reminder",
                "rule_id": "cart_reminder",
                "segment_key": "cart_abandoner",
            },
        }
    )
    # without personalization consent: the decision only, and in no member list
    assert _profile(client, keys, COOKIE2) == {
        "person_id": P2,
        "as_of": "2026-11-01T00:00:00Z",
        "personalized": False,
        "decision": {"content_variant": "default", "rule_id": "default", "segment_key": None},
    }
    assert _members(client, keys, "stage_purchase") == [P1]
    assert _profile(client, keys, "f" * 32) is None
    meta = store.version_meta(client, keys, "v1")
    assert meta.default_decision == {
        "content_variant": "default",  # the rule for everyone with the lowest priority
        "rule_id": "default",
        "segment_key": None,
    }
    assert meta.segments == ("cart_abandoner", "stage_awareness", "stage_purchase")


def test_a_load_of_changes_sends_only_what_changed_and_equals_a_full_load(warehouse, online_store):
    client, keys = online_store.connect(), online_store.keys
    load_online_store(warehouse, client, keys, "v1")
    # P3 withdraws analytics consent (leaves person_features), P1 changes segment and decision
    warehouse.execute(f"""
        DELETE FROM marts.person_features WHERE person_id = '{P3}';
        DELETE FROM marts.person_identifiers WHERE person_id = '{P3}';
        DELETE FROM marts.person_segments WHERE person_id IN ('{P3}', '{P1}')
            AND segment_key <> 'stage_purchase';
        UPDATE marts.content_decisions SET content_variant = 'vip_offers',
            decision_rule_id = 'vip', decision_segment_key = 'stage_purchase'
        WHERE person_id = '{P1}';
    """)

    loaded = load_online_store(warehouse, client, keys, "v2", changed_only=True)

    assert loaded.full_reason == ""
    result = loaded.result
    assert (result.mode, result.profiles_written, result.profiles_removed) == ("changes", 1, 1)
    assert (result.identifiers_written, result.identifiers_removed) == (0, 1)
    assert result.members_changed == 2  # P1 left cart_abandoner, P3 left stage_awareness
    assert _profile(client, keys, COOKIE3) is None
    assert _profile(client, keys, USER1)["segments"] == ["stage_purchase"]
    assert _members(client, keys, "cart_abandoner") == []
    # the same as loading everything
    reference = store.Keys(f"{keys.prefix}ref")
    full = load_online_store(warehouse, client, reference, "v2")
    try:
        for identifier in (COOKIE1, USER1, COOKIE2, COOKIE3):
            assert _profile(client, keys, identifier) == _profile(client, reference, identifier)
        assert full.result.profiles_written == 2
    finally:
        for key in client.scan_iter(match=f"{reference.prefix}:*"):
            client.delete(key)


def test_everything_is_written_again_when_redis_lost_the_served_version(warehouse, online_store):
    client, keys = online_store.connect(), online_store.keys
    load_online_store(warehouse, client, keys, "v1")
    for key in client.scan_iter(match=f"{keys.prefix}:*"):  # Redis restarted empty
        client.delete(key)

    loaded = load_online_store(warehouse, client, keys, "v2", changed_only=True)

    assert loaded.full_reason == "Redis serves no version yet"
    assert loaded.result.profiles_written == 3
    assert _profile(client, keys, COOKIE3)["person_id"] == P3


def test_without_a_rule_for_everyone_the_load_stops_and_says_what_to_add(warehouse, online_store):
    warehouse.execute("DELETE FROM seeds.content_decision_rules WHERE segment_key IS NULL")
    client = online_store.connect()
    with pytest.raises(store.StoreError, match="no rule for everyone"):
        load_online_store(warehouse, client, online_store.keys, "v1")
    assert store.current_version(client, online_store.keys) is None
