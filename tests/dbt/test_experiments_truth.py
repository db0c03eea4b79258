"""The planted experiments of the quick-start-sized sample are analysed as planted, and the
warehouse assigns exactly as the online API's Python does.

One 100k-event sample (the quick start's size, seed 42) is loaded and only the models the
experiments need are built (dbt run, no data tests: test_segments_truth builds and tests the
whole project). The analysis (ml.experiments) then finds the real lift of exp_checkout_v2,
finds nothing in exp_reco_carousel and blocks exp_free_shipping_banner for its sample-ratio
mismatch (sample_data/experiments.py plants them; truth/summary.json records them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from dbt_helpers import Dbt, load_sample, release_dbt_duckdb, warehouse_connection

from ml.experiments import analyze_experiments, specs_from_seed
from sample_data import DEFAULT_AS_OF, generate
from serving.online.experiments import AssignmentDefinition

SAMPLE_EVENTS = 100_000
SELECT = "+experiment_person_metrics +experiment_assignments +content_decisions"


@dataclass(frozen=True)
class Analysed:
    truth: dict
    results: pd.DataFrame
    warehouse: Path


@pytest.fixture(scope="module")
def analysed(tmp_path_factory) -> Iterator[Analysed]:
    root = tmp_path_factory.mktemp("experiments_truth")
    sample = generate(root / "sample", n_events=SAMPLE_EVENTS, seed=42)
    warehouse = root / "warehouse.duckdb"
    load_sample(sample, warehouse)
    dbt = Dbt(warehouse, root)
    dbt.invoke("seed")
    dbt.invoke("run", "--select", SELECT)
    del dbt
    release_dbt_duckdb()
    with warehouse_connection(warehouse) as con:
        persons = con.execute("SELECT * FROM marts.experiment_person_metrics").df()
        seed = con.execute("SELECT * FROM seeds.experiments").df()
    results = analyze_experiments(
        persons, specs_from_seed(seed), DEFAULT_AS_OF.replace(tzinfo=None)
    )
    truth = json.loads((sample.truth_dir / "summary.json").read_text())["experiments"]
    yield Analysed(truth, results, warehouse)


def _primary(results: pd.DataFrame, key: str) -> pd.Series:
    rows = results[
        (results["experiment_key"] == key) & results["is_primary_metric"] & ~results["is_control"]
    ]
    assert len(rows) == 1
    return rows.iloc[0]


def test_the_planted_lift_is_found(analysed):
    assert analysed.truth["experiments"]["exp_checkout_v2"]["true_relative_lift_conversion"] > 0
    row = _primary(analysed.results, "exp_checkout_v2")
    assert row["is_significant"] and row["status"] == "significant"
    assert row["cuped_ci_low"] > 0 and row["relative_lift"] > 0.3
    assert 0 < row["cuped_variance_reduction"] < 1


def test_the_null_experiment_is_not_significant(analysed):
    row = _primary(analysed.results, "exp_reco_carousel")
    assert row["status"] == "not_significant" and row["p_value_adjusted"] > 0.05
    assert row["cuped_ci_low"] < 0 < row["cuped_ci_high"]


def test_the_sample_ratio_mismatch_is_blocked(analysed):
    planted = analysed.truth["experiments"]["exp_free_shipping_banner"]
    assert planted["drawn_treatment_share"] != planted["configured_treatment_share"]
    rows = analysed.results[analysed.results["experiment_key"] == "exp_free_shipping_banner"]
    assert rows["is_srm_blocked"].all() and rows["srm_p_value"].max() < 0.001
    assert (rows["status"] == "blocked_srm").all() and rows["absolute_lift"].isna().all()
    others = analysed.results[analysed.results["experiment_key"] != "exp_free_shipping_banner"]
    assert not others["is_srm_blocked"].any()


def test_the_warehouse_assigns_as_the_api_does(analysed):
    definition = AssignmentDefinition.from_project()
    with warehouse_connection(analysed.warehouse) as con:
        persons = con.execute("SELECT person_id FROM marts.person_features").fetchall()
        segments = con.execute(
            "SELECT person_id, list(segment_key) FROM marts.person_segments GROUP BY 1"
        ).fetchall()
        assigned = con.execute(
            "SELECT person_id, experiment_key, variant FROM marts.experiment_assignments"
        ).fetchall()
        held = con.execute(
            "SELECT person_id FROM marts.personalization_holdouts WHERE is_held_out"
        ).fetchall()
        decisions = con.execute(
            "SELECT person_id, is_held_out, content_variant, experiment_variant "
            "FROM marts.content_decisions"
        ).fetchall()
    by_person = dict(segments)
    expected = {
        (person, key, variant)
        for (person,) in persons
        for key, variant in definition.assignments(person, by_person.get(person, [])).items()
    }
    assert len(expected) > 1000
    assert set(assigned) == expected
    assert {p for (p,) in held} == {p for (p,) in persons if definition.is_held_out(p)}
    # held-out persons get the default content and no variant; others may get segment content
    held_decisions = [d for d in decisions if d[1]]
    assert held_decisions and all(d[2] == "default" and d[3] is None for d in held_decisions)
    assert any(d[2] != "default" for d in decisions if not d[1])
