"""The event stream between the collector and its readers: a small broker interface, on Redis
Streams by default.

The collector appends one entry per accepted HTTP request (its valid messages, enriched, as one
JSON array); two consumer groups read every entry: ``landing`` (the landing-file writer, the
warehouse's path) and ``realtime`` (the stream consumer, in-session segments). The stream is the
log of record: the collector answers 200 only after the append returned, and an entry leaves the
stream only when every group has acknowledged it (``trim_acknowledged``).

Delivery is at least once: a reader that dies before acknowledging gets its entries again when
it restarts under the same consumer name (its pending entries are read first), and entries
pending longer than ``claim_idle_ms`` in a consumer that never came back are claimed by another
one. Readers make their effect idempotent (landing files named by stream ids, raw.events keyed
by event_id, the consumer's per-message marks).

Plugging in another broker (Kafka, NATS JetStream) means implementing ``StreamBroker`` and
``AsyncAppender``: ``append`` = a produce with acks=all (Kafka) / a JetStream publish awaited for
its ack; a consumer group = a Kafka consumer group (``read`` = poll, ``ack`` = commit the offset
after processing, the pending re-read = resuming from the committed offset) / a durable
JetStream consumer with explicit ack; ``lag`` = end offset minus committed offset;
``trim_acknowledged`` = the topic's retention (Kafka keeps by time/size, not by ack: set
retention longer than the longest outage of a reader). Entry ids are then ``partition-offset``
strings; readers only compare them for equality and use them in file names. Kafka partitions by
person (key = anonymousId/userId) would scale the realtime consumer horizontally with state
per partition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import redis
import redis.asyncio as aioredis

DEFAULT_STREAM = "segwh:events"
LANDING_GROUP = "landing"
REALTIME_GROUP = "realtime"
GROUPS = (LANDING_GROUP, REALTIME_GROUP)
FIELD = b"m"  # the entry's one field: a JSON array of messages


@dataclass(frozen=True)
class Entry:
    id: str
    payload: bytes


@dataclass(frozen=True)
class GroupLag:
    group: str
    pending: int  # delivered, not acknowledged
    lag: int  # not delivered yet
    last_delivered: str
    length: int  # entries in the stream


class StreamBroker(Protocol):
    def append(self, payloads: Sequence[bytes]) -> list[str]: ...

    def ensure_groups(self, groups: Sequence[str] = GROUPS) -> None: ...

    def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[Entry]: ...

    def ack(self, group: str, ids: Sequence[str]) -> None: ...

    def lag(self, group: str) -> GroupLag: ...

    def trim_acknowledged(self, groups: Sequence[str] = GROUPS) -> int: ...


class AsyncAppender(Protocol):
    async def append(self, payloads: Sequence[bytes]) -> list[str]: ...

    async def aclose(self) -> None: ...


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStreamBroker:
    """``StreamBroker`` on one Redis stream (XADD, XREADGROUP, XACK, XAUTOCLAIM)."""

    def __init__(self, client: redis.Redis, stream: str = DEFAULT_STREAM, claim_idle_ms=30_000):
        self.client = client
        self.stream = stream
        self.claim_idle_ms = claim_idle_ms
        self._own_pending_done: set[tuple[str, str]] = set()

    def append(self, payloads: Sequence[bytes]) -> list[str]:
        pipe = self.client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(self.stream, {FIELD: payload})
        return [_text(i) for i in pipe.execute()]

    def ensure_groups(self, groups: Sequence[str] = GROUPS) -> None:
        for group in groups:
            try:
                # from the start of the stream: a group created after the collector started
                # still gets every entry not trimmed (trimming waits for every group in GROUPS)
                self.client.xgroup_create(self.stream, group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self, group: str, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """This consumer's own pending entries first (after a restart), then entries idle in
        a dead consumer, then new ones (blocking up to ``block_ms``)."""
        key = (group, consumer)
        if key not in self._own_pending_done:
            reply = self.client.xreadgroup(group, consumer, {self.stream: "0"}, count=count)
            entries = self._entries(reply)
            if entries:
                return entries
            self._own_pending_done.add(key)
        claimed = self.client.xautoclaim(
            self.stream, group, consumer, self.claim_idle_ms, start_id="0-0", count=count
        )
        entries = [Entry(_text(i), f[FIELD]) for i, f in claimed[1] if f]
        if entries:
            return entries
        reply = self.client.xreadgroup(
            group, consumer, {self.stream: ">"}, count=count, block=block_ms or None
        )
        return self._entries(reply)

    @staticmethod
    def _entries(reply) -> list[Entry]:
        out = []
        for _stream, items in reply or []:
            out.extend(Entry(_text(i), f[FIELD]) for i, f in items if f)
        return out

    def ack(self, group: str, ids: Sequence[str]) -> None:
        if ids:
            self.client.xack(self.stream, group, *ids)

    def lag(self, group: str) -> GroupLag:
        length = self.client.xlen(self.stream)
        for info in self.client.xinfo_groups(self.stream):
            if _text(info["name"]) == group:
                lag = info.get("lag")
                return GroupLag(
                    group=group,
                    pending=int(info["pending"]),
                    lag=int(lag) if lag is not None else length,
                    last_delivered=_text(info["last-delivered-id"]),
                    length=length,
                )
        return GroupLag(group, 0, length, "0-0", length)

    def trim_acknowledged(self, groups: Sequence[str] = GROUPS) -> int:
        """Delete the entries every group has read and acknowledged; returns how many."""
        bounds = []
        existing = {_text(i["name"]): i for i in self.client.xinfo_groups(self.stream)}
        for group in groups:
            if group not in existing:
                return 0  # a group not created yet must still get everything
            oldest_pending = self.client.xpending(self.stream, group)["min"]
            bound = _text(oldest_pending) if oldest_pending else None
            if bound is None:  # nothing pending: everything up to last delivered is done
                ms, seq = _text(existing[group]["last-delivered-id"]).split("-")
                bound = f"{ms}-{int(seq) + 1}"
            bounds.append(bound)
        if not bounds:
            return 0
        minid = min(bounds, key=lambda i: tuple(int(p) for p in i.split("-")))
        return int(self.client.xtrim(self.stream, minid=minid, approximate=False))


class RedisStreamAppender:
    """``AsyncAppender`` for the collector: one pipelined round trip per request."""

    def __init__(self, url: str, stream: str = DEFAULT_STREAM):
        self.client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.stream = stream

    async def append(self, payloads: Sequence[bytes]) -> list[str]:
        if len(payloads) == 1:
            return [_text(await self.client.xadd(self.stream, {FIELD: payloads[0]}))]
        pipe = self.client.pipeline(transaction=False)
        for payload in payloads:
            pipe.xadd(self.stream, {FIELD: payload})
        return [_text(i) for i in await pipe.execute()]

    async def aclose(self) -> None:
        await self.client.aclose()
