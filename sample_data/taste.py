"""Learnable taste: which products a person looks at and buys (planted for recommenders).

The base generator picks products by price position only (price-sensitive persons cheap,
high-value persons expensive, everyone else anywhere), which gives a recommender nothing to
learn. This module keeps that price position and, inside a window of neighbouring prices,
re-draws the product from the person's taste:

- each category loads on one of ``N_FACTORS`` latent taste factors; each person has a taste
  mix over the factors (a peaked Dirichlet draw), and each session follows one factor of it;
- products have a long-tail popularity (Zipf-like weights over a random order);
- planted co-purchase pairs ("bought together"): after a session on one product of a pair, the
  person's next session is on its partner with probability ``PAIR_FOLLOW_PROB``.

Taste does not change over time, so the last ``HOLDOUT_DAYS`` before ``as_of`` are a fair
held-out future period: train on what happened before it, evaluate on what happened in it.
Everything planted is written to the truth folder (``write_truth``).

The module uses its own random stream, so every other planted behaviour keeps its draws; the
price window keeps each archetype's price preference (and so its spend) nearly unchanged.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sample_data import config as cfg
from sample_data.behaviour import Events, Sessions
from sample_data.catalog import Catalog
from sample_data.population import Population

N_FACTORS = 4
"""Latent taste factors; category c loads on factor ``c % N_FACTORS``."""
TASTE_CONCENTRATION = 0.15
"""Dirichlet concentration of a person's taste mix (small: most persons have one main taste)."""
OFF_TASTE_WEIGHT = 0.01
"""Relative weight of a product outside the session's taste factor."""
ZIPF_EXPONENT = 0.8
"""Popularity weight of the product of popularity rank r (1 = most popular) is r**-exponent."""
PRICE_WINDOW_SHARE = 0.15
"""Half-width of the price window, as a share of the catalogue (at least ``MIN_PRICE_WINDOW``)."""
MIN_PRICE_WINDOW = 10
PAIR_SHARE = 0.05
"""Co-purchase pairs planted: this share of the catalogue (at least one pair)."""
PAIR_FOLLOW_PROB = 0.6
PAIR_VIEW_PROB = 0.5
"""A fresh product view in a session on a paired product shows its partner with this probability."""
HOLDOUT_DAYS = 28
"""The held-out future period: the last this many days before as_of."""


@dataclass(frozen=True)
class Taste:
    """The planted taste structure (indices into the catalogue and the population)."""

    product_factor: np.ndarray  # int8 per product
    popularity: np.ndarray  # float64 per product, sums to 1
    person_taste: np.ndarray  # float64 (persons, N_FACTORS), rows sum to 1
    pairs: np.ndarray  # int32 (n_pairs, 2) product indices
    window: int


def build_taste(pop: Population, catalog: Catalog, rng: np.random.Generator) -> Taste:
    """Draw product factors, popularity, person tastes and co-purchase pairs."""
    n = catalog.n_products
    factor = (catalog.product_category % N_FACTORS).astype(np.int8)
    rank = rng.permutation(n) + 1
    weight = rank.astype(np.float64) ** -ZIPF_EXPONENT
    person_taste = rng.dirichlet(np.full(N_FACTORS, TASTE_CONCENTRATION), size=pop.n_persons)
    window = max(MIN_PRICE_WINDOW, int(PRICE_WINDOW_SHARE * n))
    pairs = _pairs(factor, window, max(1, int(PAIR_SHARE * n)), rng)
    return Taste(factor, weight / weight.sum(), person_taste, pairs, window)


def _pairs(factor: np.ndarray, window: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Disjoint pairs of products of the same taste factor, close in price."""
    n = len(factor)
    used = np.zeros(n, dtype=bool)
    pairs: list[tuple[int, int]] = []
    for a in rng.permutation(n).tolist():
        if len(pairs) == n_pairs:
            break
        if used[a]:
            continue
        lo, hi = max(0, a - window // 2), min(n, a + window // 2 + 1)
        near = np.arange(lo, hi)
        near = near[(factor[near] == factor[a]) & ~used[near] & (near != a)]
        if not len(near):
            continue
        b = int(near[rng.integers(len(near))])
        used[[a, b]] = True
        pairs.append((a, b))
    return np.array(pairs, dtype=np.int32).reshape(-1, 2)


def _partner(taste: Taste, n_products: int) -> np.ndarray:
    partner = np.full(n_products, -1, dtype=np.int32)
    partner[taste.pairs[:, 0]] = taste.pairs[:, 1]
    partner[taste.pairs[:, 1]] = taste.pairs[:, 0]
    return partner


def _cumulative_by_factor(taste: Taste) -> np.ndarray:
    """(N_FACTORS, n + 1) cumulative product weights for a session following each factor."""
    on = taste.product_factor[None, :] == np.arange(N_FACTORS)[:, None]
    weight = taste.popularity[None, :] * np.where(on, 1.0, OFF_TASTE_WEIGHT)
    return np.concatenate([np.zeros((N_FACTORS, 1)), np.cumsum(weight, axis=1)], axis=1)


def pick_products(
    taste: Taste, person: np.ndarray, price_position: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A product per row: near ``price_position`` in price, drawn by the person's taste."""
    n = len(taste.product_factor)
    cum = _cumulative_by_factor(taste)
    u = rng.random(len(person))
    taste_cum = np.cumsum(taste.person_taste[person], axis=1)
    factor = np.minimum((u[:, None] > taste_cum).sum(axis=1), N_FACTORS - 1)
    lo = np.clip(price_position - taste.window, 0, n - 1)
    hi = np.clip(price_position + taste.window + 1, 1, n)
    low, high = cum[factor, lo], cum[factor, hi]  # never cum[factor]: rows x products floats
    target = low + rng.random(len(person)) * (high - low)
    out = np.empty(len(person), dtype=np.int32)
    for f in range(N_FACTORS):
        rows = factor == f
        out[rows] = np.searchsorted(cum[f], target[rows], side="right") - 1
    return np.clip(out, lo, hi - 1).astype(np.int32)


def apply_to_sessions(
    taste: Taste, sess: Sessions, catalog: Catalog, rng: np.random.Generator
) -> Sessions:
    """Sessions with focus products re-drawn by taste, then planted pair follow-ups."""
    focus = pick_products(taste, sess.person, sess.focus_product.astype(np.int64), rng)
    partner = _partner(taste, catalog.n_products)[focus]
    same_person_next = np.zeros(sess.n, dtype=bool)
    same_person_next[1:] = sess.person[1:] == sess.person[:-1]
    follow = np.zeros(sess.n, dtype=bool)
    follow[1:] = same_person_next[1:] & (partner[:-1] >= 0)
    follow &= rng.random(sess.n) < PAIR_FOLLOW_PROB
    shifted = np.empty_like(partner)
    shifted[1:] = partner[:-1]
    focus = np.where(follow, shifted, focus)
    return replace(sess, focus_product=focus.astype(np.int32))


def apply_to_events(
    taste: Taste, events: Events, sess: Sessions, catalog: Catalog, rng: np.random.Generator
) -> Events:
    """Fresh product views (not of the session's focus product) re-drawn by taste, or the
    focus product's pair partner; their page follows the product."""
    focus = sess.focus_product[events.session]
    fresh = (events.product >= 0) & (events.product != focus)
    index = np.flatnonzero(fresh)
    person = sess.person[events.session[index]]
    product = pick_products(taste, person, events.product[index].astype(np.int64), rng)
    partner = _partner(taste, catalog.n_products)[focus[index]]
    to_partner = (partner >= 0) & (rng.random(len(index)) < PAIR_VIEW_PROB)
    product = np.where(to_partner, partner, product)
    new_product = events.product.copy()
    new_product[index] = product
    new_page = events.page.copy()
    on_product_page = (
        fresh & (events.page >= catalog.product_page0) & (events.page < catalog.article_page0)
    )
    new_page[on_product_page] = catalog.product_page0 + new_product[on_product_page]
    return replace(events, product=new_product, page=new_page)


def holdout_start_ms(as_of_ms: int) -> int:
    """Start of the held-out future period."""
    return as_of_ms - HOLDOUT_DAYS * cfg.DAY_MS


def summary(taste: Taste, catalog: Catalog, as_of_ms: int) -> dict[str, Any]:
    """The taste section of truth/summary.json."""
    top = np.sort(taste.popularity)[::-1]
    top_share = float(top[: max(1, len(top) // 10)].sum())
    return {
        "factors": N_FACTORS,
        "category_factor": {name: c % N_FACTORS for c, (name, _) in enumerate(cfg.CATEGORIES)},
        "co_purchase_pairs": len(taste.pairs),
        "top_decile_popularity_share": round(top_share, 4),
        "holdout_days": HOLDOUT_DAYS,
        "holdout_start": np.datetime_as_string(
            np.datetime64(holdout_start_ms(as_of_ms), "ms"), unit="s"
        )
        + "Z",
    }


def write_truth(truth_dir: Path, taste: Taste, catalog: Catalog, person_keys: list[str]) -> None:
    """products_taste.csv, persons_taste.csv and co_purchase_pairs.csv in the truth folder."""
    with (truth_dir / "products_taste.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("product_id", "category", "taste_factor", "popularity"))
        for p, pid in enumerate(catalog.product_ids):
            category = cfg.CATEGORIES[int(catalog.product_category[p])][0]
            writer.writerow(
                (pid, category, int(taste.product_factor[p]), f"{taste.popularity[p]:.6g}")
            )
    with (truth_dir / "persons_taste.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("person_key", *(f"factor_{f}" for f in range(N_FACTORS))))
        for key, row in zip(person_keys, taste.person_taste.round(4).tolist(), strict=True):
            writer.writerow((key, *row))
    with (truth_dir / "co_purchase_pairs.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("product_id", "partner_product_id"))
        for a, b in taste.pairs.tolist():
            writer.writerow((catalog.product_ids[a], catalog.product_ids[b]))
