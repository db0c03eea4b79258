"""The online profile store in Redis: versioned, switched atomically, read in one round trip.

Layout, under a key prefix (``SEGWH_ONLINE_REDIS_PREFIX``, default ``segwh``):

- ``<prefix>:current``: the version served now (the publish version it was loaded from).
- ``<prefix>:versions``: sorted set of every version with keys in Redis (score: load time).
- ``<prefix>:<version>:meta``: hash: as_of, loaded_at, persons, segments, default decision.
- ``<prefix>:<version>:p:<bucket>``: hash person_id -> profile (compact JSON).
- ``<prefix>:<version>:i:<bucket>``: hash identifier pseudonym -> person_id.
- ``<prefix>:<version>:s:<segment_key>``: sorted set (all scores 0, ordered by id) of the
  segment's members, for paging by id.

Every id is a keyed pseudonym (32 hex digits); raw ids never reach Redis. The bucket of an id is
its first ``BUCKET_HEX_DIGITS`` hex digits (4,096 buckets): a hash per entity would cost one key
per person, a single hash per version would make copying or deleting it block Redis for as long
as it takes; buckets keep every command small.

A load writes a new version beside the old one and then switches ``current`` with one SET:
readers resolve ``current`` and read the profile inside one Lua script (``LOOKUP_SCRIPT``), which
Redis runs atomically, so a response comes from one version whole. The previous version's keys
then expire after a grace period (for pages of segment members being read). A load that fails
leaves ``current`` where it was; its partial keys are deleted (or expire, after a crash).

A load of only the persons that changed (the landing sensor's runs) starts the new version as a
server-side copy (``COPY``) of the current one, bucket by bucket, then writes the changed
persons and identifiers and deletes the removed ones; nothing else crosses the network.

The store is for a single Redis server (the Lua script reads keys it derives itself, which
Redis Cluster does not allow); scale reads with replicas.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import redis

from serving.online import connection

log = logging.getLogger(__name__)

BUCKET_HEX_DIGITS = 3
BUCKETS = tuple(f"{i:0{BUCKET_HEX_DIGITS}x}" for i in range(16**BUCKET_HEX_DIGITS))
DEFAULT_PREFIX = "segwh"
DEFAULT_GRACE_SECONDS = 300  # how long a replaced version stays readable (segment member pages)
_WRITE_BATCH = 2_000  # commands per pipeline round trip

# ARGV[1]: prefix, ARGV[2..]: identifier pseudonyms. Returns {version, profile or false, ...};
# {false} when nothing has been loaded yet. Profiles are looked up by the person the identifier
# belongs to, all from the version that ``current`` names when the script runs.
LOOKUP_SCRIPT = """
local DIGITS = BUCKET_HEX_DIGITS
local prefix = ARGV[1]
local version = redis.call('GET', prefix .. ':current')
if not version then return {false} end
local base = prefix .. ':' .. version
local out = {version}
for i = 2, #ARGV do
  local id = ARGV[i]
  local person = redis.call('HGET', base .. ':i:' .. string.sub(id, 1, DIGITS), id)
  if person then
    out[i] = redis.call('HGET', base .. ':p:' .. string.sub(person, 1, DIGITS), person)
  else
    out[i] = false
  end
end
return out
""".replace("BUCKET_HEX_DIGITS", str(BUCKET_HEX_DIGITS))


def bucket(identifier: str) -> str:
    return identifier[:BUCKET_HEX_DIGITS]


@dataclass(frozen=True)
class Keys:
    """Key names of the store under ``prefix``."""

    prefix: str = DEFAULT_PREFIX

    @property
    def current(self) -> str:
        return f"{self.prefix}:current"

    @property
    def versions(self) -> str:
        return f"{self.prefix}:versions"

    def meta(self, version: str) -> str:
        return f"{self.prefix}:{version}:meta"

    def profiles(self, version: str, bucket_: str) -> str:
        return f"{self.prefix}:{version}:p:{bucket_}"

    def identifiers(self, version: str, bucket_: str) -> str:
        return f"{self.prefix}:{version}:i:{bucket_}"

    def members(self, version: str, segment_key: str) -> str:
        return f"{self.prefix}:{version}:s:{segment_key}"

    def of_version(self, version: str, segments: Iterable[str]) -> list[str]:
        """Every key a version can have."""
        return [
            *(self.profiles(version, b) for b in BUCKETS),
            *(self.identifiers(version, b) for b in BUCKETS),
            *(self.members(version, s) for s in segments),
            self.meta(version),
        ]


@dataclass(frozen=True)
class VersionMeta:
    version: str
    as_of: str
    loaded_at: str
    persons: int
    identifiers: int
    segments: tuple[str, ...]
    default_decision: dict

    @classmethod
    def from_redis(cls, version: str, fields: dict) -> VersionMeta:
        text = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        return cls(
            version=version,
            as_of=text["as_of"],
            loaded_at=text["loaded_at"],
            persons=int(text["persons"]),
            identifiers=int(text["identifiers"]),
            segments=tuple(json.loads(text["segments"])),
            default_decision=json.loads(text["default_decision"]),
        )

    def to_redis(self) -> dict[str, str]:
        return {
            "as_of": self.as_of,
            "loaded_at": self.loaded_at,
            "persons": str(self.persons),
            "identifiers": str(self.identifiers),
            "segments": json.dumps(list(self.segments)),
            "default_decision": json.dumps(self.default_decision),
        }


@dataclass(frozen=True)
class Changes:
    """What a load writes. A full load: every person and identifier in ``upsert_*``, nothing
    to remove. A load of changes: the rows that differ from the served version."""

    profiles: Iterable[tuple[str, str]]  # (person_id, profile JSON) to write
    removed_persons: Iterable[str]
    identifiers: Iterable[tuple[str, str]]  # (identifier, person_id) to write
    removed_identifiers: Iterable[str]
    members_added: Iterable[tuple[str, str]]  # (segment_key, person_id)
    members_removed: Iterable[tuple[str, str]]


@dataclass(frozen=True)
class LoadResult:
    version: str
    mode: str  # "full" or "changes"
    profiles_written: int
    profiles_removed: int
    identifiers_written: int
    identifiers_removed: int
    members_changed: int
    seconds: float


class StoreError(RuntimeError):
    """The store cannot be reached or loaded as asked (e.g. a load of changes without a served
    base)."""


@dataclass(frozen=True)
class OnlineStore:
    """Where the store is: the Redis URL (SEGWH_ONLINE_REDIS_URL), the key prefix, and how long a
    replaced version stays readable."""

    url: str
    prefix: str = DEFAULT_PREFIX
    grace_seconds: int = DEFAULT_GRACE_SECONDS

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    def connect(self) -> redis.Redis:
        """A client, checked with a PING (``connection.connect``: errors name the URL without
        its password, and the fix)."""
        return connection.connect(self.url)


def current_version(client: redis.Redis, keys: Keys) -> str | None:
    value = client.get(keys.current)
    return value.decode() if value is not None else None


def version_meta(client: redis.Redis, keys: Keys, version: str) -> VersionMeta | None:
    fields = client.hgetall(keys.meta(version))
    return VersionMeta.from_redis(version, fields) if fields else None


def _batched(items: Iterable, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_grouped(pipe_factory, rows: Iterable[tuple[str, str]], key_of, write) -> int:
    """Send ``write(pipe, key, [rows of that key])`` for ``rows`` grouped by ``key_of(row)``,
    ``_WRITE_BATCH`` rows per round trip; returns the number of rows."""
    count = 0
    for batch in _batched(rows, _WRITE_BATCH):
        grouped: dict[str, list] = {}
        for row in batch:
            grouped.setdefault(key_of(row), []).append(row)
        pipe = pipe_factory()
        for key, members in grouped.items():
            write(pipe, key, members)
        pipe.execute()
        count += len(batch)
    return count


def load(
    client: redis.Redis,
    keys: Keys,
    meta: VersionMeta,
    changes: Changes,
    *,
    base_version: str | None = None,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
) -> LoadResult:
    """Write version ``meta.version`` and switch ``current`` to it.

    Without ``base_version`` the version is written from ``changes`` alone (a full load). With
    it, the version starts as a server-side copy of ``base_version`` (which must be the one
    served) and ``changes`` are applied on top. Either way readers see the old version until the
    single SET of ``current``; a failure before it deletes the new keys and re-raises.
    """
    started = time.perf_counter()
    version = meta.version
    served = current_version(client, keys)
    if base_version is not None and served != base_version:
        raise StoreError(
            f"cannot load changes on top of version {base_version}: Redis serves "
            f"{served or 'nothing'}; load everything instead"
        )
    if served == version:
        raise StoreError(f"version {version} is already served")
    _expire_stale_versions(client, keys, keep=served, grace_seconds=grace_seconds)
    client.zadd(keys.versions, {version: time.time()})
    previous = version_meta(client, keys, base_version) if base_version else None
    try:
        pipe_factory = lambda: client.pipeline(transaction=False)  # noqa: E731
        if previous is not None:
            copies = [(keys.profiles(base_version, b), keys.profiles(version, b)) for b in BUCKETS]
            copies += [
                (keys.identifiers(base_version, b), keys.identifiers(version, b)) for b in BUCKETS
            ]
            copies += [
                (keys.members(base_version, s), keys.members(version, s)) for s in previous.segments
            ]
            for batch in _batched(copies, _WRITE_BATCH):
                pipe = pipe_factory()
                for source, target in batch:
                    pipe.copy(source, target, replace=True)
                pipe.execute()
        profile_key = lambda row: keys.profiles(version, bucket(row[0]))  # noqa: E731
        identifier_key = lambda row: keys.identifiers(version, bucket(row[0]))  # noqa: E731
        member_key = lambda row: keys.members(version, row[0])  # noqa: E731
        hset = lambda pipe, key, rows: pipe.hset(key, mapping=dict(rows))  # noqa: E731
        hdel = lambda pipe, key, rows: pipe.hdel(key, *(r[0] for r in rows))  # noqa: E731
        steps = {  # what is written: (rows, the key of a row, the command for a key's rows)
            "profiles_written": (changes.profiles, profile_key, hset),
            "profiles_removed": (((p,) for p in changes.removed_persons), profile_key, hdel),
            "identifiers_written": (changes.identifiers, identifier_key, hset),
            "identifiers_removed": (
                ((i,) for i in changes.removed_identifiers),
                identifier_key,
                hdel,
            ),
            "members_added": (
                changes.members_added,
                member_key,
                lambda pipe, key, rows: pipe.zadd(key, {r[1]: 0 for r in rows}),
            ),
            "members_removed": (
                changes.members_removed,
                member_key,
                lambda pipe, key, rows: pipe.zrem(key, *(r[1] for r in rows)),
            ),
        }
        counts = {
            name: _write_grouped(pipe_factory, rows, key_of, write)
            for name, (rows, key_of, write) in steps.items()
        }
        client.hset(keys.meta(version), mapping=meta.to_redis())
        # the switch: one command, so every reader sees the old or the new version whole
        client.set(keys.current, version)
    except BaseException:
        _delete_version(client, keys, version, meta.segments)
        raise
    if served is not None:
        _expire_version(client, keys, served, grace_seconds)
    return LoadResult(
        version=version,
        mode="full" if base_version is None else "changes",
        profiles_written=counts["profiles_written"],
        profiles_removed=counts["profiles_removed"],
        identifiers_written=counts["identifiers_written"],
        identifiers_removed=counts["identifiers_removed"],
        members_changed=counts["members_added"] + counts["members_removed"],
        seconds=time.perf_counter() - started,
    )


def _segments_of(client: redis.Redis, keys: Keys, version: str) -> tuple[str, ...]:
    """Segments with keys in ``version``: from its meta, or (a load that crashed before writing
    its meta) from a scan of its member keys."""
    meta = version_meta(client, keys, version)
    if meta is not None:
        return meta.segments
    members_prefix = keys.members(version, "")
    return tuple(
        key.decode()[len(members_prefix) :]
        for key in client.scan_iter(match=f"{members_prefix}*", count=1000)
    )


def _delete_version(client: redis.Redis, keys: Keys, version: str, segments) -> None:
    names = keys.of_version(version, set(segments) | set(_segments_of(client, keys, version)))
    for batch in _batched(names, _WRITE_BATCH):
        client.unlink(*batch)
    client.zrem(keys.versions, version)


def _expire_version(client: redis.Redis, keys: Keys, version: str, seconds: int) -> None:
    names = keys.of_version(version, _segments_of(client, keys, version))
    for batch in _batched(names, _WRITE_BATCH):
        pipe = client.pipeline(transaction=False)
        for name in batch:
            pipe.expire(name, seconds, nx=True)  # a grace already running is not extended
        pipe.execute()


def _expire_stale_versions(client: redis.Redis, keys: Keys, keep: str | None, grace_seconds):
    """Versions other than ``keep``: forget those whose keys are gone, make the others expire
    (leftovers of a crashed load, or versions replaced while their expiry failed)."""
    for raw in client.zrange(keys.versions, 0, -1):
        version = raw.decode()
        if version == keep:
            continue
        if not client.exists(keys.meta(version)) and not any(
            client.scan_iter(match=f"{keys.prefix}:{version}:*", count=1000)
        ):
            client.zrem(keys.versions, version)
        else:
            _expire_version(client, keys, version, grace_seconds)


def erase(
    client: redis.Redis, keys: Keys, person_ids: Iterable[str], identifiers: Iterable[str]
) -> int:
    """Remove persons (their profiles and segment memberships) and identifiers from every
    version in Redis, the served one and those still in their grace period. Returns the number
    of entries removed."""
    person_ids, identifiers = list(person_ids), list(identifiers)
    removed = 0
    for raw in client.zrange(keys.versions, 0, -1):
        version = raw.decode()
        pipe = client.pipeline(transaction=False)
        for person in person_ids:
            pipe.hdel(keys.profiles(version, bucket(person)), person)
        for identifier in identifiers:
            pipe.hdel(keys.identifiers(version, bucket(identifier)), identifier)
        for segment in _segments_of(client, keys, version):
            if person_ids:
                pipe.zrem(keys.members(version, segment), *person_ids)
        removed += sum(pipe.execute())
    return removed


def now_text() -> str:
    return datetime.now(UTC).isoformat()
