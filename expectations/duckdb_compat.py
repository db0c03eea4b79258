"""Make Great Expectations 1.x work on a DuckDB file through ``duckdb_engine``.

DuckDB is not an officially supported GX backend. Three things break on GX 1.24 +
duckdb_engine 0.17 + SQLAlchemy 2.1 + DuckDB 2.0. All three are fixed by one small SQLAlchemy
dialect variant, which an engine uses only when its URL asks for it (``duckdb+gx_readonly://``).
Nothing in GX, duckdb_engine or SQLAlchemy is monkey-patched.

1. Every expectation fails with "list index out of range"
   (https://github.com/great-expectations/great_expectations/issues/10738,
   https://github.com/great-expectations/great_expectations/issues/11579).

   ``SqlAlchemyExecutionEngine.execute_query`` (great_expectations/execution_engine/
   sqlalchemy_execution_engine.py) runs the query inside ``with self.get_connection()`` and
   returns the un-fetched ``CursorResult`` after that block has closed the connection. Its
   callers fetch afterwards, e.g. ``resolve_metric_bundle`` does ``res = ...fetchall()`` and then
   ``res[0]``. Closing a SQLAlchemy connection rolls back its transaction, and
   ``duckdb_engine.Dialect.do_rollback`` calls ``DuckDBPyConnection.rollback()``.
   duckdb_engine's ``CursorWrapper`` is the DuckDB connection itself, not a separate cursor, so
   that rollback throws away the pending (streaming) result. The later ``fetchall()`` returns
   ``[]`` without an error. psycopg2 and similar drivers buffer the whole result on the client
   at execute time, so GX never notices there.

   Fix: the ``duckdb+gx_readonly`` dialect below. It always opens the file READ-ONLY and never
   begins, commits or rolls back a transaction (the three hooks are no-ops). DuckDB then
   auto-commits each statement, which is its default. The pending result survives the
   connection's return to the pool until GX fetches it, and the next statement on that
   connection replaces it. This is safe for three reasons:

   * the connection cannot write, so there is never anything to commit or roll back;
   * a failed statement is rolled back by DuckDB itself, so no "transaction aborted" state
     leaks into the next query;
   * GX fetches each result right after ``execute_query`` returns, on the same thread, before
     it runs another query on the engine. Do not share such an engine between threads;
     ``validate_table`` builds a private one per call.

   Rejected alternatives:
   * ``pool_reset_on_return=None``: ``Connection.close()`` still rolls back.
   * ``isolation_level="AUTOCOMMIT"``: not supported by duckdb_engine.
   * Buffering every result (e.g. ``FullyBufferedCursorFetchStrategy``): DuckDB streams results,
     and GX caps some unbounded queries only with ``fetchmany(200)``, e.g. the
     UnexpectedRowsExpectation query. Buffering would pull every unexpected row into Python.
   * Adding "duckdb" to GX's private ``_PERSISTED_CONNECTION_DIALECTS``: this patches GX
     internals and keeps one transaction open for the whole run.

2. Expectations on a table outside schema ``main`` fail with "Table with name X does not exist".
   SQLAlchemy 2.1's PostgreSQL column-reflection query reads ``pg_catalog.pg_collation``, which
   DuckDB does not have, so ``Inspector.get_columns`` raises. GX then falls back to
   ``column_reflection_fallback`` (great_expectations/expectations/metrics/util.py), which runs
   ``SELECT * FROM <table> LIMIT 1`` without the schema. Fix: connections of this dialect run
   ``SET search_path`` to the validated table's schema (``connect_args={"search_path": ...}``).
   Everything else GX generates is schema-qualified and unaffected.

3. Inside one process, DuckDB shares a file only between connections opened with identical
   settings. duckdb_engine's own ``connect`` adds a ``custom_user_agent`` setting, so its
   connections clash with a plain ``duckdb.connect(path, read_only=True)`` held elsewhere in the
   same process. The dialect therefore opens the file exactly like that plain call.

Only engines built from a ``duckdb+gx_readonly://`` URL use this dialect. Plain ``duckdb://``
engines elsewhere in the process keep duckdb_engine's behaviour. The regression test in
tests/expectations/test_expectations.py fails without this module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import duckdb_engine
import sqlalchemy as sa
from sqlalchemy.dialects import registry

logger = logging.getLogger(__name__)

DRIVER_NAME = "gx_readonly"
"""URL scheme ``duckdb+gx_readonly://`` selects :class:`ReadOnlyDuckDBDialect`."""


class ReadOnlyDuckDBDialect(duckdb_engine.Dialect):
    """duckdb_engine's dialect, read-only, with no explicit transactions (see module docstring)."""

    # Same value as duckdb_engine; SQLAlchemy wants every subclass to state it explicitly.
    supports_statement_cache = False

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        # Open exactly like ``duckdb.connect(path, read_only=True)``. Within one process, DuckDB
        # shares a file only between connections with identical settings, and
        # duckdb_engine.Dialect.connect adds a ``custom_user_agent`` setting. That would clash
        # with plain read-only connections that other code in the same process holds.
        # Read-only is forced: skipping transactions is safe only because we cannot write.
        database = cparams["database"]
        logger.debug("Opening %s read-only for Great Expectations", database)
        connection = duckdb.connect(database, read_only=True, config=cparams.get("config") or {})
        search_path = cparams.get("search_path")
        if search_path:  # cause 2 above
            literal = str(search_path).replace("'", "''")
            connection.execute(f"SET search_path = '{literal}'")
        # the warehouse's session settings (time zone, memory limit), as its other connections
        for name, value in (cparams.get("session_settings") or {}).items():
            literal = str(value).replace("'", "''")
            connection.execute(f"SET {name} = '{literal}'")
        # session objects the caller needs (e.g. a TEMP macro a staging view calls)
        for statement in cparams.get("session_sql") or ():
            connection.execute(statement)
        return duckdb_engine.ConnectionWrapper(connection)

    # A rollback would discard DuckDB's pending result before GX fetches it (cause 1 above).
    def do_begin(self, dbapi_connection: Any) -> None:
        """Start no transaction: DuckDB auto-commits each read statement."""

    def do_rollback(self, dbapi_connection: Any) -> None:
        """Nothing to roll back on a read-only, auto-commit connection."""

    def do_commit(self, dbapi_connection: Any) -> None:
        """Nothing to commit on a read-only, auto-commit connection."""


registry.register(f"duckdb.{DRIVER_NAME}", __name__, ReadOnlyDuckDBDialect.__name__)


def connection_string(warehouse_path: str | Path) -> str:
    """SQLAlchemy URL that opens ``warehouse_path`` read-only through the compatible dialect."""
    url = sa.engine.URL.create(f"duckdb+{DRIVER_NAME}", database=str(Path(warehouse_path)))
    return url.render_as_string(hide_password=False)


def engine_kwargs(
    search_path: str | None = None,
    session_settings: Mapping[str, str] | None = None,
    session_sql: Sequence[str] = (),
) -> dict[str, Any]:
    """``create_engine`` keyword arguments (GX: ``add_sql(kwargs=...)``) for this dialect.

    ``session_settings`` (e.g. ``{"TimeZone": "UTC", "memory_limit": "2GB"}``) are set on every
    connection: the caller passes the warehouse's, so validation queries see timestamps and
    bound memory like every other session. ``None`` keeps DuckDB's defaults. ``session_sql``
    statements run on every connection too (the caller's session objects, e.g. a TEMP macro
    that a view calls); they are never logged.
    """
    connect_args = {
        "search_path": search_path,
        "session_settings": session_settings,
        "session_sql": list(session_sql),
    }
    connect_args = {key: value for key, value in connect_args.items() if value}
    return {"connect_args": connect_args} if connect_args else {}


def create_engine(
    warehouse_path: str | Path,
    search_path: str | None = None,
    session_settings: Mapping[str, str] | None = None,
) -> sa.Engine:
    """A read-only SQLAlchemy engine on ``warehouse_path`` that GX can validate through."""
    return sa.create_engine(
        connection_string(warehouse_path), **engine_kwargs(search_path, session_settings)
    )
