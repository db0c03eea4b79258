"""Product recommendations from implicit feedback: baselines, item-item, truncated SVD.

Input tables (built by dbt, see dbt_project/models/marts/recommendations):

- interactions: ``person_id, product_id, interaction_weight, purchases`` (one row per person
  and product; the weight already combines event roles and recency);
- products: ``product_id, category, price_band, popularity_score, is_repeat_purchase``;
- persons: ``person_id`` and optionally ``segment`` and ``has_personalization_consent``.

Models:

- popularity (overall, and per segment): the baselines, and what cold persons get;
- item_item: cosine similarity of the products' interaction columns, ``neighbours`` kept per
  product; a person's score for a product is their weighted similarity to it;
- svd: truncated SVD of the (log-scaled) interaction matrix, PureSVD style: a person's scores
  are their interactions projected on the product factors and back (fold-in), so a person
  seen after training is scored without retraining.

``implicit``'s ALS was considered: it installs and runs on these CPUs, but it is a compiled
dependency for a model of the same family, and the SVD is fast enough at the benchmark scale
(bench/recommendations.py) with scikit-learn alone.

Every recommendation goes through the same rules (``recommend``): without personalization
consent only popular-overall products; cold persons their segment's popular products;
products already bought are not recommended again unless their category is a repeat purchase.
Every recommendation has a reason. ``evaluate_backtest`` runs the same path on a time split.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from ml.config import RecommendationConfig

log = logging.getLogger(__name__)

UNREGISTERED_VERSION = "unregistered"
OVERALL = "__overall__"

REASON_POPULAR_OVERALL = "popular overall"
REASON_POPULAR_SEGMENT = "popular in your segment"
REASON_TASTE = "matches your taste"
RECOMMENDATION_COLUMNS = (
    "person_id",
    "rank",
    "product_id",
    "score",
    "reason",
    "reason_product_id",
    "is_personalized",
    "is_behavioural",
    "model_version",
)


# --- matrices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """Products in a fixed order (sorted ids), with what the rules need per product."""

    product_ids: np.ndarray  # str, sorted
    category: np.ndarray  # str ("" unknown)
    price_band: np.ndarray  # int (-1 unknown)
    is_repeat_purchase: np.ndarray  # bool

    @property
    def n(self) -> int:
        return len(self.product_ids)

    def index(self, ids: pd.Series | np.ndarray) -> np.ndarray:
        """Position of each id (-1 for an unknown product)."""
        return positions_in(self.product_ids, ids)


def positions_in(unique_ids: np.ndarray, ids: pd.Series | np.ndarray) -> np.ndarray:
    """The position of each of ``ids`` (compared as text) in ``unique_ids``, -1 where absent.

    A hash lookup (pandas' indexer): a binary search in the numpy string array took 5 s per 2M
    ids against 290k persons (the interactions of 10M events), this about 0.5 s."""
    ids = pd.Index(ids)
    if ids.inferred_type != "string":
        ids = ids.astype(str)
    return pd.Index(unique_ids).get_indexer(ids).astype(np.int64)


def sorted_unique(ids: np.ndarray) -> np.ndarray:
    """The distinct ids, sorted: hashed first, then only the distinct ones sorted (np.unique
    sorts every id: 2.4 s for 2M ids, this 0.3 s)."""
    return np.sort(pd.unique(pd.Series(ids, dtype=object)))


def build_catalogue(products: pd.DataFrame) -> Catalogue:
    frame = products.drop_duplicates("product_id").sort_values("product_id")
    band = pd.to_numeric(frame.get("price_band"), errors="coerce")
    repeat = frame.get("is_repeat_purchase", pd.Series(False, index=frame.index))
    return Catalogue(
        product_ids=frame["product_id"].astype(str).to_numpy(),
        category=frame.get("category", pd.Series("", index=frame.index))
        .fillna("")
        .astype(str)
        .to_numpy(),
        price_band=(
            band.fillna(-1).astype(int).to_numpy() if band is not None else np.full(len(frame), -1)
        ),
        is_repeat_purchase=repeat.fillna(False).astype(bool).to_numpy(),
    )


@dataclass(frozen=True)
class Interactions:
    """Persons x products: transformed weights, and which products each person bought."""

    person_ids: np.ndarray  # str, sorted
    weights: sp.csr_matrix  # float32, log1p(interaction_weight)
    purchased: sp.csr_matrix  # bool

    @property
    def n_persons(self) -> int:
        return len(self.person_ids)

    def rows(self, person_ids: np.ndarray) -> np.ndarray:
        return positions_in(self.person_ids, person_ids)


def build_interactions(
    frame: pd.DataFrame, catalogue: Catalogue, person_ids: np.ndarray | None = None
) -> Interactions:
    """The sparse matrix of ``frame`` (rows with a positive weight or a purchase). Products not
    in the catalogue are ignored; ``person_ids`` fixes the rows (default: the frame's)."""
    weight = frame["interaction_weight"].to_numpy(dtype=np.float64)
    bought = frame.get("purchases", pd.Series(0, index=frame.index)).to_numpy() > 0
    keep = (weight > 0) | bought
    col = catalogue.index(frame["product_id"].to_numpy())
    keep &= col >= 0
    persons = frame["person_id"].astype(str).to_numpy()
    if person_ids is None:
        person_ids = sorted_unique(persons[keep])
    person_ids = np.asarray(person_ids).astype(str)
    row = positions_in(person_ids, persons)
    keep &= row >= 0
    shape = (len(person_ids), catalogue.n)
    values = np.log1p(np.maximum(weight[keep], 0.0)).astype(np.float32)
    weights = sp.csr_matrix((values, (row[keep], col[keep])), shape=shape, dtype=np.float32)
    bought_keep = keep & bought
    purchased = sp.csr_matrix(
        (np.ones(int(bought_keep.sum()), dtype=bool), (row[bought_keep], col[bought_keep])),
        shape=shape,
    )
    weights.sum_duplicates()
    return Interactions(person_ids, weights, purchased)


# --- models ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Popularity:
    """Popularity scores per product: overall and per segment."""

    overall: np.ndarray  # float32 (n_items)
    by_segment: dict[str, np.ndarray]

    def scores(self, segment: str | None) -> np.ndarray:
        if segment is None or segment not in self.by_segment:
            return self.overall
        return self.by_segment[segment]


def fit_popularity(
    interactions: Interactions, segment_of_row: np.ndarray | None = None
) -> Popularity:
    """Popularity = number of persons with an interaction (ties: summed weights)."""
    binary = interactions.weights.copy()
    binary.data = np.ones_like(binary.data)

    def score(matrix_binary: sp.csr_matrix, matrix: sp.csr_matrix) -> np.ndarray:
        counts = np.asarray(matrix_binary.sum(axis=0)).ravel()
        weights = np.asarray(matrix.sum(axis=0)).ravel()
        return (counts + weights / (weights.max() + 1.0) if len(weights) else counts).astype(
            np.float32
        )

    overall = score(binary, interactions.weights)
    by_segment: dict[str, np.ndarray] = {}
    if segment_of_row is not None:
        for segment in np.unique(segment_of_row):
            rows = np.flatnonzero(segment_of_row == segment)
            by_segment[str(segment)] = score(binary[rows], interactions.weights[rows])
    return Popularity(overall, by_segment)


@dataclass(frozen=True)
class Neighbours:
    """The ``k`` most similar products of every product (-1 / 0 where there are fewer)."""

    index: np.ndarray  # int32 (n_items, k)
    similarity: np.ndarray  # float32 (n_items, k)
    method: np.ndarray  # str per item: co_occurrence or content

    def matrix(self) -> sp.csr_matrix:
        """Sparse item x item similarity (row i: the neighbours of i)."""
        n, k = self.index.shape
        rows = np.repeat(np.arange(n), k)
        cols = self.index.ravel()
        vals = self.similarity.ravel()
        ok = (cols >= 0) & (vals > 0)
        return sp.csr_matrix((vals[ok], (rows[ok], cols[ok])), shape=(n, n), dtype=np.float32)


def fit_item_neighbours(
    interactions: Interactions,
    catalogue: Catalogue,
    config: RecommendationConfig,
    popularity: np.ndarray,
) -> Neighbours:
    """Cosine similarity between product columns (on a sample of persons), top ``neighbours``
    per product, computed in blocks of products so memory stays bounded. Products with fewer
    than ``min_item_persons`` persons get content neighbours instead."""
    matrix = interactions.weights
    if matrix.shape[0] > config.similarity_sample_persons:
        rng = np.random.default_rng(config.random_state)
        rows = np.sort(rng.choice(matrix.shape[0], config.similarity_sample_persons, replace=False))
        matrix = matrix[rows]
    n, k = catalogue.n, min(config.neighbours, max(catalogue.n - 1, 1))
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    normalised = (matrix @ sp.diags(scale.astype(np.float32))).tocsc()
    transposed = normalised.T.tocsr()
    index = np.full((n, k), -1, dtype=np.int32)
    similarity = np.zeros((n, k), dtype=np.float32)
    block = max(1, int(2e8 // max(n, 1) // 4))
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = (transposed[start:stop] @ normalised).toarray().astype(np.float32)
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = _top_k(sims, k)
        index[start:stop] = top
        similarity[start:stop] = np.take_along_axis(sims, top, axis=1)
    index[similarity <= 0] = -1
    similarity[similarity <= 0] = 0.0
    persons_per_item = np.asarray((interactions.weights > 0).sum(axis=0)).ravel()
    new = persons_per_item < config.min_item_persons
    method = np.where(new, "content", "co_occurrence").astype(object)
    if new.any():
        c_index, c_sim = content_neighbours(catalogue, popularity, np.flatnonzero(new), k)
        index[new], similarity[new] = c_index, c_sim
    return Neighbours(index, similarity, method)


def content_neighbours(
    catalogue: Catalogue, popularity: np.ndarray, items: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours by content: same category, nearest price band, most popular first. The
    similarity is 1 / (1 + price band distance) within the category."""
    index = np.full((len(items), k), -1, dtype=np.int32)
    similarity = np.zeros((len(items), k), dtype=np.float32)
    rank = np.argsort(np.argsort(-popularity, kind="stable"), kind="stable")
    for row, item in enumerate(items.tolist()):
        same = np.flatnonzero(
            (catalogue.category == catalogue.category[item]) & (np.arange(catalogue.n) != item)
        )
        if not len(same):
            continue
        distance = np.abs(catalogue.price_band[same] - catalogue.price_band[item])
        order = np.lexsort((rank[same], distance))[:k]
        index[row, : len(order)] = same[order]
        similarity[row, : len(order)] = 1.0 / (1.0 + distance[order])
    return index, similarity


@dataclass(frozen=True)
class SvdFactors:
    """Product factors of a truncated SVD (PureSVD): scores = x V V^T."""

    item_factors: np.ndarray  # float32 (n_items, components)


def fit_svd(interactions: Interactions, config: RecommendationConfig) -> SvdFactors:
    n_items = interactions.weights.shape[1]
    components = min(
        config.svd_components,
        n_items // config.svd_products_per_component,
        interactions.n_persons - 1,
    )
    components = max(1, components)
    svd = TruncatedSVD(
        n_components=components,
        algorithm="randomized",
        n_iter=config.svd_iterations,
        random_state=config.random_state,
    )
    svd.fit(interactions.weights)
    return SvdFactors(svd.components_.T.astype(np.float32))


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k largest scores per row, best first.

    Wide rows go in two stages: the maximum of each block of columns, the k blocks with the
    largest maxima (they hold every one of the k largest scores), then the k best columns of
    those blocks; a full partial sort of every row costs ~10 times more."""
    m, width = scores.shape
    k = min(k, width)
    block = int(np.sqrt(width / max(k, 1)))
    if k < width and width >= 64 * k and block >= 2:
        maxima = np.maximum.reduceat(scores, np.arange(0, width, block), axis=1)
        blocks = np.argpartition(maxima, maxima.shape[1] - k, axis=1)[:, -k:]
        columns = (blocks[:, :, None] * block + np.arange(block)).reshape(m, -1)
        outside = columns >= width
        columns = np.minimum(columns, width - 1)
        values = np.take_along_axis(scores, columns, axis=1)
        values[outside] = -np.inf
        best = _top_k(values, k)
        return np.take_along_axis(columns, best, axis=1)
    if k < width:
        part = np.argpartition(scores, width - k, axis=1)[:, width - k :]
    else:
        part = np.broadcast_to(np.arange(width), scores.shape).copy()
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


# --- the recommender -------------------------------------------------------------------------


@dataclass(frozen=True)
class Recommender:
    """A fitted recommender: what scoring needs, and how it was chosen."""

    model_type: str  # item_item, svd, popularity_overall or popularity_segment
    catalogue: Catalogue
    popularity: Popularity
    neighbours: Neighbours
    svd: SvdFactors | None
    config: RecommendationConfig
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    training_window: dict[str, Any] = field(default_factory=dict)
    version: str | None = None

    def describe(self) -> dict[str, Any]:
        """The registry's metadata (``metrics`` decides promotion)."""
        return {
            "model_kind": "recommendations",
            "model_type": self.model_type,
            "metrics": self.metrics,
            "evaluation": self.evaluation,
            "training_window": self.training_window,
            "products": int(self.catalogue.n),
            "config": dataclasses.asdict(self.config),
        }

    def personal_scores(self, weights: sp.csr_matrix) -> np.ndarray:
        """Dense scores (persons x products) of the personalised model."""
        if self.model_type == "svd" and self.svd is not None:
            factors = self.svd.item_factors
            return np.asarray((weights @ factors) @ factors.T, dtype=np.float32)
        if self.model_type == "item_item":
            return np.asarray((weights @ self.neighbours.matrix()).toarray(), dtype=np.float32)
        raise ValueError(f"{self.model_type} has no personal scores")


def fit_recommender(
    model_type: str,
    interactions: Interactions,
    catalogue: Catalogue,
    segment_of_row: np.ndarray | None,
    config: RecommendationConfig,
) -> Recommender:
    popularity = fit_popularity(interactions, segment_of_row)
    neighbours = fit_item_neighbours(interactions, catalogue, config, popularity.overall)
    svd = fit_svd(interactions, config) if model_type == "svd" else None
    return Recommender(model_type, catalogue, popularity, neighbours, svd, config)


def recommend(
    model: Recommender,
    interactions: Interactions,
    persons: pd.DataFrame,
    *,
    n: int | None = None,
) -> pd.DataFrame:
    """``n`` recommendations for every person of ``persons`` (columns person_id, optional
    segment and has_personalization_consent), with a score and a reason.

    - no personalization consent: popular overall, nothing about the person used;
    - fewer than ``min_person_interactions`` products: their segment's popular products;
    - otherwise the model's scores (popularity baselines: popularity), topped up with
      segment-popular products if the model has fewer positive scores than ``n``.
    Products the person bought are left out unless their category is a repeat purchase.
    """
    config = model.config
    n = n or config.n_recommendations
    ids = persons["person_id"].astype(str).to_numpy()
    consent = (
        persons["has_personalization_consent"].fillna(False).astype(bool).to_numpy()
        if "has_personalization_consent" in persons
        else np.ones(len(ids), dtype=bool)
    )
    segment = (
        persons["segment"].astype("string").fillna(OVERALL).astype(str).to_numpy()
        if "segment" in persons
        else np.full(len(ids), OVERALL)
    )
    rows = interactions.rows(ids)
    history = np.zeros(len(ids), dtype=np.int64)
    known = rows >= 0
    history[known] = np.diff(interactions.weights.indptr)[rows[known]]
    frames = []
    for start in range(0, len(ids), config.scoring_chunk_persons):
        part = slice(start, min(len(ids), start + config.scoring_chunk_persons))
        frames.append(
            _recommend_block(
                model,
                interactions,
                ids[part],
                rows[part],
                consent[part],
                segment[part],
                history[part],
                n,
            )
        )
    if not frames:  # nobody to score (a sensor run whose new events changed no person)
        return pd.DataFrame(columns=list(RECOMMENDATION_COLUMNS))
    result = pd.concat(frames, ignore_index=True)
    result["model_version"] = model.version or UNREGISTERED_VERSION
    return result[list(RECOMMENDATION_COLUMNS)]


def _recommend_block(
    model: Recommender,
    interactions: Interactions,
    ids: np.ndarray,
    rows: np.ndarray,
    consent: np.ndarray,
    segment: np.ndarray,
    history: np.ndarray,
    n: int,
) -> pd.DataFrame:
    n_items = model.catalogue.n
    m = len(ids)
    weights = _block_rows(interactions.weights, rows, n_items)
    purchased = _block_rows(interactions.purchased, rows, n_items)
    personal = consent & (history >= model.config.min_person_interactions)
    if model.model_type in BASELINES:
        personal[:] = False
    reason = np.where(consent, REASON_POPULAR_SEGMENT, REASON_POPULAR_OVERALL).astype(object)
    key = np.where(consent, segment, OVERALL)
    if model.model_type == "popularity_overall":
        key[:] = OVERALL
        reason[:] = REASON_POPULAR_OVERALL
    # a bought product is not recommended again unless it is a repeat purchase (with consent:
    # without it nothing about the person is used)
    keep = sp.diags((~model.catalogue.is_repeat_purchase).astype(np.float32))
    bought_sparse = sp.csr_matrix(sp.diags(consent.astype(np.float32)) @ purchased @ keep)
    bought_sparse.eliminate_zeros()
    # popularity candidates, enough to fill every list after removing bought and own products
    length = min(n_items, 2 * n + int(np.diff(bought_sparse.indptr).max(initial=0)))
    candidates = np.empty((m, length), dtype=np.int64)
    for value in np.unique(key):
        vector = model.popularity.scores(None if value == OVERALL else value)
        candidates[key == value] = np.argsort(-vector, kind="stable")[:length]
    # popularity fallbacks rank below every personal score: negative, in rank order
    candidate_scores = np.broadcast_to(
        -1.0 - np.arange(length, dtype=np.float32) / length, (m, length)
    ).copy()
    rows_of = np.broadcast_to(np.arange(m)[:, None], candidates.shape)
    candidate_scores[_sparse_lookup(bought_sparse, rows_of, candidates) != 0] = -np.inf
    own_top = np.full((m, n), -1, dtype=np.int64)
    own_scores = np.full((m, n), -np.inf, dtype=np.float32)
    if personal.any():
        own = model.personal_scores(weights[personal])
        bought_rows, bought_columns = bought_sparse[personal].nonzero()
        own[bought_rows, bought_columns] = -np.inf
        top_rows = _top_k(own, n)
        own_top[personal, : top_rows.shape[1]] = top_rows
        own_scores[personal, : top_rows.shape[1]] = np.take_along_axis(own, top_rows, axis=1)
        own_scores[own_scores <= 0] = -np.inf  # only positive model scores count as personal
        own_top[~np.isfinite(own_scores)] = -1
        duplicate = (candidates[:, :, None] == own_top[:, None, :]).any(axis=2)
        candidate_scores[duplicate] = -np.inf
    items = np.concatenate([own_top, candidates], axis=1)
    merged = np.concatenate([own_scores, candidate_scores], axis=1)
    best = _top_k(merged, n)
    top = np.maximum(np.take_along_axis(items, best, axis=1), 0)
    top_scores = np.take_along_axis(merged, best, axis=1)
    is_personal_rec = personal[:, None] & (top_scores > 0)
    reasons = np.repeat(reason[:, None], top.shape[1], axis=1)
    reason_product = np.full(top.shape, "", dtype=object)
    if is_personal_rec.any():
        because, because_bought = _explain(model, weights, purchased, top)
        found = is_personal_rec & (because >= 0)
        reasons[is_personal_rec] = REASON_TASTE
        bought_with = found & because_bought
        viewed_with = found & ~because_bought
        names = model.catalogue.product_ids
        reasons[bought_with] = [f"bought together with {names[i]}" for i in because[bought_with]]
        reasons[viewed_with] = [f"similar to {names[i]} you viewed" for i in because[viewed_with]]
        reason_product[found] = names[because[found]]
    valid = np.isfinite(top_scores)
    k = top.shape[1]
    frame = pd.DataFrame(
        {
            "person_id": np.repeat(ids, k),
            "rank": np.tile(np.arange(1, k + 1), m),
            "product_id": model.catalogue.product_ids[top].ravel(),
            "score": top_scores.ravel().astype(np.float64),
            "reason": reasons.ravel(),
            "reason_product_id": reason_product.ravel(),
            "is_personalized": np.repeat(consent, k),
            "is_behavioural": is_personal_rec.ravel(),
        }
    )
    return frame[valid.ravel()].reset_index(drop=True)


def _block_rows(matrix: sp.csr_matrix, rows: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Rows of ``matrix`` (an empty row for -1)."""
    if matrix.shape[0] == 0:  # none of the persons has an interaction (rows are all -1)
        return sp.csr_matrix((len(rows), n_items), dtype=matrix.dtype)
    picked = sp.csr_matrix(matrix[np.maximum(rows, 0)], shape=(len(rows), n_items))
    missing = rows < 0
    if not missing.any():
        return picked
    lengths = np.where(missing, 0, np.diff(picked.indptr))
    keep = np.repeat(~missing, np.diff(picked.indptr))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sp.csr_matrix(
        (picked.data[keep], picked.indices[keep], indptr), shape=(len(rows), n_items)
    )


def _sparse_lookup(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[rows, columns]`` elementwise (any shape), without a dense copy: a binary search
    in the sorted keys row * width + column of the stored entries."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    width = np.int64(matrix.shape[1])
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * width
    keys += matrix.indices
    query = rows.astype(np.int64) * width + columns
    position = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
    if not len(keys):
        return np.zeros(query.shape, dtype=matrix.dtype)
    return np.where(keys[position] == query, matrix.data[position], 0)


def _explain(
    model: Recommender, weights: sp.csr_matrix, purchased: sp.csr_matrix, top: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each recommended product, the person's product that is most similar to it (the
    neighbour with the largest weight x similarity), and whether the person bought it."""
    neighbour = model.neighbours.index[top]  # (m, k, K)
    similarity = model.neighbours.similarity[top]
    person = np.broadcast_to(np.arange(top.shape[0])[:, None, None], neighbour.shape)
    own_weight = _sparse_lookup(weights, person, np.maximum(neighbour, 0))
    contribution = np.where(neighbour >= 0, own_weight, 0.0) * similarity
    best = contribution.argmax(axis=2)
    best_value = np.take_along_axis(contribution, best[..., None], axis=2)[..., 0]
    because = np.take_along_axis(neighbour, best[..., None], axis=2)[..., 0]
    because = np.where(best_value > 0, because, -1)
    person = np.broadcast_to(np.arange(top.shape[0])[:, None], because.shape)
    because_bought = (because >= 0) & (
        _sparse_lookup(purchased, person, np.maximum(because, 0)) != 0
    )
    return because, because_bought


def item_similarities(model: Recommender, k: int | None = None) -> pd.DataFrame:
    """``product_id, rank, similar_product_id, score, method`` for every product."""
    k = min(k or model.config.published_neighbours, model.neighbours.index.shape[1])
    index = model.neighbours.index[:, :k]
    n = model.catalogue.n
    ok = index >= 0
    return pd.DataFrame(
        {
            "product_id": np.repeat(model.catalogue.product_ids, k)[ok.ravel()],
            "rank": np.tile(np.arange(1, k + 1), n)[ok.ravel()],
            "similar_product_id": model.catalogue.product_ids[np.maximum(index, 0)].ravel()[
                ok.ravel()
            ],
            "score": model.neighbours.similarity[:, :k].ravel()[ok.ravel()].astype(np.float64),
            "method": np.repeat(model.neighbours.method, k)[ok.ravel()].astype(str),
            "model_version": model.version or UNREGISTERED_VERSION,
        }
    )


# --- evaluation ------------------------------------------------------------------------------


def ranking_metrics(
    recommended: np.ndarray, relevant: list[set[int]], k: int
) -> dict[str, np.ndarray]:
    """Per-person precision, recall, NDCG and MAP at k. ``recommended``: (persons, >= k)
    product positions (-1: none); ``relevant``: the target products of each person."""
    rec = recommended[:, :k]
    hits = np.array(
        [
            [item in targets for item in row]
            for row, targets in zip(rec.tolist(), relevant, strict=True)
        ],
        dtype=bool,
    ).reshape(rec.shape)
    n_relevant = np.array([len(t) for t in relevant], dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: rec.shape[1]]).sum(axis=1)
    ideal = np.array([discounts[: int(min(r, k))].sum() for r in n_relevant])
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, rec.shape[1] + 1)
    ap = (precision_at * hits).sum(axis=1) / np.maximum(np.minimum(n_relevant, k), 1)
    return {
        "precision_at_10": hits.sum(axis=1) / k,
        "recall_at_10": hits.sum(axis=1) / np.maximum(n_relevant, 1),
        "ndcg_at_10": np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0),
        "map_at_10": ap,
    }


@dataclass(frozen=True)
class BacktestResult:
    """Metrics per model (and per model and segment) of a time-split backtest."""

    metrics: pd.DataFrame  # model, persons, precision/recall/ndcg/map@10, coverage, popular_share
    by_segment: pd.DataFrame  # model, segment, persons, the same per-person metrics
    best_model: str
    cutoff: Any = None


METRIC_COLUMNS = ("precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10")
BASELINES = ("popularity_overall", "popularity_segment")


def evaluate_backtest(
    backtest: pd.DataFrame,
    products: pd.DataFrame,
    persons: pd.DataFrame,
    config: RecommendationConfig | None = None,
) -> BacktestResult:
    """Train every model on the interactions up to the cutoff (``interaction_weight`` > 0 or a
    purchase), recommend to every person with a target after it (``is_holdout_target``), and
    measure. Consent is not applied (the backtest measures models, nobody sees the result)."""
    config = config or RecommendationConfig()
    catalogue = build_catalogue(products)
    train = build_interactions(backtest, catalogue)
    segment_of_row = _segments_for(train.person_ids, persons)
    targets = backtest[backtest["is_holdout_target"].astype(bool)]
    target_cols = catalogue.index(targets["product_id"].to_numpy())
    targets = targets.assign(col=target_cols)[target_cols >= 0]
    by_person = targets.groupby("person_id")["col"].agg(lambda s: set(s.tolist()))
    eval_persons = pd.DataFrame({"person_id": by_person.index.astype(str)})
    eval_persons = eval_persons.merge(
        persons[["person_id", "segment"]] if "segment" in persons else eval_persons,
        on="person_id",
        how="left",
    )
    relevant = [by_person[p] for p in eval_persons["person_id"]]
    k = config.n_recommendations
    popular_items = np.argsort(-fit_popularity(train).overall, kind="stable")[
        : max(1, round(config.popular_share * catalogue.n))
    ]
    rows, segment_rows = [], []
    base = fit_recommender("item_item", train, catalogue, segment_of_row, config)
    for model_type in (*BASELINES, *config.models):
        started = time.perf_counter()
        model = (
            dataclasses.replace(base, model_type=model_type)
            if model_type != "svd"
            else dataclasses.replace(base, model_type="svd", svd=fit_svd(train, config))
        )
        recs = recommend(model, train, eval_persons, n=k)
        recommended = _positions(recs, eval_persons["person_id"], catalogue, k)
        per_person = ranking_metrics(recommended, relevant, k)
        shown = recommended[recommended >= 0]
        summary = {
            "model": model_type,
            "persons": len(eval_persons),
            **{
                name: float(values.mean()) if len(values) else 0.0
                for name, values in per_person.items()
            },
            "coverage": float(len(np.unique(shown)) / max(catalogue.n, 1)),
            "popular_share": float(np.isin(shown, popular_items).mean()) if len(shown) else 0.0,
            "seconds": round(time.perf_counter() - started, 3),
        }
        rows.append(summary)
        frame = pd.DataFrame(per_person).assign(
            segment=eval_persons.get("segment", pd.Series(OVERALL, index=eval_persons.index))
            .astype("string")
            .fillna("none")
            .to_numpy()
        )
        grouped = frame.groupby("segment").agg(
            persons=("ndcg_at_10", "size"), **{m: (m, "mean") for m in METRIC_COLUMNS}
        )
        segment_rows.append(grouped.reset_index().assign(model=model_type))
    metrics = pd.DataFrame(rows)
    candidates = metrics[metrics["model"].isin(config.models)]
    best = str(candidates.loc[candidates["ndcg_at_10"].idxmax(), "model"])
    by_segment = pd.concat(segment_rows, ignore_index=True)[
        ["model", "segment", "persons", *METRIC_COLUMNS]
    ]
    cutoff = backtest["cutoff_at"].max() if "cutoff_at" in backtest else None
    return BacktestResult(metrics, by_segment, best, cutoff)


def _positions(
    recs: pd.DataFrame, person_ids: pd.Series, catalogue: Catalogue, k: int
) -> np.ndarray:
    out = np.full((len(person_ids), k), -1, dtype=np.int64)
    rows = positions_in(person_ids.astype(str).to_numpy(), recs["person_id"].to_numpy())
    out[rows, recs["rank"].to_numpy() - 1] = catalogue.index(recs["product_id"].to_numpy())
    return out


def _segments_for(person_ids: np.ndarray, persons: pd.DataFrame) -> np.ndarray | None:
    if "segment" not in persons:
        return None
    mapping = persons.drop_duplicates("person_id").set_index(persons["person_id"].astype(str))
    return mapping["segment"].reindex(person_ids).astype("string").fillna(OVERALL).to_numpy(str)


def train_recommender(
    interactions: pd.DataFrame,
    backtest: pd.DataFrame,
    products: pd.DataFrame,
    persons: pd.DataFrame,
    config: RecommendationConfig | None = None,
) -> tuple[Recommender, BacktestResult]:
    """Choose the model on the backtest, then fit it on every interaction up to as_of. The
    stored metrics are the chosen model's backtest metrics."""
    config = config or RecommendationConfig()
    result = evaluate_backtest(backtest, products, persons, config)
    catalogue = build_catalogue(products)
    full = build_interactions(interactions, catalogue)
    model = fit_recommender(
        result.best_model, full, catalogue, _segments_for(full.person_ids, persons), config
    )
    best = result.metrics.set_index("model").loc[result.best_model]
    popularity = result.metrics.set_index("model").loc[list(BASELINES), "ndcg_at_10"].max()
    metrics = {name: float(best[name]) for name in (*METRIC_COLUMNS, "coverage", "popular_share")}
    metrics["ndcg_lift_over_popularity"] = (
        float(best["ndcg_at_10"] / popularity - 1.0) if popularity > 0 else float("nan")
    )
    window = {
        "cutoff_at": str(result.cutoff) if result.cutoff is not None else None,
        "as_of": str(interactions["as_of"].max()) if "as_of" in interactions else None,
        "persons": int(full.n_persons),
        "interactions": int(full.weights.nnz),
    }
    model = dataclasses.replace(
        model,
        metrics=metrics,
        evaluation={"models": result.metrics.to_dict(orient="records")},
        training_window=window,
    )
    return model, result


def pair_recall(similarities: pd.DataFrame, pairs: pd.DataFrame, k: int = 10) -> float:
    """Share of known pairs (``product_id, partner_product_id``, both directions) whose
    partner is among the product's k most similar products."""
    top = similarities[similarities["rank"] <= k]
    found = set(zip(top["product_id"], top["similar_product_id"], strict=True))
    directed = [(a, b) for a, b in zip(pairs.iloc[:, 0], pairs.iloc[:, 1], strict=True)]
    directed += [(b, a) for a, b in directed]
    return float(np.mean([pair in found for pair in directed])) if directed else float("nan")
