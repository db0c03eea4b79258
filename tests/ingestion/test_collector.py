"""The collector: Segment's own Python library sends to `segwh collect` on loopback; the messages
reach the broker stream, landing files (atomic rename) and raw.events, counts reconciling;
invalid messages get 400 with reasons while the valid ones of the batch are kept."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
import redis
from collector_helpers import WRITE_KEY, new_setup, start_collector
from process_helpers import stop_process_group

from ingestion.collector import landing
from ingestion.collector.messages import check_batch, reject_reason
from ingestion.events import discover_files, load_event_files
from warehouse.broker import LANDING_GROUP, REALTIME_GROUP, RedisStreamBroker

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _message(**fields) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "messageId": "m-1",
        "anonymousId": "a-1",
        "timestamp": "2026-12-01T11:59:00Z",
        **fields,
    }


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("not a message", "not_an_object"),
        (_message(type="click"), "invalid_type"),
        (_message(messageId=""), "missing_message_id"),
        (_message(anonymousId=None), "missing_identity"),
        (_message(type="alias", userId="u-1", anonymousId=None), "missing_previous_id"),
        (_message(event=""), "missing_event"),
        (_message(timestamp="yesterday"), "invalid_timestamp"),
        (_message(properties=[1, 2]), "invalid_object"),
        (_message(properties={"blob": "x" * 40_000}), "too_large"),
    ],
)
def test_each_invalid_message_has_its_reason(message, reason):
    size = len(json.dumps(message))
    assert reject_reason(message, size)[0] == reason


def test_valid_messages_pass_and_are_enriched_without_the_write_key():
    sent = NOW - timedelta(seconds=1)
    checked = check_batch(
        [
            _message(writeKey="secret", timestamp=None, originalTimestamp="2026-12-01T11:00:00Z"),
            _message(messageId="m-2", context={"ip": "10.0.0.9"}),
            {"type": "page", "messageId": "m-3"},  # no identity
        ],
        NOW,
        "127.0.0.5",
        "Mozilla/5.0 test",
        {"sentAt": sent.isoformat()},
    )
    assert [r.reason for r in checked.rejected] == ["missing_identity"]
    assert checked.rejected[0].index == 2
    first, second = checked.accepted
    assert "writeKey" not in first
    assert first["receivedAt"] == "2026-12-01T12:00:00.000Z"
    # the client clock ran 1 s behind the server's when it sent: corrected by the skew
    assert first["timestamp"] == "2026-12-01T11:00:01.000Z"
    assert first["context"] == {"ip": "127.0.0.5", "userAgent": "Mozilla/5.0 test"}
    assert second["context"]["ip"] == "10.0.0.9"  # the client's own value wins


@pytest.fixture
def collector(redis_url, tmp_path):
    setup = new_setup(redis_url, tmp_path)
    client = redis.Redis.from_url(redis_url)
    process, url = start_collector(setup, tmp_path / "collector.log")
    broker = RedisStreamBroker(client, setup.stream)
    try:
        yield setup, url, broker
    finally:
        stop_process_group(process)
        setup.cleanup(client)
        client.close()


def _drain_landing(broker: RedisStreamBroker, landing_dir: Path, max_entries: int = 3) -> int:
    landed = 0
    while True:
        path, count = landing.write_batch(broker, landing_dir, max_entries=max_entries, block_ms=0)
        if path is None:
            return landed
        landed += count


def test_segment_sdk_messages_reach_stream_landing_files_and_raw_events(collector, tmp_path):
    from segment.analytics import Client

    setup, url, broker = collector
    errors = []
    sdk = Client(
        WRITE_KEY,
        host=url,
        sync_mode=True,
        gzip=True,
        upload_size=7,
        on_error=lambda e, batch: errors.append(e),
    )
    for i in range(12):
        sdk.track(
            anonymous_id=f"anon-{i % 3}",
            event="Product Viewed",
            properties={"product_id": f"p-{i % 4}", "price": 9.5},
        )
    sdk.page(user_id="user-1", category="Content", name="Guide", properties={"url": "/guide"})
    sdk.identify(user_id="user-1", traits={"email": "one@example.com"})
    sdk.alias(previous_id="anon-1", user_id="user-1")
    sdk.flush()
    assert errors == []
    sent = 15

    # the broker: every message, in entries of the requests
    entries = broker.client.xrange(setup.stream)
    in_stream = [m for _, fields in entries for m in json.loads(fields[b"m"])]
    assert len(in_stream) == sent
    assert all("writeKey" not in m and m["context"]["ip"] == "127.0.0.1" for m in in_stream)
    assert all(m["context"]["userAgent"].startswith("analytics-python/") for m in in_stream)

    # landing files: atomic rename, no partial left, every message once, none acknowledged twice
    assert _drain_landing(broker, setup.landing_dir) == sent
    files = discover_files(setup.landing_dir)
    assert files and not list(setup.landing_dir.rglob(".*"))
    assert broker.lag(LANDING_GROUP).pending == 0
    assert broker.lag(LANDING_GROUP).lag == 0
    assert WRITE_KEY not in "".join(f.path.read_text() for f in files)

    # the warehouse after a load (what the sensor's run does): counts reconcile
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    report = load_event_files(con, files)
    assert report.total("landed") == sent
    assert report.total("loaded") == sent
    assert report.total("rejected") == report.total("duplicate") == 0
    ids = {r[0] for r in con.execute("SELECT event_id FROM raw.events").fetchall()}
    assert ids == {m["messageId"] for m in in_stream}
    types = dict(con.execute("SELECT event_type, count(*) FROM raw.events GROUP BY ALL").fetchall())
    assert types == {"Product Viewed": 12, "page": 1, "identify": 1, "alias": 1}
    row = con.execute(
        "SELECT ip, user_agent, received_at IS NOT NULL FROM raw.events LIMIT 1"
    ).fetchone()
    assert row[0] == "127.0.0.1" and row[1].startswith("analytics-python/") and row[2]

    # a crash after the rename, before the acknowledgement: the same file again, loaded once
    again = load_event_files(con, discover_files(setup.landing_dir))
    assert again.total("loaded") == 0


def test_invalid_messages_get_400_with_reasons_and_the_valid_ones_are_kept(collector):
    setup, url, broker = collector
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    batch = {
        "batch": [
            _message(messageId="good-1"),
            _message(messageId="bad-1", anonymousId=None),
            _message(messageId="good-2", type="page", event=None),
            _message(messageId="bad-2", timestamp="not a time"),
        ]
    }
    body = gzip.compress(json.dumps(batch).encode())
    headers = {"Authorization": auth, "Content-Encoding": "gzip"}
    response = httpx.post(f"{url}/v1/batch", content=body, headers=headers)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_messages" and answer["accepted"] == 2
    assert [(r["messageId"], r["reason"]) for r in answer["rejected"]] == [
        ("bad-1", "missing_identity"),
        ("bad-2", "invalid_timestamp"),
    ]
    kept = [
        m["messageId"] for _, f in broker.client.xrange(setup.stream) for m in json.loads(f[b"m"])
    ]
    assert kept == ["good-1", "good-2"]
    rejected = broker.client.xrange(f"{setup.stream}:rejected")
    assert sorted(f[b"reason"].decode() for _, f in rejected) == [
        "invalid_timestamp",
        "missing_identity",
    ]

    # a single-message endpoint, the write key in the body (Segment accepts it there too)
    single = httpx.post(
        f"{url}/v1/identify", json={"userId": "u-9", "messageId": "id-9", "writeKey": WRITE_KEY}
    )
    assert single.status_code == 200 and single.json() == {"success": True}

    # wrong key, malformed body
    wrong = "Basic " + base64.b64encode(b"nope:").decode()
    assert (
        httpx.post(f"{url}/v1/batch", json=batch, headers={"Authorization": wrong}).status_code
        == 401
    )
    bad = httpx.post(f"{url}/v1/batch", content=b"{not json", headers={"Authorization": auth})
    assert bad.status_code == 400 and bad.json()["code"] == "malformed_json"


def test_broker_redelivers_unacknowledged_entries_and_trims_only_what_every_group_acked(
    redis_url, tmp_path
):
    setup = new_setup(redis_url, tmp_path)
    client = redis.Redis.from_url(redis_url)
    broker = RedisStreamBroker(client, setup.stream)
    try:
        broker.ensure_groups()
        ids = broker.append([b"[1]", b"[2]", b"[3]"])
        first = broker.read(LANDING_GROUP, "w1", 2, 0)
        assert [e.payload for e in first] == [b"[1]", b"[2]"]
        # the reader "crashed": a fresh broker object (a restart) gets its own pending first
        restarted = RedisStreamBroker(client, setup.stream)
        assert [e.id for e in restarted.read(LANDING_GROUP, "w1", 10, 0)] == ids[:2]
        restarted.ack(LANDING_GROUP, ids[:2])
        assert [e.id for e in restarted.read(LANDING_GROUP, "w1", 10, 0)] == ids[2:]
        restarted.ack(LANDING_GROUP, ids[2:])
        assert broker.trim_acknowledged() == 0  # the realtime group has read nothing yet
        assert client.xlen(setup.stream) == 3
        got = broker.read(REALTIME_GROUP, "r1", 10, 0)
        broker.ack(REALTIME_GROUP, [got[0].id])
        assert broker.trim_acknowledged() == 1
        lag = broker.lag(REALTIME_GROUP)
        assert (lag.pending, lag.length) == (2, 2)
    finally:
        setup.cleanup(client)
        client.close()
