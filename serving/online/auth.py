"""API keys of the online API: created, listed and revoked in Redis, checked per request.

A key is ``segwh_`` followed by 43 URL-safe characters: 256 random bits from ``secrets``. Redis
keeps only its SHA-256 (``<prefix>:auth:keys``, hash: digest -> record) and an index by name
(``<prefix>:auth:names``, hash: name -> digest); the key itself is shown once, when it is created.
A single fast hash is enough at rest because the keys are high-entropy random strings, not
passwords: nobody can search 2**256 candidates, so a slow password hash (bcrypt, scrypt) would
only cost time on every check.

A key carries a name (what the access log shows), scopes (``profiles:read``: profiles, decisions
and the batch lookup; ``segments:read``: segments and their members) and a rate limit in requests
per second (a token bucket holding one second's worth of requests, at least one).

The API checks keys through ``KeyCache``: each digest looks Redis up at most once every
``ttl_seconds`` (default 5 s), so a revoked key stops working within that time. Rate limits are
counted in the API process (``RateLimiter``): N API processes behind a balancer let a key make up
to N times its limit.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
import redis.asyncio as aioredis

PROFILES_READ = "profiles:read"
SEGMENTS_READ = "segments:read"
SCOPES = (PROFILES_READ, SEGMENTS_READ)
KEY_PREFIX = "segwh_"
DEFAULT_RATE_LIMIT = 100.0  # requests per second
DEFAULT_CACHE_SECONDS = 5.0
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# KEYS[1]: names hash, KEYS[2]: records hash; ARGV: name, digest, record. 0 if the name exists.
_CREATE_SCRIPT = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""
# KEYS as above; ARGV[1]: name. 1 if a key was revoked.
_REVOKE_SCRIPT = """
local digest = redis.call('HGET', KEYS[1], ARGV[1])
if not digest then return 0 end
redis.call('HDEL', KEYS[2], digest)
redis.call('HDEL', KEYS[1], ARGV[1])
return 1
"""


class ApiKeyError(ValueError):
    """A key cannot be created or revoked as asked."""


@dataclass(frozen=True)
class ApiKey:
    """What the API knows of a key; never the key itself."""

    name: str
    scopes: tuple[str, ...]
    rate_limit: float  # requests per second
    created_at: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "scopes": list(self.scopes),
                "rate_limit": self.rate_limit,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ApiKey:
        record = json.loads(text)
        return cls(
            name=record["name"],
            scopes=tuple(record["scopes"]),
            rate_limit=float(record["rate_limit"]),
            created_at=record["created_at"],
        )


@dataclass(frozen=True)
class AuthKeys:
    """Key names of the API keys under the store's prefix."""

    prefix: str

    @property
    def records(self) -> str:
        return f"{self.prefix}:auth:keys"

    @property
    def names(self) -> str:
        return f"{self.prefix}:auth:names"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    client: redis.Redis,
    prefix: str,
    name: str,
    scopes: Iterable[str],
    rate_limit: float = DEFAULT_RATE_LIMIT,
) -> str:
    """Create a key and return it: the only time it is shown (Redis keeps its hash)."""
    scopes = tuple(dict.fromkeys(scopes))
    if not NAME_PATTERN.match(name):
        raise ApiKeyError(
            f"invalid key name {name!r}: 1-64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise ApiKeyError(
            f"scopes must be one or more of {', '.join(SCOPES)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    if not (rate_limit > 0 and math.isfinite(rate_limit)):
        raise ApiKeyError(
            f"the rate limit must be a positive number of requests per second, not {rate_limit}"
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    record = ApiKey(
        name, scopes, float(rate_limit), datetime.now(UTC).isoformat(timespec="seconds")
    )
    names = AuthKeys(prefix)
    created = client.eval(
        _CREATE_SCRIPT, 2, names.names, names.records, name, digest(key), record.to_json()
    )
    if not created:
        raise ApiKeyError(
            f"a key named {name!r} exists already; revoke it first or pick another name"
        )
    return key


def list_keys(client: redis.Redis, prefix: str) -> list[ApiKey]:
    records = client.hvals(AuthKeys(prefix).records)
    return sorted((ApiKey.from_json(r) for r in records), key=lambda k: k.name)


def revoke_key(client: redis.Redis, prefix: str, name: str) -> bool:
    """Delete the key named ``name``; False if there is none. API processes stop accepting it
    when their cached lookup expires (``KeyCache``)."""
    names = AuthKeys(prefix)
    return bool(client.eval(_REVOKE_SCRIPT, 2, names.names, names.records, name))


class KeyCache:
    """Key lookups of one API process, cached for ``ttl_seconds`` (unknown keys too, so a client
    retrying a wrong key does not cost a Redis round trip per request)."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        ttl_seconds: float = DEFAULT_CACHE_SECONDS,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._client = client
        self._records = AuthKeys(prefix).records
        self._ttl = ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}
        self.hits = 0
        self.misses = 0

    async def resolve(self, key: str) -> ApiKey | None:
        """The key's record, or None for a key that does not exist (or no longer does)."""
        hashed = digest(key)
        now = self._clock()
        entry = self._entries.get(hashed)
        if entry is not None and entry[0] > now:
            self.hits += 1
            return entry[1]
        self.misses += 1
        raw = await self._client.hget(self._records, hashed)
        found = ApiKey.from_json(raw) if raw is not None else None
        if len(self._entries) >= self._max_entries:
            # a flood of distinct wrong keys must not grow memory: drop the expired entries,
            # or everything if none has expired
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[hashed] = (now + self._ttl, found)
        return found


class RateLimiter:
    """A token bucket per key name, in this process: ``rate`` tokens per second, holding up to
    one second's worth (at least one token)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # name -> [tokens, last refill]

    def wait_seconds(self, name: str, rate: float) -> float:
        """0 when a request may pass now (a token is taken), else seconds until one may."""
        now = self._clock()
        capacity = max(rate, 1.0)
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = [capacity, now]
        else:
            bucket[0] = min(capacity, bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / rate


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key of a request: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>`` (raw ASGI
    headers, names lower-case)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, credentials = value.partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip().decode("latin-1")
        elif name == b"x-api-key" and value.strip():
            return value.strip().decode("latin-1")
    return None
