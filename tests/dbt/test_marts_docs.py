"""The marts' descriptions are written for the BI analysts who read them as table and column
comments: every mart and every column has one, in plain words (no dbt syntax such as
``var('as_of')``, ``ref(...)`` or ``{{ }}``, no names of internal models or build machinery).

The check reads dbt's manifest (``dbt parse``, as ``python -m orchestration.dbt`` writes it to
dbt_project/target), so it sees the descriptions exactly as dbt hands them on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from dbt_helpers import Dbt, release_dbt_duckdb

# dbt syntax, and words that mean something only to the people who build the warehouse
NOT_FOR_ANALYSTS = re.compile(
    r"\bvar\(|\bref\(|\bsource\(|\{\{|\}\}|\{%|%\}|\bdbt\b|\bint_\w+|\bstg_\w+|"
    r"\bintermediate\.|\bseeds?\b|\bincremental\b|\bmacros?\b|\bfull_build\b",
    re.IGNORECASE,
)


def description_problems(manifest: dict) -> list[str]:
    """Every mart or column of a mart without a description, or whose description is not
    written for an analyst, and every mart whose contract does not pin its columns (only then
    are the documented columns all the columns)."""
    problems = []
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model" or node["fqn"][1] != "marts":
            continue
        name = node["name"]
        if not node["config"].get("contract", {}).get("enforced"):
            problems.append(f"{name}: no enforced contract")
        described = [(name, node["description"])] + [
            (f"{name}.{column}", spec["description"]) for column, spec in node["columns"].items()
        ]
        for what, text in described:
            if not text.strip():
                problems.append(f"{what}: no description")
            elif match := NOT_FOR_ANALYSTS.search(text):
                problems.append(f"{what}: {match.group(0)!r} in {text!r}")
    return sorted(problems)


def _manifest(work_dir: Path) -> dict:
    dbt = Dbt(work_dir / "warehouse.duckdb", work_dir)
    try:
        dbt.invoke("parse")
    finally:
        release_dbt_duckdb()
    return json.loads((dbt.target_path / "manifest.json").read_text())


def test_every_mart_and_column_has_a_description_for_analysts(tmp_path):
    manifest = _manifest(tmp_path)
    marts = [n for n in manifest["nodes"].values() if n["fqn"][1:2] == ["marts"]]

    assert len(marts) >= 13  # the check ran over the marts
    assert description_problems(manifest) == []


def test_a_missing_or_dbt_worded_description_is_caught():
    def mart(description: str, columns: dict[str, str]) -> dict:
        return {
            "resource_type": "model",
            "fqn": ["segwarehouse", "marts", "x"],
            "name": "x",
            "config": {"contract": {"enforced": True}},
            "description": description,
            "columns": {name: {"description": text} for name, text in columns.items()},
        }

    manifest = {
        "nodes": {
            "model.a": mart("Persons as of var('as_of').", {"a": "", "b": "Counts {{ x }}."}),
            "model.b": {**mart("", {"c": "Copied from int_events_sessionized."}), "name": "y"},
        }
    }
    problems = description_problems(manifest)

    assert sorted(p.split(":")[0] for p in problems) == ["x", "x.a", "x.b", "y", "y.c"]
