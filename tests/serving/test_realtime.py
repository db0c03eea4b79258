"""Real-time segments: the rule engine on event time, the stream consumer on the real Redis
(idempotent by messageId, state surviving a restart, the outbox once per episode, erasure), and
the API answering the batch profile and the real-time segments side by side."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis

from privacy.pseudonyms import key_from_environment, pseudonym
from serving.realtime import engine
from serving.realtime.consumer import StreamConsumer
from serving.realtime.rules import load_rule_set
from serving.realtime.state import RealtimeKeys, erase
from warehouse.broker import REALTIME_GROUP, RedisStreamBroker
from warehouse.settings import DBT_PROJECT_DIR

RULES = load_rule_set(DBT_PROJECT_DIR)
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MIN = 60_000


def _ms(minutes: float) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp() * 1000)


def _event(minutes: float, role: str | None, *, page_type=None, product=None, n=[0]):  # noqa: B006
    n[0] += 1
    return engine.Event(f"e{n[0]}", "actor", _ms(minutes), role, page_type, product)


def test_the_rules_come_from_the_seeds_and_dbt_vars():
    assert {r.segment_key for r in RULES.rules} == {
        "rt_cart_abandoned",
        "rt_content_explorer",
        "rt_high_intent",
    }
    assert RULES.session_timeout_minutes == 30
    assert RULES.role("Product Added", None) == "add_to_cart"
    assert RULES.role("page", "content") == "page_view"


def test_content_explorer_needs_more_than_three_content_pages_in_one_session():
    state: dict = {}
    entered = []
    for minute in (0, 1, 2):
        entered += engine.apply(
            state, _event(minute, "page_view", page_type="content"), RULES, 0
        ).entered
    engine.apply(state, _event(3, "page_view", page_type="home"), RULES, 0)
    assert entered == [] and "rt_content_explorer" not in state["seg"]
    # a gap of 30 minutes starts a new session: the count starts again
    later = engine.apply(state, _event(34, "page_view", page_type="content"), RULES, 0)
    assert later.entered == [] and state["c"]["rt_content_explorer"] == 1
    for minute in (35, 36):
        engine.apply(state, _event(minute, "page_view", page_type="content"), RULES, 0)
    fourth = engine.apply(state, _event(37, "page_view", page_type="content"), RULES, 0)
    assert fourth.entered == [("rt_content_explorer", _ms(34))]


def test_high_intent_is_three_views_of_one_product_within_ten_minutes_in_any_order():
    state: dict = {}
    engine.apply(state, _event(0, "product_view", product="p1"), RULES, 0)
    engine.apply(state, _event(5, "product_view", product="p2"), RULES, 0)
    engine.apply(state, _event(11, "product_view", product="p1"), RULES, 0)
    engine.apply(state, _event(12, "product_view", product="p2"), RULES, 0)
    assert "rt_high_intent" not in state["seg"]  # twice each, not within 10 minutes
    engine.apply(state, _event(13, "product_view", product="p1"), RULES, 0)
    assert "rt_high_intent" not in state["seg"]  # p1 at 0, 11, 13: two within 10 minutes
    # out of order (within the lateness): p2 at 14 and 9 -> 5, 9, 12, 14 in ten minutes
    engine.apply(state, _event(14, "product_view", product="p2"), RULES, 0)
    assert state["seg"] == {"rt_high_intent": _ms(14)}


def test_cart_abandoned_after_thirty_minutes_once_per_episode_and_a_late_event_is_ignored():
    state: dict = {}
    engine.apply(state, _event(0, "add_to_cart", product="p1"), RULES, 0)
    engine.apply(state, _event(5, "page_view", page_type="home"), RULES, 0)
    assert engine.next_deadline(state, RULES) == _ms(35)
    early = engine.Outcome()
    engine.advance(state, _ms(34), RULES, "actor", early)
    assert early.entered == [] and early.triggers == []
    due = engine.Outcome()
    engine.advance(state, _ms(35), RULES, "actor", due)
    assert due.entered == [("rt_cart_abandoned", _ms(0))]
    assert [t["trigger"] for t in due.triggers] == ["cart_abandoned"]
    again = engine.Outcome()
    engine.advance(state, _ms(90), RULES, "actor", again)
    assert again.triggers == []  # once per episode
    # too late: older than the watermark, no effect
    late = engine.apply(state, _event(20, "purchase"), RULES, watermark_ms=_ms(40))
    assert late.late and state["seg"] == {"rt_cart_abandoned": _ms(35)}
    # the person comes back: no longer abandoning
    engine.apply(state, _event(100, "page_view", page_type="home"), RULES, _ms(40))
    assert state["seg"] == {}


def test_a_checkout_after_the_add_keeps_the_cart_from_being_abandoned():
    state: dict = {}
    engine.apply(state, _event(0, "add_to_cart", product="p1"), RULES, 0)
    engine.apply(state, _event(2, "checkout_start"), RULES, 0)
    outcome = engine.Outcome()
    engine.advance(state, _ms(60), RULES, "actor", outcome)
    assert outcome.entered == [] and state.get("closed")


# -- the consumer on Redis ------------------------------------------------------------------


@pytest.fixture
def consumer_setup(redis_url):
    tag = uuid.uuid4().hex[:8]
    prefix, stream = f"segwhtest{tag}", f"segwhtest{tag}:events"
    client = redis.Redis.from_url(redis_url)
    broker = RedisStreamBroker(client, stream)
    broker.ensure_groups()

    def make() -> StreamConsumer:
        return StreamConsumer(
            client, RedisStreamBroker(client, stream), RULES, key_from_environment(),
            RealtimeKeys(prefix), allowed_lateness_seconds=60,
        )  # fmt: skip

    try:
        yield client, broker, make, RealtimeKeys(prefix)
    finally:
        for pattern in (f"{prefix}:*", f"{stream}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
        client.close()


def _track(mid: str, minutes: float, event: str, **properties) -> dict:
    return {
        "type": "track",
        "messageId": mid,
        "anonymousId": "anon-x",
        "event": event,
        "properties": properties,
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


def _page(mid: str, minutes: float, page_type: str, anonymous_id="anon-x") -> dict:
    return {
        "type": "page",
        "messageId": mid,
        "anonymousId": anonymous_id,
        "properties": {"page_type": page_type},
        "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


def test_consumer_is_idempotent_survives_restart_and_emits_each_episode_once(consumer_setup):
    client, broker, make, keys = consumer_setup
    key = key_from_environment()
    actor = pseudonym("anon-x", key)
    pages = [_page(f"p{i}", i, "content") for i in range(4)]
    broker.append([json.dumps(pages[:2]).encode(), json.dumps(pages[2:]).encode()])
    broker.append([json.dumps([_track("c1", 5, "Product Added", product_id="sku-1")]).encode()])
    first = make()
    entries = first.broker.read(REALTIME_GROUP, first.consumer, 10, 0)
    stats = first.process(entries)
    assert (stats.applied, stats.entered) == (5, 1)
    # crash before XACK: a restarted consumer gets the same entries; nothing changes twice
    second = make()
    again = second.broker.read(REALTIME_GROUP, second.consumer, 10, 0)
    assert [e.id for e in again] == [e.id for e in entries]
    redo = second.process(again)
    assert (redo.applied, redo.duplicate) == (0, 5)
    second.broker.ack(REALTIME_GROUP, [e.id for e in again])
    state = json.loads(client.get(keys.state(actor)))
    assert state["c"]["rt_content_explorer"] == 4
    assert set(state["seg"]) == {"rt_content_explorer"}
    assert "anon-x" not in client.get(keys.state(actor)).decode()  # pseudonyms only

    # event time moves on (another visitor, 40 minutes later): the cart is abandoned, once
    broker.append([json.dumps([_page("o1", 40, "home", anonymous_id="other")]).encode()])
    second.step(block_ms=0)
    second.step(block_ms=0)
    outbox = client.xrange(keys.outbox)
    assert len(outbox) == 1
    fields = {k.decode(): v.decode() for k, v in outbox[0][1].items()}
    assert fields["trigger"] == "cart_abandoned" and fields["person"] == actor
    assert fields["event_id"] == f"cart_abandoned:{actor}:{_ms(0)}"
    assert set(json.loads(client.get(keys.state(actor)))["seg"]) == {"rt_cart_abandoned"}
    history = {m.decode() for m in client.smembers(keys.history)}
    assert history == {
        f"rt_content_explorer|{actor}|{_ms(0)}",
        f"rt_cart_abandoned|{actor}|{_ms(0)}",
    }

    # erasure reaches the real-time state, history and outbox, and suppresses later events
    assert erase(client, keys, [actor]) >= 3
    assert client.get(keys.state(actor)) is None and client.xlen(keys.outbox) == 0
    assert client.smembers(keys.history) == set()
    broker.append([json.dumps([_page("p9", 45, "content")]).encode()])
    after = second.step(block_ms=0)
    assert after.suppressed == 1 and client.get(keys.state(actor)) is None
