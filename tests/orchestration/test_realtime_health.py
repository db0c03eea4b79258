"""The stream consumer's health in Dagster: the sensor observes the groups' lag and the
consumer's heartbeat on the real Redis, and says unhealthy when the consumer is gone."""

from __future__ import annotations

import time
import uuid

import dagster as dg
import redis

from orchestration.defs.realtime import REALTIME_SEGMENTS, stream_consumer_health
from serving.realtime.state import RealtimeKeys
from warehouse.broker import LANDING_GROUP, RedisStreamBroker


def _observation(result) -> dict:
    (event,) = result.asset_events
    assert event.asset_key == REALTIME_SEGMENTS
    return {k: v.value for k, v in event.metadata.items()}


def test_sensor_reports_lag_and_heartbeat(redis_url, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    stream, prefix = f"segwhtest{tag}:events", f"segwhtest{tag}"
    monkeypatch.setenv("SEGWH_BROKER_URL", redis_url)
    monkeypatch.setenv("SEGWH_BROKER_STREAM", stream)
    monkeypatch.setenv("SEGWH_ONLINE_REDIS_URL", redis_url)
    monkeypatch.setenv("SEGWH_ONLINE_REDIS_PREFIX", prefix)
    client = redis.Redis.from_url(redis_url)
    broker = RedisStreamBroker(client, stream)
    try:
        broker.ensure_groups()
        broker.append([b"[]"] * 3)
        broker.read(LANDING_GROUP, "w", 1, 0)  # one delivered, not acknowledged
        result = stream_consumer_health(dg.build_sensor_context())
        seen = _observation(result)
        assert (seen["realtime_lag"], seen["landing_lag"], seen["landing_pending"]) == (3, 2, 1)
        assert seen["healthy"] is False  # no consumer heartbeat
        assert "not running" in result.skip_reason.skip_message

        client.hset(RealtimeKeys(prefix).stats, mapping={"heartbeat_ms": int(time.time() * 1000)})
        healthy = stream_consumer_health(dg.build_sensor_context())
        assert _observation(healthy)["healthy"] is True
    finally:
        for pattern in (f"{prefix}:*", f"{stream}*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
        client.close()
