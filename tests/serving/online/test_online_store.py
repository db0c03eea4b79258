"""The Redis profile store: versions written beside each other, switched atomically, loads of
changes equal to full loads, failures that leave the served version alone, erasure everywhere.
Against the real Redis server on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis
import redis.asyncio as aioredis

from serving.online import store
from serving.online.connection import OnlineStoreUnavailable
from serving.online.reader import ProfileReader


def _meta(version: str, segments=("a", "b")) -> store.VersionMeta:
    return store.VersionMeta(
        version=version,
        as_of="2026-11-01T00:00:00Z",
        loaded_at="2026-11-01T01:00:00+00:00",
        persons=0,
        identifiers=0,
        segments=tuple(segments),
        default_decision={"content_variant": "default", "rule_id": "default", "segment_key": None},
    )


def _person(i: int) -> str:
    return f"{i * 7919:032x}"


def _changes(profiles=(), removed=(), ids=(), removed_ids=(), added=(), left=()):
    return store.Changes(
        profiles=list(profiles),
        removed_persons=list(removed),
        identifiers=list(ids),
        removed_identifiers=list(removed_ids),
        members_added=list(added),
        members_removed=list(left),
    )


def _dataset(persons: range, marker: str, segment_of=lambda i: "a" if i % 2 else "b"):
    """Every person with two identifiers and one segment; profiles carry ``marker``."""
    profiles = [(_person(i), json.dumps({"person_id": _person(i), "v": marker})) for i in persons]
    ids = [(_person(i + 10_000), _person(i)) for i in persons]
    ids += [(_person(i + 20_000), _person(i)) for i in persons]
    members = [(segment_of(i), _person(i)) for i in persons]
    return profiles, ids, members


def _content(client: redis.Redis, keys: store.Keys, version: str) -> dict:
    """Everything a version holds, read back from Redis."""
    meta = store.version_meta(client, keys, version)
    pipe = client.pipeline(transaction=False)
    for b in store.BUCKETS:
        pipe.hgetall(keys.profiles(version, b))
        pipe.hgetall(keys.identifiers(version, b))
    replies = pipe.execute()
    profiles = {k: v for reply in replies[0::2] for k, v in reply.items()}
    ids = {k: v for reply in replies[1::2] for k, v in reply.items()}
    members = {
        s: client.zrange(keys.members(version, s), 0, -1) for s in (meta.segments if meta else ())
    }
    return {"profiles": profiles, "ids": ids, "members": {s: m for s, m in members.items() if m}}


def _full(client, keys, version, persons, marker, grace_seconds=60, **kwargs):
    profiles, ids, members = _dataset(persons, marker, **kwargs)
    return store.load(
        client,
        keys,
        _meta(version),
        _changes(profiles, ids=ids, added=members),
        grace_seconds=grace_seconds,
    )


def test_a_load_of_changes_gives_exactly_what_a_full_load_gives(online_store):
    client, keys = online_store.connect(), online_store.keys
    _full(client, keys, "v1", range(0, 300), "old")
    # the new data: persons 0-49 leave, 300-349 arrive, 100-149 change profile and segment
    new_segment = lambda i: "b" if 100 <= i < 150 else ("a" if i % 2 else "b")  # noqa: E731
    profiles, ids, members = _dataset(range(50, 350), "old", segment_of=new_segment)
    changing = {_person(i) for i in range(100, 150)}
    profiles = [
        (p, json.dumps({"person_id": p, "v": "new"}) if p in changing else text)
        for p, text in profiles
    ]
    old_profiles, old_ids, old_members = _dataset(range(0, 300), "old")
    changed = sorted(set(profiles) - set(old_profiles))
    result = store.load(
        client,
        keys,
        _meta("v2"),
        _changes(
            changed,
            removed=sorted({p for p, _ in old_profiles} - {p for p, _ in profiles}),
            ids=sorted(set(ids) - set(old_ids)),
            removed_ids=sorted({i for i, _ in old_ids} - {i for i, _ in ids}),
            added=sorted(set(members) - set(old_members)),
            left=sorted(set(old_members) - set(members)),
        ),
        base_version="v1",
        grace_seconds=online_store.grace_seconds,
    )
    assert result.mode == "changes"
    assert (result.profiles_written, result.profiles_removed) == (100, 50)  # 50 new + 50 changed
    assert store.current_version(client, keys) == "v2"

    reference = store.Keys(f"{keys.prefix}ref")
    store.load(client, reference, _meta("v2"), _changes(profiles, ids=ids, added=members))
    try:
        assert _content(client, keys, "v2") == _content(client, reference, "v2")
    finally:
        for key in client.scan_iter(match=f"{reference.prefix}:*"):
            client.delete(key)
    # the replaced version is still readable for the grace period, then expires
    assert client.hlen(keys.profiles("v1", store.bucket(_person(0)))) > 0
    assert 0 < client.ttl(keys.meta("v1")) <= online_store.grace_seconds
    assert client.ttl(keys.meta("v2")) == -1


def test_a_failed_load_leaves_the_served_version_and_no_keys_of_its_own(online_store):
    client, keys = online_store.connect(), online_store.keys
    _full(client, keys, "v1", range(100), "old")
    before = _content(client, keys, "v1")

    def exploding():
        yield from _dataset(range(100), "new")[0][:30]
        raise RuntimeError("the warehouse went away")

    with pytest.raises(RuntimeError, match="went away"):
        store.load(client, keys, _meta("v2"), _changes(exploding()))
    assert store.current_version(client, keys) == "v1"
    assert _content(client, keys, "v1") == before
    assert list(client.scan_iter(match=f"{keys.prefix}:v2:*")) == []
    assert client.ttl(keys.meta("v1")) == -1  # the served version does not expire


def test_changes_need_the_served_version_as_their_base(online_store):
    client, keys = online_store.connect(), online_store.keys
    with pytest.raises(store.StoreError, match="serves nothing; load everything"):
        store.load(client, keys, _meta("v2"), _changes(), base_version="v1")
    _full(client, keys, "v1", range(3), "old")
    with pytest.raises(store.StoreError, match="already served"):
        store.load(client, keys, _meta("v1"), _changes())


def test_a_crashed_load_is_cleaned_up_by_the_next(online_store):
    client, keys = online_store.connect(), online_store.keys
    _full(client, keys, "v1", range(10), "old")
    # a load killed after writing some keys: registered, no meta, never switched to
    client.zadd(keys.versions, {"v2": 1})
    client.hset(keys.profiles("v2", "000"), "000abc", "{}")
    _full(client, keys, "v3", range(10), "new")
    assert 0 < client.ttl(keys.profiles("v2", "000")) <= online_store.grace_seconds


def test_lookups_resolve_identifiers_to_one_version_in_one_round_trip(online_store):
    client, keys = online_store.connect(), online_store.keys

    async def lookup(ids):
        async_client = aioredis.Redis.from_url(online_store.url)
        try:
            return await ProfileReader(async_client, keys).lookup(ids)
        finally:
            await async_client.aclose()

    nothing = asyncio.run(lookup([_person(10_001)]))
    assert nothing.meta is None and nothing.profiles == [None]

    _full(client, keys, "v1", range(5), "old")
    found = asyncio.run(lookup([_person(10_001), "f" * 32, _person(20_003), "e" * 32]))
    assert found.meta.version == "v1"
    assert [json.loads(p)["person_id"] if p else None for p in found.profiles] == [
        _person(1),
        None,
        _person(3),
        None,  # trailing unknowns keep their place
    ]


def test_erasure_reaches_every_version_redis_holds(online_store):
    client, keys = online_store.connect(), online_store.keys
    _full(client, keys, "v1", range(10), "old")
    _full(client, keys, "v2", range(10), "new")  # v1 still readable (grace period)
    person, ids = _person(3), [_person(10_003), _person(20_003)]

    removed = store.erase(client, keys, [person], ids)

    assert removed == 2 * (1 + 2 + 1)  # per version: profile, two identifiers, one membership
    for version in ("v1", "v2"):
        content = _content(client, keys, version)
        assert person.encode() not in content["profiles"]
        assert not {i.encode() for i in ids} & set(content["ids"])
        assert all(person.encode() not in m for m in content["members"].values())
        assert len(content["profiles"]) == 9


def test_an_unreachable_redis_is_named_without_its_password():
    unreachable = store.OnlineStore("redis://:s3cret@127.0.0.1:1/0")
    with pytest.raises(OnlineStoreUnavailable) as error:
        unreachable.connect()
    assert "redis://:***@127.0.0.1:1/0" in str(error.value)
    assert "s3cret" not in str(error.value)
    assert "SEGWH_ONLINE_REDIS_URL" in str(error.value)
