"""The ingestion contracts: the columns the raw tables hold, read from their one declaration.

``ingestion/contracts/*.toml`` declare what ingestion loads (ingestion/events.py and
ingestion/crm.py load with them); the raw-table suites take their columns and required fields
from there instead of repeating them. expectations imports no other package of the project, so
it reads the files.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "ingestion" / "contracts"


@cache
def _contract(name: str) -> dict[str, Any]:
    with (CONTRACTS_DIR / f"{name}.toml").open("rb") as handle:
        return tomllib.load(handle)


def raw_event_fields(flag: str | None = None) -> list[str]:
    """The fields of the raw event contract in column order; with ``flag`` (``"required"``,
    ``"identity"``) only the fields that have it."""
    return [f["name"] for f in _contract("events")["fields"] if flag is None or f.get(flag)]


def crm_columns(entity: str) -> list[str]:
    """The columns of ``raw.crm_<entity>``: the contract's, then those ingestion adds."""
    contract = _contract("crm")
    columns = contract["entities"][entity]
    return [*columns["required"], *columns.get("optional", ()), *contract["load_columns"].values()]
