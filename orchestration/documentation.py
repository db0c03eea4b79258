"""The documentation of the published tables, collected from where each table is built.

One source per table: the dbt models' descriptions as dbt parsed them into its manifest
(``target/manifest.json``, prepared at install time and loaded by the code location, so it
describes the models this code builds; no warehouse is needed to read it) and, for the tables
the ml package writes, their declarations in ``ml/schemas.py``. The publish writes this
documentation into every output; the data dictionary renders it:

    .venv/bin/python -m orchestration.documentation > docs/DATA_DICTIONARY.md
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ml.schemas import ML_TABLES
from serving.catalog import ColumnDoc, TableDoc, load_published_tables
from serving.data_dictionary import REGENERATE, render_markdown
from serving.publish import PUBLISH_VERSION_DOC
from warehouse.settings import DBT_PROJECT_DIR

log = logging.getLogger(__name__)

__all__ = ["REGENERATE", "data_dictionary", "table_documentation"]

MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"


def dbt_documentation(manifest: Mapping[str, Any]) -> dict[str, TableDoc]:
    """schema.table -> documentation of every dbt model in ``manifest``."""
    docs: dict[str, TableDoc] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "model":
            continue
        columns = tuple(
            ColumnDoc(
                column["name"],
                (column.get("data_type") or "").upper(),
                (column.get("description") or "").strip(),
            )
            for column in node["columns"].values()
        )
        name = f"{node['schema']}.{node.get('alias') or node['name']}"
        docs[name] = TableDoc((node.get("description") or "").strip(), columns)
    return docs


def ml_documentation() -> dict[str, TableDoc]:
    """schema.table -> documentation of every table the ml package writes."""
    return {
        table.name: TableDoc(
            table.description,
            tuple(ColumnDoc(name, c.type, c.description) for name, c in table.columns.items()),
        )
        for table in ML_TABLES
    }


def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: prepare the dbt manifest with `.venv/bin/python -m "
            "orchestration.dbt` (make install does)"
        )
    return json.loads(path.read_text())


def table_documentation(manifest_path: Path = MANIFEST_PATH) -> dict[str, TableDoc]:
    """schema.table -> documentation of every table dbt or the ml package builds."""
    return {**dbt_documentation(load_manifest(manifest_path)), **ml_documentation()}


def data_dictionary(manifest_path: Path = MANIFEST_PATH) -> str:
    """The data dictionary page (docs/DATA_DICTIONARY.md) of the published tables."""
    tables = load_published_tables()
    docs = table_documentation(manifest_path)
    for table in tables:
        if table.name not in docs:
            log.warning("%s is in the published list but nothing builds it", table.name)
    return render_markdown(tables, docs, version_doc=PUBLISH_VERSION_DOC)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    sys.stdout.write(data_dictionary())
