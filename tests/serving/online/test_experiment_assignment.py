"""Experiment assignment: deterministic, balanced, weighted, exclusive within a layer, with
the holdout, and equal between the SQL definition (the dbt macro, run in DuckDB) and the
Python one the online API uses (serving/online/experiments.py). The full dbt models are
compared with Python on a built warehouse in tests/dbt/test_experiments_truth.py."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from datetime import datetime

import duckdb
import jinja2
import pytest
import yaml
from scipy import stats

from serving.online.experiments import (
    AssignmentDefinition,
    Experiment,
    assignment_bucket,
    split_variants,
)
from warehouse.settings import DBT_PROJECT_DIR

N_IDS = 20_000
IDS = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(N_IDS)]


def _sql_bucket(unit_sql: str, person_sql: str) -> str:
    """The SQL the dbt macro experiment_bucket renders to, with this project's vars."""
    macros = DBT_PROJECT_DIR / "macros"
    source = (macros / "quoted_literal.sql").read_text() + (
        macros / "experiment_bucket.sql"
    ).read_text()
    variables = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    template = jinja2.Environment().from_string(source + "{{ experiment_bucket(unit, person) }}")
    return template.render(var=variables.__getitem__, unit=unit_sql, person=person_sql)


@pytest.fixture(scope="module")
def definition() -> AssignmentDefinition:
    return AssignmentDefinition.from_project()


@pytest.mark.parametrize("unit", ["holdout", "layer:web", "experiment:exp_checkout_v2"])
def test_sql_and_python_buckets_agree_on_many_ids(definition, unit):
    con = duckdb.connect()
    con.execute("CREATE TABLE ids AS SELECT unnest(?) AS person_id", [IDS])
    sql = _sql_bucket(f"'{unit}'", "person_id")
    from_sql = dict(con.execute(f"SELECT person_id, {sql} FROM ids").fetchall())
    from_python = {i: assignment_bucket(definition.salt, unit, i) for i in IDS}
    assert from_sql == from_python
    assert len(set(from_python.values())) > 8_000  # buckets spread over 0..9999


def test_variant_ranges_follow_integer_weights():
    variants = split_variants("control:1;a:1;b:1")
    assert [(v.bucket_from, v.bucket_to) for v in variants] == [
        (0, 3333),
        (3333, 6666),
        (6666, 10000),
    ]
    assert variants[0].is_control and not variants[1].is_control
    assert [(v.name, v.bucket_to) for v in split_variants("control:50;treatment:50")] == [
        ("control", 5000),
        ("treatment", 10000),
    ]


def test_assignment_is_deterministic_and_salted(definition):
    first = [definition.assignments(i) for i in IDS[:2000]]
    assert first == [definition.assignments(i) for i in IDS[:2000]]
    resalted = dataclasses.replace(definition, salt=definition.salt + "-other")
    assert first != [resalted.assignments(i) for i in IDS[:2000]]


def test_balanced_within_tolerance_and_weights_respected(definition):
    experiments = {e.key: e for e in definition.experiments}
    for key in ("exp_checkout_v2", "exp_decision_layout"):
        experiment = experiments[key]
        segments = set(experiment.eligible_segments)
        counts = Counter(
            chosen.name
            for i in IDS
            if (chosen := definition.variant(experiment, i, segments)) is not None
        )
        names = [v.name for v in experiment.variants]
        weights = [v.bucket_to - v.bucket_from for v in experiment.variants]
        total = sum(counts.values())
        expected = [total * w / 10_000 for w in weights]
        assert stats.chisquare([counts[n] for n in names], expected).pvalue > 0.001
    # exp_checkout_v2 takes half of layer web: about half of the persons not held out
    share = (
        sum(definition.variant(experiments["exp_checkout_v2"], i) is not None for i in IDS) / N_IDS
    )
    assert share == pytest.approx(0.5 * (1 - definition.holdout_share), abs=0.015)


def test_experiments_of_one_layer_exclude_each_other(definition):
    web = [e for e in definition.experiments if e.layer == "web"]
    assert len(web) == 3
    for i in IDS:
        assert sum(definition.variant(e, i) is not None for e in web) == 1 or (
            definition.is_held_out(i)
        )


def test_holdout_gets_no_experiment_and_has_the_configured_share(definition):
    held = [i for i in IDS if definition.is_held_out(i)]
    assert len(held) / N_IDS == pytest.approx(definition.holdout_share, abs=0.005)
    assert all(definition.assignments(i, segments={"cart_abandoner"}) == {} for i in held)
    nobody = dataclasses.replace(definition, holdout_share=0.0)
    assert not any(nobody.is_held_out(i) for i in IDS)


def test_eligibility_by_segment_and_activity(definition):
    layout = next(e for e in definition.experiments if e.key == "exp_decision_layout")
    assert layout.eligible_segments
    in_layout = [i for i in IDS if not definition.is_held_out(i)][:500]
    assert all(definition.variant(layout, i, segments={"other"}) is None for i in in_layout)
    assert all(definition.variant(layout, i, segments={"cart_abandoner"}) for i in in_layout)
    inactive = dataclasses.replace(layout, end_at=datetime(2026, 9, 1))
    assert isinstance(inactive, Experiment)
    assert not inactive.is_active(datetime(2026, 11, 1))
    assert layout.key not in definition.assignments(
        in_layout[0], {"cart_abandoner"}, at=datetime(2027, 6, 1)
    )
