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


def test_the_landing_sensor_requests_the_collector_files_and_never_a_partial(redis_url, tmp_path):
    """What the collector's writer lands is picked up by the landing sensor (the warehouse path
    of collected events): the renamed file, not the one still being written."""
    from ingestion.collector import landing as collector_landing
    from ingestion.events import ensure_raw_tables
    from orchestration.definitions import build_definitions
    from orchestration.defs.automation import RAW_EVENTS_OP
    from orchestration.resources import LandingZoneResource
    from warehouse.connection import connect
    from warehouse.settings import Settings

    landing = tmp_path / "landing"
    settings = Settings.in_folder(tmp_path, landing, "sqlite://")
    with connect(settings.warehouse_path) as con:  # a full build ran: the load audit exists
        ensure_raw_tables(con)
    stream = f"segwhtest{uuid.uuid4().hex[:8]}:events"
    client = redis.Redis.from_url(redis_url)
    broker = RedisStreamBroker(client, stream)
    try:
        broker.ensure_groups()
        broker.append([b'[{"type": "page", "messageId": "m1", "anonymousId": "a"}]'])
        written, count = collector_landing.write_batch(broker, landing, block_ms=0)
        assert count == 1
        (written.parent / ".collector-next.jsonl.partial").write_text("{}\n")  # in flight
        sensor = build_definitions(settings).resolve_sensor_def("landing_files_sensor")
        with dg.instance_for_test() as instance:
            context = dg.build_sensor_context(
                instance=instance,
                resources={"landing": LandingZoneResource(path=str(landing), enabled=True)},
            )
            (request,) = sensor.evaluate_tick(context).run_requests
        assert request.run_config["ops"][RAW_EVENTS_OP]["config"]["files"] == [str(written)]
    finally:
        for key in client.scan_iter(match=f"{stream}*", count=1000):
            client.delete(key)
        client.close()
