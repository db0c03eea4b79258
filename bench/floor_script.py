"""The floor of the benchmark: sessions and person features as one plain DuckDB SQL script.

The script is not a second copy of the SQL: it is assembled from dbt's own compiled SQL
(``dbt compile --full-refresh`` with the run's vars) of every model that
``marts.person_features`` is built from. Relation names are rewritten to a scratch schema
(``scratch``) and every model becomes ``create table scratch.<model> as <compiled select>``, in
dependency order. Inputs (dbt sources and seeds) keep their ``schema.table`` name and are copied
from the warehouse into a fresh DuckDB file; only the model statements are timed.
"""

import json
import logging
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb

from orchestration.dbt import DBT_EXECUTABLE
from privacy import pseudonyms
from warehouse.settings import DBT_PROJECT_DIR, dbt_environment

log = logging.getLogger(__name__)

FLOOR_SCHEMA = "scratch"
TARGET_MODEL = "person_features"


@dataclass(frozen=True)
class FloorScript:
    inputs: dict[str, str]  # floor relation -> warehouse relation, both "schema"."name"
    statements: list[tuple[str, str]]  # (model, create table statement), in dependency order
    settings: list[str]

    def text(self, as_of: str) -> str:
        header = [
            "-- Floor of bench/run.py: the SQL of dbt's compiled models up to "
            f"marts.{TARGET_MODEL},",
            f'-- compiled with --full-refresh --vars \'{{"as_of": "{as_of}"}}\'. Generated: do '
            "not edit.",
            "-- Run it on a DuckDB file holding these input tables: "
            + ", ".join(sorted(self.inputs))
            + ".",
        ]
        body = [*self.settings, f"create schema if not exists {FLOOR_SCHEMA};"]
        body += [f"-- {model}\n{sql}" for model, sql in self.statements]
        return "\n".join(header) + "\n\n" + "\n\n".join(body) + "\n"


def _quoted(*parts: str) -> str:
    return ".".join(f'"{part}"' for part in parts)


def compile_floor(as_of: str, memory_limit: str) -> FloorScript:
    """Compile the models ``+person_features`` with dbt and assemble the floor script."""
    with tempfile.TemporaryDirectory(prefix="segwh-floor-compile-") as scratch:
        # an empty scratch warehouse: nothing is incremental, nothing touches the real file
        env_db = Path(scratch) / "warehouse.duckdb"
        command = [
            DBT_EXECUTABLE,
            "compile",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            f"{scratch}/target",
            "--log-path",
            f"{scratch}/logs",
            "--select",
            f"+{TARGET_MODEL},resource_type:model",
            "--full-refresh",
            "--vars",
            json.dumps({"as_of": as_of}),
            "--quiet",
        ]
        env = dbt_environment(env_db, memory_limit)
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, **env}, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"dbt compile failed:\n{done.stdout}\n{done.stderr}")
        manifest = json.loads((Path(scratch) / "target" / "manifest.json").read_text())

    models = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] == "model" and node.get("compiled")
    }
    inputs: dict[str, str] = {}
    rename: dict[str, str] = {}
    for node in models.values():
        rename[node["relation_name"]] = _quoted(FLOOR_SCHEMA, node["alias"])
        for uid in node["depends_on"]["nodes"]:
            if uid in models:
                continue
            upstream = manifest["sources"].get(uid) or manifest["nodes"][uid]
            name = upstream.get("identifier") or upstream["alias"]
            local = _quoted(upstream["schema"], name)
            rename[upstream["relation_name"]] = local
            inputs[local] = local
    order = TopologicalSorter(
        {
            uid: [d for d in node["depends_on"]["nodes"] if d in models]
            for uid, node in models.items()
        }
    ).static_order()
    statements = []
    for uid in order:
        node = models[uid]
        sql = node["compiled_code"].strip().rstrip(";")
        for old, new in rename.items():
            sql = sql.replace(old, new)
        if f'"{node["database"]}".' in sql:
            raise RuntimeError(f"{uid}: a relation was not rewritten to the floor schema")
        target = _quoted(FLOOR_SCHEMA, node["alias"])
        statements.append((node["name"], f"create or replace table {target} as\n{sql}\n;"))
    settings = [
        # as profiles.yml configures dbt's DuckDB connection
        "set TimeZone = 'UTC';",
        f"set memory_limit = '{memory_limit}';",
    ]
    return FloorScript(inputs=inputs, statements=statements, settings=settings)


def run_floor(script: FloorScript, warehouse: Path, database: Path) -> dict:
    """Copy the inputs from ``warehouse`` into a new DuckDB file, then time every statement."""
    database.unlink(missing_ok=True)
    with duckdb.connect(str(database)) as con:
        for statement in script.settings:
            con.execute(statement)
        # staging pseudonymizes identifiers with the warehouse's macro: the floor pays it too
        pseudonyms.install(con, pseudonyms.key_from_environment())
        con.execute(f"attach '{warehouse}' as wh (read_only)")
        for schema in sorted({relation.split(".")[0] for relation in script.inputs}):
            con.execute(f"create schema if not exists {schema}")
        for local, source in script.inputs.items():
            con.execute(f"create table {local} as select * from wh.{source}")
        dbt_rows = con.execute(f"select count(*) from wh.marts.{TARGET_MODEL}").fetchone()
        con.execute("detach wh")
        con.execute(f"create schema {FLOOR_SCHEMA}")
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        for model, sql in script.statements:
            step = time.perf_counter()
            con.execute(sql)
            seconds[model] = round(time.perf_counter() - step, 3)
        total = time.perf_counter() - started
        rows = con.execute(f"select count(*) from {FLOOR_SCHEMA}.{TARGET_MODEL}").fetchone()
    log.info("floor: %.1f s for %d statements", total, len(script.statements))
    return {
        "seconds": round(total, 2),
        "models": seconds,
        "person_features_rows": {
            "floor": rows[0] if rows else None,
            "dbt": dbt_rows[0] if dbt_rows else None,
        },
    }
