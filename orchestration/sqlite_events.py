"""Workaround: Dagster's SQLite event log opens a new SQLAlchemy engine and connection for every
write (``SqliteEventLogStorage._connect``: ``create_engine(..., poolclass=NullPool)``, then
``engine.dispose()``); storing one event opens 5-6 of them. Creating a run of ``full_build``
stores about 370 planned events (one per asset and per check: the dbt tests are checks) and a
dbt step about as many results, so on the local SQLite instance a run paid 10-12 s of CPU before
its first step for connections alone (profile: ``bench/run.py``'s start-up column; issue 22).

``install()`` makes the event log keep one engine (SQLAlchemy's connection pool) per database
file and process. Unchanged: each write is its own transaction, committed before ``_connect``
returns; ``wal_autocheckpoint=1`` checkpoints the write-ahead log into the ``.db`` file after
every commit, as closing the last connection did, so Dagster's file watchers (the UI's live run
log, ``segwh``'s progress of a daemon's run), which watch the ``.db`` file, still see every
event at once. A forked child drops the inherited engines without closing the parent's
connections. Only the processes that import the code location (the CLI, run workers, step
processes, the code server) install it; the webserver and the daemon keep Dagster's own
behaviour, on the same files.

Remove when Dagster's SQLite event log pools its connections.
"""

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from dagster._core.storage.event_log.sqlite import sqlite_event_log

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def _engine(conn_string: str) -> sa.Engine:
    with _engines_lock:
        engine = _engines.get(conn_string)
        if engine is None:
            engine = sa.create_engine(
                conn_string,
                connect_args={"timeout": sqlite_event_log.SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            sa.event.listen(engine, "connect", _checkpoint_after_every_commit)
            _engines[conn_string] = engine
        return engine


def _checkpoint_after_every_commit(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=1")
    cursor.close()


@contextmanager
def _pooled_connect(self, shard: str) -> Iterator[sa.Connection]:
    """``SqliteEventLogStorage._connect`` (dagster 1.13) with one pooled engine per file."""
    with self._db_lock:
        engine = _engine(self.conn_string_for_shard(shard))
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        with engine.connect() as conn, conn.begin():
            yield conn


def _forget_engines_in_child() -> None:
    for engine in _engines.values():
        engine.dispose(close=False)  # the parent's connections stay the parent's
    _engines.clear()


def _dispose_engines() -> None:
    """Close every pooled connection (tests; a process that deletes event log files)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def install() -> None:
    """Pool the SQLite event log's connections in this process (idempotent)."""
    storage = sqlite_event_log.SqliteEventLogStorage
    if storage._connect is not _pooled_connect:
        storage._connect = _pooled_connect
        os.register_at_fork(after_in_child=_forget_engines_in_child)
