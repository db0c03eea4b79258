"""kill -9 of the collector (HTTP workers and landing writer) and of the stream consumer under
load: every acknowledged message reaches the landing files, raw.events and the real-time state
exactly once."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
import uuid
from datetime import UTC, datetime

import duckdb
import httpx
import pytest
import redis
from collector_helpers import WRITE_KEY, new_setup, start_collector, start_consumer
from process_helpers import stop_process_group

from ingestion.events import discover_files, load_event_files
from privacy.pseudonyms import key_from_environment, pseudonym
from serving.realtime.state import RealtimeKeys
from warehouse.broker import GROUPS, RedisStreamBroker

pytestmark = pytest.mark.slow

ACTORS = 16
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()}


class Sender(threading.Thread):
    """Sends batches of content page views like an SDK: a batch not answered 200 is sent
    again (same messageIds) until it is."""

    def __init__(self, name: str, url_of):
        super().__init__(daemon=True)
        self.tag = name
        self.url_of = url_of
        self.acked: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=5, headers=AUTH) as client:
            number = 0
            while not self.stop.is_set():
                batch = []
                for _ in range(10):
                    number += 1
                    batch.append(
                        {
                            "type": "page",
                            "messageId": f"{self.tag}-{number}",
                            "anonymousId": f"visitor-{number % ACTORS}",
                            "properties": {"page_type": "content"},
                            "timestamp": datetime.now(UTC).isoformat(),
                        }
                    )
                while True:  # the SDK's retry
                    try:
                        response = client.post(f"{self.url_of()}/v1/batch", json={"batch": batch})
                        if response.status_code == 200:
                            self.acked.update(m["messageId"] for m in batch)
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.05)


def test_kill_9_loses_no_acknowledged_message_and_counts_nothing_twice(redis_url, tmp_path):
    setup = new_setup(redis_url, tmp_path)
    client = redis.Redis.from_url(redis_url)
    broker = RedisStreamBroker(client, setup.stream)
    log = tmp_path / "services.log"
    collector, url = start_collector(setup, log, workers=2, landing=True)
    consumer = start_consumer(setup, log)
    current = {"url": url}
    senders = [Sender(f"s{i}-{uuid.uuid4().hex[:6]}", lambda: current["url"]) for i in range(2)]
    try:
        for sender in senders:
            sender.start()
        time.sleep(2)
        os.killpg(collector.pid, signal.SIGKILL)  # workers and landing writer at once
        collector.wait()
        time.sleep(0.5)
        collector, current["url"] = start_collector(setup, log, workers=2, landing=True)
        time.sleep(1.5)
        os.killpg(consumer.pid, signal.SIGKILL)
        consumer.wait()
        consumer = start_consumer(setup, log)
        time.sleep(2)
        for sender in senders:
            sender.stop.set()
        for sender in senders:
            sender.join(timeout=30)
        acked = set().union(*(s.acked for s in senders))
        assert len(acked) > 500, log.read_text()[-3000:]

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            lags = [broker.lag(g) for g in GROUPS]
            if all(lag.lag == 0 and lag.pending == 0 for lag in lags):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"not drained: {lags}\n{log.read_text()[-3000:]}")
        time.sleep(1.5)  # the writer renames, then acknowledges: its last file is in place

        # landing files -> raw.events: every acknowledged message, each once
        landed = [
            json.loads(line)["messageId"]
            for f in discover_files(setup.landing_dir)
            for line in f.path.read_text().splitlines()
        ]
        assert acked <= set(landed)
        con = duckdb.connect(str(tmp_path / "wh.duckdb"))
        report = load_event_files(con, discover_files(setup.landing_dir))
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM raw.events"
        ).fetchone()
        assert total == distinct == len(set(landed))
        assert report.total("landed") == report.total("loaded") + report.total("duplicate")

        # real-time state: each distinct message counted once in its visitor's session
        key, keys = key_from_environment(), RealtimeKeys(setup.prefix)
        counted = 0
        for visitor in range(ACTORS):
            raw = client.get(keys.state(pseudonym(f"visitor-{visitor}", key)))
            counted += json.loads(raw)["c"]["rt_content_explorer"] if raw else 0
        stats = {k.decode(): int(v) for k, v in client.hgetall(keys.stats).items()}
        assert counted == len(set(landed)), stats
        assert stats.get("late", 0) == 0
    finally:
        for sender in senders:
            sender.stop.set()
        stop_process_group(collector)
        stop_process_group(consumer)
        setup.cleanup(client)
        client.close()
