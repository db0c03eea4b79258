"""Compacting the warehouse file: deleted rows leave no bytes behind.

DuckDB marks the blocks of deleted rows free but does not overwrite them, and neither
``CHECKPOINT`` nor ``VACUUM`` does (a byte scan still finds an erased person's e-mail, phone and
ids in the file). ``compact`` copies the live contents into a fresh file (``COPY FROM DATABASE``:
schemas, tables with their constraints and comments, views, macros) and swaps it in with one
atomic rename. A kill before the rename leaves the old file whole and a temporary copy, which
the next read-write ``connect`` or ``compact`` deletes; a kill after it leaves the new file.

The caller holds the one-writer slot (the erase job runs in the run queue like every run):
nothing else may open the file while it is compacted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from warehouse.connection import compaction_copy_path, connect

log = logging.getLogger(__name__)

_ALIAS = "segwh_compacted"


@dataclass(frozen=True)
class Compaction:
    bytes_before: int
    bytes_after: int


def compaction_debris(path: Path | str) -> list[Path]:
    """The temporary copy (and its WAL) a compaction killed before its rename left behind."""
    temporary = compaction_copy_path(Path(path))
    return [p for p in (temporary, Path(f"{temporary}.wal")) if p.exists()]


def remove_compaction_debris(path: Path | str) -> None:
    for debris in compaction_debris(path):
        debris.unlink(missing_ok=True)


def compact(
    path: Path | str, *, memory_limit: str | None = None, session_sql: Sequence[str] = ()
) -> Compaction:
    """Rewrite the warehouse at ``path`` into a fresh file and swap it in atomically.

    ``session_sql`` runs first on the copying session: the session objects that views call
    (the TEMP pseudonymization macro), which the copy needs to recreate them."""
    path = Path(path)
    before = path.stat().st_size
    temporary = compaction_copy_path(path)
    remove_compaction_debris(path)
    with connect(path, memory_limit=memory_limit) as con:
        for statement in session_sql:
            con.execute(statement)
        database = con.execute("SELECT current_database()").fetchone()[0]
        con.execute(f"ATTACH '{_literal(temporary)}' AS {_ALIAS}")
        try:
            con.execute(f'COPY FROM DATABASE "{database}" TO {_ALIAS}')
            con.execute(f"CHECKPOINT {_ALIAS}")
        finally:
            con.execute(f"DETACH {_ALIAS}")
    wal = Path(f"{path}.wal")
    if wal.exists() or Path(f"{temporary}.wal").exists():
        # the old file's log would be replayed onto the new file: never swap then
        remove_compaction_debris(path)
        raise RuntimeError(f"{wal} exists after a clean close: the warehouse was not compacted")
    os.chmod(temporary, path.stat().st_mode & 0o777)
    _fsync(temporary)
    os.replace(temporary, path)
    _fsync(path.parent)
    after = path.stat().st_size
    log.info("warehouse compacted: %d -> %d bytes", before, after)
    return Compaction(before, after)


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
