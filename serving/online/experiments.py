"""Experiment assignment for the online API: the same definition the warehouse computes.

One definition, two implementations that a test keeps equal on many ids
(tests/serving/online/test_experiment_assignment.py): the dbt macro
``dbt_project/macros/experiment_bucket.sql`` with the models ``personalization_holdouts``,
``int_experiment_variants_split`` and ``experiment_assignments``, and this module.

- bucket(unit, person) = first 8 hex digits of md5(salt | unit | person_id) as an unsigned
  integer, modulo 10000; the salt is the dbt var ``experiment_assignment_salt``;
- holdout: bucket('holdout') < personalization_holdout_share * 10000 (dbt var): held-out persons
  get the default content and are in no experiment;
- layer: an experiment takes the persons whose bucket('layer:<layer>') lies in
  [layer_from_percent * 100, layer_to_percent * 100);
- variant: bucket('experiment:<key>') falls into a variant's range; variants take consecutive
  ranges in the seed's order, variant i from (cumulative weight before i) * 10000 // total to
  (cumulative weight through i) * 10000 // total;
- eligibility: the person holds one of the eligible segments (none listed: everyone).

Settings and experiments are read from the dbt project (``dbt_project.yml`` vars and
``seeds/experiments.csv``): each fact is written once.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from warehouse.settings import DBT_PROJECT_DIR

BUCKETS = 10_000


def assignment_bucket(salt: str, unit: str, person_id: str) -> int:
    """The person's bucket (0..9999) for one unit of assignment."""
    digest = hashlib.md5(f"{salt}|{unit}|{person_id}".encode(), usedforsecurity=False)
    return int(digest.hexdigest()[:8], 16) % BUCKETS


@dataclass(frozen=True)
class Variant:
    name: str
    bucket_from: int
    bucket_to: int
    is_control: bool


@dataclass(frozen=True)
class Experiment:
    key: str
    layer: str
    layer_bucket_from: int
    layer_bucket_to: int
    variants: tuple[Variant, ...]
    eligible_segments: frozenset[str]
    exposure_source: str
    start_at: datetime
    end_at: datetime

    def is_active(self, at: datetime) -> bool:
        return self.start_at <= at < self.end_at


def split_variants(spec: str) -> tuple[Variant, ...]:
    """``control:50;treatment:50`` -> the variants with their bucket ranges."""
    pairs = [part.split(":", 1) for part in spec.split(";")]
    weights = [int(weight.strip()) for _, weight in pairs]
    total = sum(weights)
    variants, cumulative = [], 0
    for position, ((name, _), weight) in enumerate(zip(pairs, weights, strict=True)):
        start = cumulative * BUCKETS // total
        cumulative += weight
        variants.append(Variant(name.strip(), start, cumulative * BUCKETS // total, position == 0))
    return tuple(variants)


@dataclass(frozen=True)
class AssignmentDefinition:
    salt: str
    holdout_share: float
    experiments: tuple[Experiment, ...]

    @classmethod
    def from_project(cls, project_dir: Path = DBT_PROJECT_DIR) -> AssignmentDefinition:
        variables = yaml.safe_load((project_dir / "dbt_project.yml").read_text())["vars"]
        with (project_dir / "seeds" / "experiments.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        experiments = tuple(
            Experiment(
                key=row["experiment_key"],
                layer=row["layer"],
                layer_bucket_from=int(row["layer_from_percent"]) * 100,
                layer_bucket_to=int(row["layer_to_percent"]) * 100,
                variants=split_variants(row["variants"]),
                eligible_segments=frozenset(
                    s.strip() for s in (row["eligible_segments"] or "").split(";") if s.strip()
                ),
                exposure_source=row["exposure_source"],
                start_at=datetime.fromisoformat(row["start_at"]),
                end_at=datetime.fromisoformat(row["end_at"]),
            )
            for row in rows
        )
        return cls(
            salt=str(variables["experiment_assignment_salt"]),
            holdout_share=float(variables["personalization_holdout_share"]),
            experiments=experiments,
        )

    def is_held_out(self, person_id: str) -> bool:
        return assignment_bucket(self.salt, "holdout", person_id) < self.holdout_share * BUCKETS

    def variant(
        self, experiment: Experiment, person_id: str, segments: Collection[str] = ()
    ) -> Variant | None:
        """The person's variant in ``experiment``, or None when they are not in it."""
        if self.is_held_out(person_id):
            return None
        if experiment.eligible_segments and not experiment.eligible_segments & set(segments):
            return None
        layer_bucket = assignment_bucket(self.salt, f"layer:{experiment.layer}", person_id)
        if not experiment.layer_bucket_from <= layer_bucket < experiment.layer_bucket_to:
            return None
        bucket = assignment_bucket(self.salt, f"experiment:{experiment.key}", person_id)
        return next(v for v in experiment.variants if v.bucket_from <= bucket < v.bucket_to)

    def assignments(
        self, person_id: str, segments: Collection[str] = (), at: datetime | None = None
    ) -> dict[str, str]:
        """experiment_key -> variant for every experiment the person is in (active at ``at``,
        when given)."""
        out = {}
        for experiment in self.experiments:
            if at is not None and not experiment.is_active(at):
                continue
            chosen = self.variant(experiment, person_id, segments)
            if chosen is not None:
                out[experiment.key] = chosen.name
        return out
