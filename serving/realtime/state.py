"""Where the real-time state lives in Redis, and how it is read, erased and reported.

Keys, under ``<prefix>:rt`` (``prefix``: the online store's, SEGWH_ONLINE_REDIS_PREFIX), every id a
keyed pseudonym (raw ids, ip and user agent never reach the state):

- ``st:<actor>``: one person's state (JSON, ``engine``), its ``seg`` the held real-time
  segments, read by the API; it expires ``STATE_SECONDS`` after its last change;
- ``link:<anonymous pseudonym>``: the user pseudonym an identify/alias linked it to (the API finds
  the state of a visitor by either id);
- ``seen:<messageId>``: set when a message's effect was written (same transaction), for 7 days:
  a redelivered message changes nothing;
- ``deadlines``: sorted set actor -> when time alone changes its state (cart abandoned, session
  end), swept as the watermark passes;
- ``clock``: hash ``max_event_ms`` (the watermark is it minus the allowed lateness);
- ``history``: set ``segment|actor|session start ms`` of every membership entered (the nightly
  reconciliation compares it with SQL on the warehouse's events);
- ``outbox``: the activation stream (see ``consumer``'s contract);
- ``suppressed``: pseudonyms of erased persons, whose later events the consumer ignores;
- ``stats``: counters processed, duplicate, late, suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import redis

SEEN_SECONDS = 7 * 24 * 3600
STATE_SECONDS = 7 * 24 * 3600  # a person's state expires a week after their last change

# ARGV[1]: the rt prefix, ARGV[2..]: identifier pseudonyms; one state JSON (or false) each
REALTIME_LOOKUP_SCRIPT = """
local p = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local actor = redis.call('GET', p .. ':link:' .. id) or id
  local state = redis.call('GET', p .. ':st:' .. actor)
  if (not state) and actor ~= id then state = redis.call('GET', p .. ':st:' .. id) end
  out[i - 1] = state or false
end
return out
"""


@dataclass(frozen=True)
class RealtimeKeys:
    prefix: str = "segwh"

    @property
    def base(self) -> str:
        return f"{self.prefix}:rt"

    def state(self, actor: str) -> str:
        return f"{self.base}:st:{actor}"

    def link(self, identifier: str) -> str:
        return f"{self.base}:link:{identifier}"

    def seen(self, message_id: str) -> str:
        return f"{self.base}:seen:{message_id}"

    @property
    def deadlines(self) -> str:
        return f"{self.base}:deadlines"

    @property
    def clock(self) -> str:
        return f"{self.base}:clock"

    @property
    def history(self) -> str:
        return f"{self.base}:history"

    @property
    def outbox(self) -> str:
        return f"{self.base}:outbox"

    @property
    def suppressed(self) -> str:
        return f"{self.base}:suppressed"

    @property
    def stats(self) -> str:
        return f"{self.base}:stats"


def segments_of(state_json: bytes | None) -> dict[str, int]:
    """Held segments -> since (epoch ms) of a stored state."""
    if not state_json:
        return {}
    return orjson.loads(state_json).get("seg", {})


def erase(client: redis.Redis, keys: RealtimeKeys, identifiers: list[str]) -> int:
    """Remove every trace of these identifier pseudonyms from the real-time state, the history
    and the outbox, and suppress their later events. Returns the number of entries removed."""
    if not identifiers:
        return 0
    actors = set(identifiers)
    for identifier in identifiers:
        linked = client.get(keys.link(identifier))
        if linked:
            actors.add(linked.decode())
    removed = 0
    pipe = client.pipeline(transaction=False)
    for actor in actors:
        pipe.delete(keys.state(actor), keys.link(actor))
        pipe.zrem(keys.deadlines, actor)
    removed += sum(pipe.execute())
    stale = [
        member
        for member in client.sscan_iter(keys.history, count=1000)
        if member.decode().split("|")[1] in actors
    ]
    if stale:
        removed += client.srem(keys.history, *stale)
    outbox = [
        entry_id
        for entry_id, fields in client.xrange(keys.outbox)
        if fields.get(b"person", b"").decode() in actors
    ]
    if outbox:
        removed += client.xdel(keys.outbox, *outbox)
    client.sadd(keys.suppressed, *actors)
    return removed
