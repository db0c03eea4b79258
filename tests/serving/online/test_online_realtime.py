"""The API answers the batch profile and the real-time segments side by side, saying which is
which: the state the stream consumer wrote, found by user id or by a linked anonymous id."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from online_api_helpers import Person

from privacy.pseudonyms import key_from_environment
from serving.online import auth
from serving.realtime.consumer import StreamConsumer
from serving.realtime.rules import load_rule_set
from serving.realtime.state import RealtimeKeys
from warehouse.broker import REALTIME_GROUP, RedisStreamBroker
from warehouse.settings import DBT_PROJECT_DIR

ALICE = Person("alice", ["user-alice", "anon-alice"], segments=("frequent_buyer",))
BOB = Person("bob", ["user-bob"], personalized=False)
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def _page(mid: str, minute: int, **ids) -> dict:
    return {
        "type": "page",
        "messageId": mid,
        "properties": {"page_type": "content"},
        "timestamp": (T0 + timedelta(minutes=minute)).isoformat(),
        **ids,
    }


@pytest.fixture(scope="module")
def served(api_store, api_server):
    api_store.load("v1", [ALICE, BOB])
    stream = f"{api_store.prefix}:events"
    broker = RedisStreamBroker(api_store.client, stream)
    broker.ensure_groups([REALTIME_GROUP])
    messages = [
        {"type": "identify", "messageId": "i1", "userId": "user-alice",
         "anonymousId": "anon-alice", "timestamp": T0.isoformat()},
        *(
            page
            for i in range(4)  # interleaved in event time: nothing is later than the lateness
            for page in (
                _page(f"a{i}", i, userId="user-alice"),
                _page(f"b{i}", i, userId="user-bob"),
                _page(f"n{i}", i, anonymousId="anon-new"),
            )
        ),
    ]  # fmt: skip
    broker.append([json.dumps(messages).encode()])
    consumer = StreamConsumer(
        api_store.client,
        broker,
        load_rule_set(DBT_PROJECT_DIR),
        key_from_environment(),
        RealtimeKeys(api_store.prefix),
    )
    assert consumer.step(block_ms=0).applied == len(messages)
    key = api_store.create_key("website", [auth.PROFILES_READ])
    with api_server.client(key) as client:
        yield client


def test_profile_has_batch_and_realtime_parts_by_user_id_and_linked_anonymous_id(served):
    for raw_id in ("user-alice", "anon-alice"):
        body = served.get(f"/v1/profiles/{raw_id}").json()
        assert body["version"] == "v1" and body["known"] is True
        assert body["profile"]["segments"] == ["frequent_buyer"]  # batch
        assert body["realtime"]["source"] == "stream"
        assert [s["segment"] for s in body["realtime"]["segments"]] == ["rt_content_explorer"]
        assert body["realtime"]["segments"][0]["since"] == (
            (T0 + timedelta(minutes=3)).isoformat(timespec="milliseconds")
        )


def test_unknown_visitor_gets_realtime_segments_and_no_consent_gets_none(served):
    new = served.get("/v1/profiles/anon-new").json()
    assert new["known"] is False
    assert [s["segment"] for s in new["realtime"]["segments"]] == ["rt_content_explorer"]
    bob = served.get("/v1/profiles/user-bob").json()
    assert bob["realtime"] == {"source": "stream", "segments": []}
    batch = served.post("/v1/profiles:batch", json={"ids": ["anon-alice", "user-bob"]}).json()
    assert [len(r["realtime"]["segments"]) for r in batch["results"]] == [1, 0]
