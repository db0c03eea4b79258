"""The sample replayed through the collector: the memberships the stream consumer computed agree
with SQL on the same events in the warehouse (the nightly reconciliation), at least 99.9%."""

from __future__ import annotations

import duckdb
import httpx
import pytest
import redis
from collector_helpers import WRITE_KEY, new_setup, start_collector
from process_helpers import stop_process_group

from ingestion.collector import landing
from ingestion.collector.replay import basic_auth, batches, sample_messages
from ingestion.events import discover_files, load_event_files
from privacy.pseudonyms import install, key_from_environment
from serving.realtime.consumer import StreamConsumer
from serving.realtime.reconcile import reconcile
from serving.realtime.rules import load_rule_set
from serving.realtime.state import RealtimeKeys
from warehouse.broker import GROUPS, RedisStreamBroker
from warehouse.settings import DBT_PROJECT_DIR

pytestmark = pytest.mark.slow


def test_stream_and_warehouse_agree_on_the_replayed_sample(small_sample, redis_url, tmp_path):
    setup = new_setup(redis_url, tmp_path)
    client = redis.Redis.from_url(redis_url)
    process, url = start_collector(setup, tmp_path / "collector.log")
    try:
        messages = sample_messages(small_sample.landing_dir)
        with httpx.Client(base_url=url, headers=basic_auth(WRITE_KEY), timeout=30) as http:
            for batch in batches(messages, 200):
                assert http.post("/v1/batch", json={"batch": batch}).status_code == 200
        broker = RedisStreamBroker(client, setup.stream)
        rules = load_rule_set(DBT_PROJECT_DIR)
        keys = RealtimeKeys(setup.prefix)
        consumer = StreamConsumer(client, broker, rules, key_from_environment(), keys)
        while landing.write_batch(broker, setup.landing_dir, block_ms=0)[0] is not None:
            pass
        while consumer.step(max_entries=50, block_ms=0).entries:
            pass
        assert all(broker.lag(g).lag == broker.lag(g).pending == 0 for g in GROUPS)

        con = duckdb.connect(str(tmp_path / "wh.duckdb"))
        install(con, key_from_environment())
        report = load_event_files(con, discover_files(setup.landing_dir))
        assert report.total("loaded") == len({m["messageId"] for m in messages})
        result = reconcile(con, client, keys, rules, allowed_lateness_seconds=60)
        assert result.agreement_rate >= 0.999, (result.by_segment, result.examples)
        # every rule found memberships: the agreement is not that of two empty sets
        assert all(both > 0 for both, _, _ in result.by_segment.values()), result.by_segment

        # a disagreement is seen: a membership the stream lost lowers the rate
        lost = next(iter(client.smembers(keys.history)))
        client.srem(keys.history, lost)
        worse = reconcile(con, client, keys, rules, allowed_lateness_seconds=60)
        assert worse.only_warehouse == result.only_warehouse + 1
        assert worse.agreement_rate < result.agreement_rate
    finally:
        stop_process_group(process)
        setup.cleanup(client)
        client.close()
