"""Benchmark: recommendation training and scoring at scale (ml.recommendations).

Synthetic implicit feedback with taste structure (persons follow one of a few latent factors,
products have a long-tail popularity), built directly as the sparse matrix the models read
(the dbt side is not part of this bench). Times, in separate phases:

- train: popularity (overall + 20 segments), item-item neighbours, truncated SVD;
- score: ``recommend`` for every person (10 each, consent, purchased filter, reasons).

Peak memory is the process's maximum resident set size (includes the synthetic data).

    .venv/bin/python -m bench.recommendations --persons 1000000 --products 20000 \
        --interactions 50000000 --model svd
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import time

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.config import RecommendationConfig
from ml.recommendations import (
    Catalogue,
    Interactions,
    Recommender,
    fit_item_neighbours,
    fit_popularity,
    fit_svd,
    recommend,
)

log = logging.getLogger(__name__)
FACTORS = 8
SEGMENTS = 20


def synthetic(
    persons: int, products: int, interactions: int, seed: int = 0
) -> tuple[Catalogue, Interactions, np.ndarray]:
    rng = np.random.default_rng(seed)
    factor_of_item = rng.integers(0, FACTORS, products)
    popularity = rng.permutation(products).astype(np.float64) + 1.0
    popularity = popularity**-0.8
    per_person = interactions // persons
    person_factor = rng.integers(0, FACTORS, persons)
    rows = np.repeat(np.arange(persons, dtype=np.int32), per_person)
    cols = np.empty(len(rows), dtype=np.int32)
    for f in range(FACTORS):
        items = np.flatnonzero(factor_of_item == f)
        p = popularity[items] / popularity[items].sum()
        mask = person_factor[rows] == f
        cols[mask] = rng.choice(items, int(mask.sum()), p=p)
    weights = rng.exponential(2.0, len(rows)).astype(np.float32)
    matrix = sp.csr_matrix(
        (np.log1p(weights), (rows, cols)), shape=(persons, products), dtype=np.float32
    )
    matrix.sum_duplicates()
    bought = sp.csr_matrix(matrix > np.log1p(6.0))
    del rows, cols, weights
    catalogue = Catalogue(
        product_ids=np.array([f"P{i:06d}" for i in range(products)]),
        category=np.array([f"c{f}" for f in factor_of_item]),
        price_band=rng.integers(1, 6, products),
        is_repeat_purchase=factor_of_item == 0,
    )
    person_ids = np.array([f"u{i:08d}" for i in range(persons)])
    segment = rng.integers(0, SEGMENTS, persons).astype(str)
    return catalogue, Interactions(person_ids, matrix, bought), segment


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def run(args: argparse.Namespace) -> dict[str, object]:
    started = time.perf_counter()
    catalogue, interactions, segment = synthetic(
        args.persons, args.products, args.interactions, args.seed
    )
    generated = time.perf_counter() - started
    memory_data = peak_gb()
    config = RecommendationConfig(svd_components=args.components)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    popularity = fit_popularity(interactions, segment)
    timings["popularity"] = time.perf_counter() - t
    t = time.perf_counter()
    neighbours = fit_item_neighbours(interactions, catalogue, config, popularity.overall)
    timings["item_item"] = time.perf_counter() - t
    t = time.perf_counter()
    svd = fit_svd(interactions, config) if args.model == "svd" else None
    timings["svd"] = time.perf_counter() - t
    train_seconds = sum(timings.values())
    memory_train = peak_gb()
    model = Recommender(args.model, catalogue, popularity, neighbours, svd, config)
    persons = pd.DataFrame(
        {
            "person_id": interactions.person_ids[: args.score_persons or None],
            "segment": segment[: args.score_persons or None],
        }
    )
    persons["has_personalization_consent"] = np.arange(len(persons)) % 10 != 0
    t = time.perf_counter()
    recs = recommend(model, interactions, persons)
    score_seconds = time.perf_counter() - t
    result = {
        "persons": args.persons,
        "products": args.products,
        "interactions_nnz": int(interactions.weights.nnz),
        "model": args.model,
        "svd_components": int(svd.item_factors.shape[1]) if svd is not None else None,
        "generate_seconds": round(generated, 1),
        "train_seconds": round(train_seconds, 1),
        "train_phases_seconds": {k: round(v, 1) for k, v in timings.items()},
        "scored_persons": len(persons),
        "score_seconds": round(score_seconds, 1),
        "recommendation_rows": len(recs),
        "peak_rss_gb_after_data": round(memory_data, 2),
        "peak_rss_gb_after_training": round(memory_train, 2),
        "peak_rss_gb": round(peak_gb(), 2),
        "config": {
            k: v
            for k, v in dataclasses.asdict(config).items()
            if k in ("neighbours", "similarity_sample_persons", "scoring_chunk_persons")
        },
    }
    return result


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--model", choices=("svd", "item_item"), default="svd")
    parser.add_argument("--components", type=int, default=48)
    parser.add_argument(
        "--score-persons", type=int, default=0, help="score only the first N persons (0: all)"
    )
    parser.add_argument("--seed", type=int, default=0)
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
