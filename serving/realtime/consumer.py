"""The stream consumer (`segwh stream`): events from the broker stream -> per-person in-session
state and real-time segments in Redis, activation triggers to the outbox stream.

It reads the stream in the consumer group ``realtime``. Each batch of entries is applied in one
Redis transaction (WATCH the states it reads, MULTI/EXEC the states, the ``seen`` marks of its
messages, deadlines, history and outbox entries), and only then acknowledged. So:
- a crash before EXEC changes nothing: the entries are read again;
- a crash after EXEC, before XACK: the entries are read again, every message is ``seen``: nothing
  changes twice (idempotent by messageId);
- another consumer changing the same person meanwhile aborts the EXEC (WATCH): it is retried.
State is only in Redis: a restart continues where the last transaction left.

Time: the rules run on event time; the watermark (latest event time seen minus
``allowed_lateness_seconds``, default 60 s) drives the sweep of persons whose cart is abandoned
or session ended, and events older than the watermark are too late for the state (``engine``).

Outbox contract (stream ``<prefix>:rt:outbox``; read it with your own consumer group, XACK what
you handled): one entry per person per episode, written in the same transaction as the state that
fired it, so never twice for one episode. Fields: ``event_id`` (``<trigger>:<person>:<episode>``,
stable: deduplicate on it if your own processing may repeat), ``trigger`` (the rule's trigger,
e.g. ``cart_abandoned``), ``segment``, ``person`` (the identifier pseudonym: user id's when
known), ``episode`` (the session's start, epoch ms), ``occurred_at`` (event time of the trigger,
ISO-8601), ``emitted_at``. No personal data: resolve the person through the API or the
warehouse. An erasure deletes the person's entries not yet consumed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import redis

from privacy.pseudonyms import pseudonym
from serving.realtime import engine
from serving.realtime.rules import RuleSet
from serving.realtime.state import SEEN_SECONDS, STATE_SECONDS, RealtimeKeys
from warehouse.broker import REALTIME_GROUP, Entry, StreamBroker

log = logging.getLogger("segwh.stream")

DEFAULT_CONSUMER = "realtime-1"
DEFAULT_ALLOWED_LATENESS_SECONDS = 60
HISTORY_SEPARATOR = "|"


@dataclass
class BatchStats:
    entries: int = 0
    messages: int = 0
    applied: int = 0
    duplicate: int = 0
    late: int = 0
    suppressed: int = 0
    entered: int = 0
    triggers: int = 0
    retries: int = 0
    extra: dict = field(default_factory=dict)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _page_type(message: dict) -> str | None:
    properties = message.get("properties") or {}
    value = properties.get("page_type") if isinstance(properties, dict) else None
    if not value and message.get("type") in ("page", "screen"):
        value = message.get("category")
    return str(value) if value else None


def _event_type(message: dict) -> str:
    return message["event"] if message.get("type") == "track" else message.get("type", "")


class StreamConsumer:
    def __init__(
        self,
        client: redis.Redis,
        broker: StreamBroker,
        rules: RuleSet,
        pseudonymization_key: bytes,
        keys: RealtimeKeys,
        *,
        consumer: str = DEFAULT_CONSUMER,
        allowed_lateness_seconds: int = DEFAULT_ALLOWED_LATENESS_SECONDS,
    ):
        self.client = client
        self.broker = broker
        self.rules = rules
        self.key = pseudonymization_key
        self.keys = keys
        self.consumer = consumer
        self.lateness_ms = allowed_lateness_seconds * 1000

    def _pseudonym(self, value) -> str | None:
        return pseudonym(str(value), self.key) if value not in (None, "") else None

    def _events(self, entries: list[Entry]) -> tuple[list[engine.Event], list[tuple[str, str]]]:
        events, links = [], []
        for entry in entries:
            for message in orjson.loads(entry.payload):
                user = self._pseudonym(message.get("userId"))
                anonymous = self._pseudonym(
                    message.get("previousId")
                    if message.get("type") == "alias"
                    else message.get("anonymousId")
                )
                if user and anonymous:
                    links.append((anonymous, user))
                at_ms = engine.to_ms(message.get("timestamp") or "")
                if at_ms is None:
                    continue
                properties = message.get("properties") or {}
                product = properties.get("product_id") if isinstance(properties, dict) else None
                page_type = _page_type(message)
                events.append(
                    engine.Event(
                        message_id=str(message["messageId"]),
                        actor=user or anonymous,
                        at_ms=at_ms,
                        role=self.rules.role(_event_type(message), page_type),
                        page_type=page_type,
                        product_id=str(product) if product not in (None, "") else None,
                    )
                )
        return events, links

    def process(self, entries: list[Entry]) -> BatchStats:
        """Apply ``entries`` in one transaction (retried on a concurrent change)."""
        events, links = self._events(entries)
        stats = BatchStats(entries=len(entries), messages=len(events))
        if not events and not links:
            return stats
        actors = sorted({e.actor for e in events})
        state_keys = [self.keys.state(a) for a in actors]
        seen_keys = [self.keys.seen(e.message_id) for e in events]
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*state_keys, self.keys.clock)
                    stored = pipe.mget(state_keys) if state_keys else []
                    seen = pipe.mget(seen_keys) if seen_keys else []
                    suppressed = pipe.smismember(self.keys.suppressed, actors) if actors else []
                    max_seen = int(pipe.hget(self.keys.clock, "max_event_ms") or 0)
                    result = self._compute(
                        events, actors, stored, seen, suppressed, max_seen, stats
                    )
                    pipe.multi()
                    self._write(pipe, result, links, events, seen)
                    pipe.execute()
                    return stats
                except redis.WatchError:
                    stats.retries += 1
                    stats = BatchStats(
                        entries=len(entries), messages=len(events), retries=stats.retries
                    )

    def _compute(self, events, actors, stored, seen, suppressed, max_seen, stats):
        states = {a: (orjson.loads(s) if s else {}) for a, s in zip(actors, stored, strict=True)}
        blocked = {a for a, s in zip(actors, suppressed, strict=True) if s}
        changed: set[str] = set()
        entered: list[tuple[str, str, int]] = []
        triggers: list[dict] = []
        batch_seen: set[str] = set()
        for event, was_seen in zip(events, seen, strict=True):
            if was_seen or event.message_id in batch_seen:
                stats.duplicate += 1
                continue
            batch_seen.add(event.message_id)
            if event.actor in blocked:
                stats.suppressed += 1
                continue
            watermark = max_seen - self.lateness_ms if max_seen else 0
            outcome = engine.apply(states[event.actor], event, self.rules, watermark)
            if outcome.late:
                stats.late += 1
                continue
            max_seen = max(max_seen, event.at_ms)
            stats.applied += 1
            changed.add(event.actor)
            entered += [(seg, event.actor, start) for seg, start in outcome.entered]
            triggers += outcome.triggers
        stats.entered += len(entered)
        stats.triggers += len(triggers)
        return {
            "states": {a: states[a] for a in changed},
            "entered": entered,
            "triggers": triggers,
            "max_seen": max_seen,
            "batch_seen": batch_seen,
        }

    def _write(self, pipe, result, links, events, seen) -> None:
        keys = self.keys
        for anonymous, user in links:
            pipe.set(keys.link(anonymous), user)
        for actor, state in result["states"].items():
            pipe.set(keys.state(actor), orjson.dumps(state), ex=STATE_SECONDS)
            deadline = engine.next_deadline(state, self.rules)
            if deadline is None:
                pipe.zrem(keys.deadlines, actor)
            else:
                pipe.zadd(keys.deadlines, {actor: deadline})
        for message_id in result["batch_seen"]:
            pipe.set(keys.seen(message_id), 1, ex=SEEN_SECONDS)
        if result["max_seen"]:
            pipe.hset(keys.clock, "max_event_ms", result["max_seen"])
        self._write_effects(pipe, result["entered"], result["triggers"])

    def _write_effects(self, pipe, entered, triggers) -> None:
        keys = self.keys
        if triggers:
            pipe.hincrby(keys.stats, "triggers", len(triggers))
        if entered:
            pipe.sadd(
                keys.history,
                *(
                    HISTORY_SEPARATOR.join((seg, actor, str(start)))
                    for seg, actor, start in entered
                ),
            )
        for trigger in triggers:
            pipe.xadd(
                keys.outbox,
                {
                    "event_id": f"{trigger['trigger']}:{trigger['person']}:{trigger['episode']}",
                    "trigger": trigger["trigger"],
                    "segment": trigger["segment"],
                    "person": trigger["person"],
                    "episode": trigger["episode"],
                    "occurred_at": _iso(trigger["at_ms"]),
                    "emitted_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                },
            )

    def sweep(self, limit: int = 1_000) -> BatchStats:
        """Advance the persons whose deadline the watermark passed (carts abandoned, sessions
        ended), in one transaction."""
        stats = BatchStats()
        max_seen = int(self.client.hget(self.keys.clock, "max_event_ms") or 0)
        if not max_seen:
            return stats
        watermark = max_seen - self.lateness_ms
        due = [
            a.decode()
            for a in self.client.zrangebyscore(
                self.keys.deadlines, "-inf", watermark, start=0, num=limit
            )
        ]
        if not due:
            return stats
        state_keys = [self.keys.state(a) for a in due]
        while True:
            with self.client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*state_keys, self.keys.deadlines)
                    stored = pipe.mget(state_keys)
                    entered, triggers, states = [], [], {}
                    for actor, raw in zip(due, stored, strict=True):
                        state = orjson.loads(raw) if raw else {}
                        outcome = engine.Outcome()
                        engine.advance(state, watermark, self.rules, actor, outcome)
                        states[actor] = state
                        entered += [(seg, actor, start) for seg, start in outcome.entered]
                        triggers += outcome.triggers
                    pipe.multi()
                    for actor, state in states.items():
                        if state:
                            pipe.set(self.keys.state(actor), orjson.dumps(state), ex=STATE_SECONDS)
                        deadline = engine.next_deadline(state, self.rules)
                        if deadline is None:
                            pipe.zrem(self.keys.deadlines, actor)
                        else:
                            pipe.zadd(self.keys.deadlines, {actor: deadline})
                    self._write_effects(pipe, entered, triggers)
                    pipe.execute()
                    stats.entered, stats.triggers = len(entered), len(triggers)
                    return stats
                except redis.WatchError:
                    stats.retries += 1

    def step(self, max_entries: int = 200, block_ms: int = 200) -> BatchStats:
        """One read-apply-acknowledge round, then a sweep."""
        entries = self.broker.read(REALTIME_GROUP, self.consumer, max_entries, block_ms)
        stats = self.process(entries) if entries else BatchStats()
        if entries:
            self.broker.ack(REALTIME_GROUP, [e.id for e in entries])
            pipe = self.client.pipeline(transaction=False)
            for name in ("messages", "applied", "duplicate", "late", "suppressed"):
                value = getattr(stats, name)
                if value:
                    pipe.hincrby(self.keys.stats, name, value)
            pipe.hset(self.keys.stats, "heartbeat_ms", int(time.time() * 1000))
            pipe.execute()
        swept = self.sweep()
        stats.entered += swept.entered
        stats.triggers += swept.triggers
        return stats

    def run(self, stop: threading.Event | None = None, block_ms: int = 200) -> None:
        self.broker.ensure_groups()
        stop = stop or threading.Event()
        while not stop.is_set():
            self.step(block_ms=block_ms)
            self.client.hset(self.keys.stats, "heartbeat_ms", int(time.time() * 1000))


def from_settings(settings, *, consumer: str = DEFAULT_CONSUMER) -> StreamConsumer:
    """The consumer on the settings' broker stream, writing where the API reads (the online
    store's Redis and prefix). Needs SEGWH_PSEUDONYMIZATION_KEY."""
    from privacy.pseudonyms import key_from_environment
    from serving.realtime.rules import load_rule_set
    from warehouse.broker import RedisStreamBroker

    key = key_from_environment()
    if not settings.online_redis_url:
        raise ValueError(
            "SEGWH_ONLINE_REDIS_URL is not set: the stream consumer writes the real-time "
            "segments where the online API reads them"
        )
    client = redis.Redis.from_url(settings.online_redis_url, socket_timeout=10)
    client.ping()
    broker_client = redis.Redis.from_url(settings.broker_url)
    return StreamConsumer(
        client,
        RedisStreamBroker(broker_client, settings.broker_stream),
        load_rule_set(settings.dbt_project_dir),
        key,
        RealtimeKeys(settings.online_redis_prefix),
        consumer=consumer,
        allowed_lateness_seconds=settings.stream_allowed_lateness_seconds,
    )


def serve(settings, *, consumer: str = DEFAULT_CONSUMER) -> None:
    """`segwh stream`: run until SIGTERM/SIGINT (the batch in hand is finished first)."""
    import signal

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stream_consumer = from_settings(settings, consumer=consumer)
    log.info("stream consumer %s started", consumer)
    stream_consumer.run(stop)


def main() -> None:
    from warehouse.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    serve(load_settings())


if __name__ == "__main__":
    main()
