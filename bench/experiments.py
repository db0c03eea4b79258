"""Benchmark of the experiment code: the analysis (ml.experiments) on synthetic exposed persons
and the Python assignment the online API computes per request.

    .venv/bin/python bench/experiments.py [--persons 1000000]

Prints one Markdown table (append it to bench/RESULTS.md with the command).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from datetime import datetime

import numpy as np
import pandas as pd

from ml.experiments import METRICS, ExperimentSpec, analyze_experiments
from serving.online.experiments import AssignmentDefinition


def _persons(n: int, rng: np.random.Generator) -> pd.DataFrame:
    pre = rng.normal(size=n)
    frame = {"experiment_key": "bench", "variant": np.where(rng.random(n) < 0.5, "control", "b")}
    for metric in METRICS:
        frame[metric] = 10 + 3 * (0.6 * pre + 0.8 * rng.normal(size=n))
        frame[f"pre_{metric}"] = 10 + 3 * pre
    frame["conversion"] = (frame["conversion"] > 12).astype(float)
    frame["pre_conversion"] = (frame["pre_conversion"] > 12).astype(float)
    return pd.DataFrame(frame)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    spec = ExperimentSpec(
        key="bench",
        variants=(("control", 50), ("b", 50)),
        primary_metric="conversion",
        secondary_metrics=("revenue", "orders", "sessions"),
        planned_persons_per_variant=1000,
        start_at=datetime(2026, 10, 1),
        end_at=datetime(2026, 12, 1),
    )
    persons = _persons(args.persons, rng)
    started = time.perf_counter()
    results = analyze_experiments(persons, [spec], datetime(2026, 11, 1))
    analysis_s = time.perf_counter() - started

    definition = AssignmentDefinition.from_project()
    ids = [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(args.lookups)]
    started = time.perf_counter()
    for person in ids:
        definition.assignments(person, ("cart_abandoner",))
    per_lookup_us = (time.perf_counter() - started) / len(ids) * 1e6

    print("| what | size | time |")
    print("|---|---|---|")
    print(
        f"| analyze_experiments (2 variants x 4 metrics, CUPED) | {args.persons:,} persons "
        f"| {analysis_s:.2f} s ({len(results)} rows) |"
    )
    print(
        f"| AssignmentDefinition.assignments ({len(definition.experiments)} experiments) "
        f"| {len(ids):,} ids | {per_lookup_us:.1f} us per person |"
    )


if __name__ == "__main__":
    main()
