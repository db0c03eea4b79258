"""The landing-file writer: the warehouse's path from the broker stream to the landing folder.

It reads the stream in the consumer group ``landing`` and writes each batch of entries as one
JSONL file (one Segment message a line, as the collector enriched it), with the atomic rename
the sensor expects: the file is written as ``.<name>.partial`` (hidden: the sensor and the
loader skip it), fsynced, then renamed to ``<landing>/collector/<day>/collector-<first id>_<last
id>.jsonl``; only then are the entries acknowledged.

Exactly once into raw.events, whatever crashes:
- a crash before the rename leaves a hidden partial (removed at the next start) and the entries
  pending: they are written again;
- a crash between the rename and the acknowledgement: the entries are read again (a consumer's
  own pending entries come first, in order) and the same file is written again under the same
  name with the same bytes; the loader skips a content it loaded before (SHA-256), and an event
  it already has in raw.events is counted duplicate (event_id = messageId), never loaded twice;
- a collector crash after the append but before its 200: the SDK retries, the message is in the
  stream twice with one messageId: loaded once, the second counted duplicate.

One writer (one consumer name) is the expected deployment: `segwh collect` starts it.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson

from warehouse.broker import LANDING_GROUP, StreamBroker

log = logging.getLogger("segwh.collector.landing")

DEFAULT_CONSUMER = "landing-1"
SUBFOLDER = "collector"


def file_name(first_id: str, last_id: str) -> str:
    return f"collector-{first_id}_{last_id}.jsonl"


def _day(entry_id: str) -> str:
    return datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, UTC).strftime("%Y-%m-%d")


def remove_partials(landing_dir: Path) -> int:
    folder = landing_dir / SUBFOLDER
    removed = 0
    if folder.is_dir():
        for partial in folder.rglob(".*.partial"):
            partial.unlink(missing_ok=True)
            removed += 1
    return removed


def write_batch(
    broker: StreamBroker,
    landing_dir: Path,
    *,
    consumer: str = DEFAULT_CONSUMER,
    max_entries: int = 1_000,
    block_ms: int = 1_000,
) -> tuple[Path | None, int]:
    """Read up to ``max_entries`` entries, land them as one file, acknowledge them. Returns the
    file written (None when nothing came within ``block_ms``) and its number of messages."""
    entries = broker.read(LANDING_GROUP, consumer, max_entries, block_ms)
    if not entries:
        return None, 0
    lines = [orjson.dumps(message) for entry in entries for message in orjson.loads(entry.payload)]
    folder = landing_dir / SUBFOLDER / _day(entries[0].id)
    folder.mkdir(parents=True, exist_ok=True)
    name = file_name(entries[0].id, entries[-1].id)
    partial = folder / f".{name}.partial"
    with partial.open("wb") as handle:
        handle.write(b"\n".join(lines) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    target = folder / name
    os.replace(partial, target)
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    broker.ack(LANDING_GROUP, [e.id for e in entries])
    return target, len(lines)


def run(
    broker: StreamBroker,
    landing_dir: Path,
    *,
    consumer: str = DEFAULT_CONSUMER,
    max_entries: int = 1_000,
    block_ms: int = 1_000,
    stop: threading.Event | None = None,
) -> None:
    """Write landing files until ``stop`` is set; trims the stream of entries every group has
    acknowledged."""
    broker.ensure_groups()
    remove_partials(landing_dir)
    stop = stop or threading.Event()
    while not stop.is_set():
        path, count = write_batch(
            broker, landing_dir, consumer=consumer, max_entries=max_entries, block_ms=block_ms
        )
        if path is not None:
            log.info("landed %d message(s) in %s", count, path.name)
            broker.trim_acknowledged()


def main() -> None:
    """The writer alone (`segwh collect` starts it next to the HTTP workers), on the settings'
    broker and landing folder; stops on SIGTERM/SIGINT after the batch in hand."""
    import signal

    import redis

    from warehouse.broker import RedisStreamBroker
    from warehouse.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    client = redis.Redis.from_url(settings.broker_url)
    run(RedisStreamBroker(client, settings.broker_stream), settings.landing_dir, stop=stop)


if __name__ == "__main__":
    main()
