"""Byte scans: what a file holds, whatever its format (deleted rows can survive in a file's free
blocks, so a query that finds nothing is not enough)."""

from collections.abc import Iterable
from pathlib import Path


def files_holding(folder: Path, values: Iterable[str]) -> list[str]:
    """``path: value`` for every regular file under ``folder`` (or the file ``folder``) whose
    bytes contain a value."""
    needles = [value.encode() for value in values]
    return [
        f"{path}: {needle.decode()}"
        for path in ([folder] if folder.is_file() else sorted(folder.rglob("*")))
        if path.is_file() and not path.is_symlink()
        for needle in needles
        if needle in path.read_bytes()
    ]
