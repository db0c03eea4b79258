"""API keys: hashed at rest, scoped, revocable, rate-limited; checked by the real API."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest
import redis.asyncio as aioredis
from online_api_helpers import Person

from serving.online import auth

ALICE = Person("auth-alice", ["user-auth-alice"])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def served(api_store, api_server):
    api_store.load("auth-1", [ALICE])
    return api_server


def test_keys_are_stored_hashed_and_listed_without_secrets(api_store):
    key = auth.create_key(
        api_store.client, api_store.prefix, "hashed", [auth.PROFILES_READ], rate_limit=50
    )
    assert key.startswith("segwh_") and len(key) >= 40
    names = auth.AuthKeys(api_store.prefix)
    stored = api_store.client.hgetall(names.records)
    digest = hashlib.sha256(key.encode()).hexdigest().encode()
    assert digest in stored
    everything = b" ".join([*stored, *stored.values(), *api_store.client.hvals(names.names)])
    assert key.encode() not in everything
    listed = {k.name: k for k in auth.list_keys(api_store.client, api_store.prefix)}
    assert listed["hashed"].scopes == (auth.PROFILES_READ,)
    assert listed["hashed"].rate_limit == 50
    assert key not in repr(listed)
    other = auth.create_key(api_store.client, api_store.prefix, "hashed-2", [auth.PROFILES_READ])
    assert other != key


def test_a_key_needs_a_free_name_known_scopes_and_a_positive_rate(api_store):
    client, prefix = api_store.client, api_store.prefix
    auth.create_key(client, prefix, "taken", [auth.SEGMENTS_READ])
    with pytest.raises(auth.ApiKeyError, match="exists already"):
        auth.create_key(client, prefix, "taken", [auth.SEGMENTS_READ])
    with pytest.raises(auth.ApiKeyError, match="scopes"):
        auth.create_key(client, prefix, "bad-scope", ["profiles:write"])
    with pytest.raises(auth.ApiKeyError, match="scopes"):
        auth.create_key(client, prefix, "no-scope", [])
    with pytest.raises(auth.ApiKeyError, match="rate limit"):
        auth.create_key(client, prefix, "no-rate", [auth.SEGMENTS_READ], rate_limit=0)
    with pytest.raises(auth.ApiKeyError, match="invalid key name"):
        auth.create_key(client, prefix, "with space", [auth.SEGMENTS_READ])
    assert auth.revoke_key(client, prefix, "taken") is True
    assert auth.revoke_key(client, prefix, "taken") is False
    assert "taken" not in {k.name for k in auth.list_keys(client, prefix)}


def test_the_rate_limiter_is_a_token_bucket_per_key():
    clock = FakeClock()
    limiter = auth.RateLimiter(clock)
    assert [limiter.wait_seconds("a", 2) for _ in range(3)] == [0, 0, 0.5]
    assert limiter.wait_seconds("b", 2) == 0  # another key has its own bucket
    clock.now += 0.5
    assert limiter.wait_seconds("a", 2) == 0
    assert limiter.wait_seconds("a", 2) == pytest.approx(0.5)
    clock.now += 10  # refills to one second's worth, not more
    assert [limiter.wait_seconds("a", 2) for _ in range(3)] == [0, 0, 0.5]
    slow = [limiter.wait_seconds("slow", 0.5) for _ in range(2)]
    assert slow == [0, 2.0]  # below one request per second: a bucket of one


def test_key_lookups_are_cached_until_the_ttl(redis_url, api_store):
    key = api_store.create_key("cached", [auth.PROFILES_READ])
    clock = FakeClock()

    async def run():
        client = aioredis.Redis.from_url(redis_url)
        cache = auth.KeyCache(client, api_store.prefix, ttl_seconds=5, clock=clock)
        try:
            found = await cache.resolve(key)
            assert found is not None and found.name == "cached"
            assert await cache.resolve("segwh_wrong") is None
            auth.revoke_key(api_store.client, api_store.prefix, "cached")
            clock.now += 4.9
            assert (await cache.resolve(key)).name == "cached"  # cached: still accepted
            clock.now += 0.2
            assert await cache.resolve(key) is None  # the ttl passed: revoked
            assert (cache.hits, cache.misses) == (1, 3)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_the_key_comes_from_bearer_or_x_api_key():
    assert auth.presented_key([(b"authorization", b"Bearer abc")]) == "abc"
    assert auth.presented_key([(b"authorization", b"bearer  abc ")]) == "abc"
    assert auth.presented_key([(b"x-api-key", b"abc")]) == "abc"
    assert auth.presented_key([(b"authorization", b"Basic abc")]) is None
    assert auth.presented_key([(b"authorization", b"Bearer ")]) is None
    assert auth.presented_key([]) is None


def test_the_api_rejects_missing_and_unknown_keys(served):
    with served.client() as client:
        missing = client.get("/v1/profiles/user-auth-alice")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert missing.json()["error"] == "unauthenticated"
        batch = client.post("/v1/profiles:batch", json={"ids": ["user-auth-alice"]})
        assert batch.status_code == 401
        assert client.get("/v1/segments/vip/members").status_code == 401
        wrong = client.get(
            "/v1/profiles/user-auth-alice", headers={"Authorization": "Bearer segwh_wrong"}
        )
        assert wrong.status_code == 401
        assert "unknown or revoked" in wrong.json()["detail"]
        assert "segwh_wrong" not in wrong.text


def test_the_api_takes_either_header_and_checks_scopes(served, api_store):
    profiles = api_store.create_key("scoped-profiles", [auth.PROFILES_READ])
    segments = api_store.create_key("scoped-segments", [auth.SEGMENTS_READ])
    with served.client() as client:
        bearer = client.get(
            "/v1/profiles/user-auth-alice", headers={"Authorization": f"Bearer {profiles}"}
        )
        header = client.get("/v1/decisions/user-auth-alice", headers={"X-API-Key": profiles})
        assert bearer.status_code == header.status_code == 200
        assert bearer.json()["known"] is True
        forbidden = client.get("/v1/profiles/user-auth-alice", headers={"X-API-Key": segments})
        assert forbidden.status_code == 403
        assert "profiles:read" in forbidden.json()["detail"]
        batch = client.post(
            "/v1/profiles:batch", json={"ids": ["x"]}, headers={"X-API-Key": segments}
        )
        assert batch.status_code == 403
        listing = client.get("/v1/segments", headers={"X-API-Key": profiles})
        assert listing.status_code == 403


def test_a_revoked_key_is_refused_once_the_cache_expires(served, api_store):
    key = api_store.create_key("to-revoke", [auth.PROFILES_READ])
    with served.client(key) as client:
        assert client.get("/v1/profiles/user-auth-alice").status_code == 200
        assert auth.revoke_key(api_store.client, api_store.prefix, "to-revoke")
        revoked_at = time.monotonic()
        deadline = revoked_at + 10
        while (status := client.get("/v1/profiles/user-auth-alice").status_code) == 200:
            assert time.monotonic() < deadline, "the revoked key was still accepted after 10 s"
            time.sleep(0.1)
        assert status == 401
        assert time.monotonic() - revoked_at < 1 + 1.5  # the server's cache: 1 s
        assert client.get("/v1/profiles/user-auth-alice").status_code == 401


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(served, api_store):
    key = api_store.create_key("limited", [auth.PROFILES_READ], rate_limit=3)
    with served.client(key) as client:
        statuses = [client.get("/v1/profiles/user-auth-alice") for _ in range(10)]
        codes = [r.status_code for r in statuses]
        assert codes[:3] == [200, 200, 200]
        assert 429 in codes
        limited = next(r for r in statuses if r.status_code == 429)
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.json()["error"] == "rate_limited"
        time.sleep(1.1)
        assert client.get("/v1/profiles/user-auth-alice").status_code == 200
    other = api_store.create_key("unlimited", [auth.PROFILES_READ])
    with served.client(other) as client:  # the limit is per key
        assert client.get("/v1/profiles/user-auth-alice").status_code == 200
