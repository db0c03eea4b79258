"""dbt-duckdb plugin: every connection dbt opens gets the pseudonymization macro of its session.

dbt_project/profiles.yml names this module under ``plugins``. dbt-duckdb calls
``configure_connection`` on the database connection it opens and ``configure_cursor`` on each
thread's cursor (a cursor is a session of its own: TEMP macros are not shared). The key comes
from SEGWH_PSEUDONYMIZATION_KEY in the environment, never from the profile or dbt's variables,
so it appears in none of dbt's artefacts (target/: manifest, run results, compiled SQL; logs).
A warehouse that records another key's fingerprint is refused, as in ``pseudonyms.install``.
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from duckdb import DuckDBPyConnection

from privacy import pseudonyms


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._key: bytes | None = None

    def _session_key(self) -> bytes:
        if self._key is None:
            self._key = pseudonyms.key_from_environment()
        return self._key

    def configure_connection(self, conn: DuckDBPyConnection) -> None:
        pseudonyms.check_key(conn, self._session_key())
        pseudonyms.install_session(conn, self._session_key())

    def configure_cursor(self, cursor: Any) -> None:
        pseudonyms.install_session(cursor, self._session_key())
