"""The publish asset on a small warehouse, in a real Dagster instance: only the tables of the
published list reach the outputs; a listed table the warehouse lacks is a warning, not a
failure; undocumented columns are named."""

import logging
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.defs.serving import build_published_segments
from orchestration.resources import ServingResource, WarehouseResource
from serving import catalog
from serving.publish import CURRENT, PARQUET_DIR, PUBLISHED_DUCKDB
from warehouse.connection import connect

LIST = """
[[table]]
name = "marts.segment_sizes"
primary_key = ["segment_key"]

[[table]]
name = "marts.not_built_yet"
primary_key = ["id"]
"""


def test_only_listed_tables_are_published_and_a_missing_one_is_a_warning(tmp_path, monkeypatch):
    warehouse, serving = tmp_path / "warehouse.duckdb", tmp_path / "serving"
    listed = tmp_path / "published_tables.toml"
    listed.write_text(LIST)
    monkeypatch.setattr(catalog, "PUBLISHED_TABLES_FILE", listed)
    with connect(warehouse) as con:
        con.execute("CREATE SCHEMA marts")
        # documented in the dbt project (the manifest), plus a column it does not describe
        con.execute(
            "CREATE TABLE marts.segment_sizes AS SELECT 'churn_at_risk' AS segment_key, "
            "1 AS undocumented_extra"
        )
        # in the warehouse but not in the list: an ML training table
        con.execute("CREATE TABLE marts.churn_snapshots AS SELECT 'p1' AS person_id")

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [build_published_segments([])],
            instance=instance,
            resources={
                "warehouse": WarehouseResource(path=str(warehouse)),
                "serving": ServingResource(path=str(serving)),
            },
        )
        warnings = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING
        ]
    assert any("marts.not_built_yet" in w for w in warnings), warnings

    assert result.success
    (materialization,) = result.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert metadata["tables_missing"].value == "marts.not_built_yet"
    assert "marts.segment_sizes.undocumented_extra" in metadata["undocumented"].value
    with duckdb.connect(str(serving / PUBLISHED_DUCKDB), read_only=True) as con:
        published = {
            r[0]: r[1]
            for r in con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall()
        }
    assert set(published) == {"segment_sizes", "publish_version"}
    assert published["segment_sizes"]  # the dbt model's description
    parquet = Path(serving / PARQUET_DIR / CURRENT)
    assert sorted(p.name for p in parquet.glob("*.parquet")) == ["segment_sizes.parquet"]
