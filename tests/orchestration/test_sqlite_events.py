"""The pooled SQLite event log (orchestration/sqlite_events.py): fewer connections, same files,
watchers still see every event at once, a forked child writes through its own connections."""

import multiprocessing
import time
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.events.log import EventLogEntry

from orchestration import sqlite_events


def _event(run_id: str, n: int) -> EventLogEntry:
    return EventLogEntry(
        error_info=None,
        level=20,
        user_message=f"event {n}",
        run_id=run_id,
        timestamp=time.time(),
        job_name="job",
        dagster_event=None,
    )


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        yield instance
    sqlite_events._dispose_engines()


@pytest.fixture
def connects(monkeypatch):
    """How many DB-API connections SQLAlchemy opens, whatever the engine."""
    opened = []

    def count(*_args):
        opened.append(1)

    sa.event.listen(sa.pool.Pool, "connect", count)
    yield opened
    sa.event.remove(sa.pool.Pool, "connect", count)


def test_events_are_stored_through_a_few_pooled_connections(instance, connects):
    sqlite_events.install()
    storage = instance.event_log_storage
    for n in range(40):
        storage.store_event(_event("run-a", n))
    assert [r.user_message for r in storage.get_logs_for_run("run-a")] == [
        f"event {n}" for n in range(40)
    ]
    # Dagster's own _connect opens a connection per write (40 here, and more to read them)
    assert len(connects) <= 4


def test_every_commit_reaches_the_db_file_that_watchers_watch(instance):
    """The UI's live log and segwh's progress watch <run id>.db, not its write-ahead log."""
    sqlite_events.install()
    storage = instance.event_log_storage
    storage.store_event(_event("run-b", 0))
    db_file = Path(storage.path_for_shard("run-b"))
    seen = []

    def on_event(event, _cursor):
        seen.append(event.user_message)

    storage.watch("run-b", None, on_event)
    try:
        for n in range(1, 4):
            before = db_file.stat().st_mtime_ns, db_file.stat().st_size
            storage.store_event(_event("run-b", n))
            assert (db_file.stat().st_mtime_ns, db_file.stat().st_size) != before
        deadline = time.monotonic() + 10
        while "event 3" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen[-3:] == ["event 1", "event 2", "event 3"]
    finally:
        storage.end_watch("run-b", on_event)


def _store_in_child(storage, run_id: str) -> None:
    storage.store_event(_event(run_id, 99))


def test_a_forked_child_writes_through_its_own_connections(instance):
    sqlite_events.install()
    storage = instance.event_log_storage
    storage.store_event(_event("run-c", 0))  # the parent holds a pooled connection
    child = multiprocessing.get_context("fork").Process(
        target=_store_in_child, args=(storage, "run-c")
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    storage.store_event(_event("run-c", 1))
    assert [r.user_message for r in storage.get_logs_for_run("run-c")] == [
        "event 0",
        "event 99",
        "event 1",
    ]
