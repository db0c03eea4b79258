"""The shop's catalogue: products, pages and the small lookup tables events point into.

Events never carry their own strings; they carry indices into these tables, which keeps the
event arrays small and makes serialisation a matter of table lookups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from sample_data import config as cfg


@dataclass(frozen=True)
class Catalog:
    """Products (sorted by price, cheapest first), pages and property tables."""

    product_ids: list[str]
    product_category: np.ndarray  # int16 per product
    product_price: np.ndarray  # float64 per product, rounded to cents
    page_urls: list[str]
    page_types: list[str]  # per page
    page_type_names: list[str]
    page_type_of_page: np.ndarray  # int16 index into page_type_names
    properties: list[str]  # JSON object text
    prop_offsets: dict[str, int]

    @property
    def n_products(self) -> int:
        """Number of products."""
        return len(self.product_ids)

    @property
    def category_page0(self) -> int:
        """Index of the first category page."""
        return 4

    @property
    def product_page0(self) -> int:
        """Index of the first product page."""
        return 4 + len(cfg.CATEGORIES)

    @property
    def article_page0(self) -> int:
        """Index of the first content (journal article) page."""
        return self.product_page0 + self.n_products

    @property
    def search_page0(self) -> int:
        """Index of the first search-result page (one per query)."""
        return self.article_page0 + cfg.N_ARTICLES


HOME_PAGE, CART_PAGE, CHECKOUT_PAGE, ACCOUNT_PAGE = 0, 1, 2, 3
EMAIL_MONTH0 = np.datetime64("2015-01", "M")
EMAIL_MONTHS = 300


def _json(obj: dict[str, object]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _products(
    n_products: int, rng: np.random.Generator
) -> tuple[list[str], np.ndarray, np.ndarray]:
    category = rng.integers(0, len(cfg.CATEGORIES), size=n_products).astype(np.int16)
    mu = np.array([mu for _, mu in cfg.CATEGORIES])[category]
    price = np.round(np.clip(rng.lognormal(mu, cfg.PRICE_SIGMA), 2.5, 2500.0), 0) - 0.01
    order = np.argsort(price, kind="stable")
    numbers = rng.choice(90_000, size=n_products, replace=False) + 10_000
    ids = [f"P{n:05d}" for n in numbers]
    return ids, category[order], np.round(price[order], 2)


def _properties() -> tuple[list[str], dict[str, int]]:
    props: list[str] = []
    offsets: dict[str, int] = {}

    def add(name: str, items: list[str]) -> None:
        offsets[name] = len(props)
        props.extend(items)

    queries = [*cfg.SEARCH_QUERIES, *cfg.CHEAP_QUERIES]
    add("query", [_json({"query": q}) for q in queries])
    add(
        "filter",
        [_json({"filter": "price", "min": lo, "max": hi}) for lo, hi in cfg.PRICE_FILTERS]
        + [_json({"filter": k, "value": v}) for k, v in cfg.OTHER_FILTERS],
    )
    add(
        "video",
        [_json({"video_id": f"V{i:04d}", "duration_s": 30 + (i * 37) % 540}) for i in range(40)],
    )
    add("form", [_json({"form": f}) for f in cfg.FORMS])
    add(
        "discount",
        [_json({"discount_code": c, "discount_pct": p}) for c, p in cfg.DISCOUNT_CODES],
    )
    add("email", [_json({"email_id": f"nl-{m}"}) for m in _email_months()])
    return props, offsets


def _email_months() -> list[str]:
    """Newsletter month labels from ``EMAIL_MONTH0`` on; events index them by month offset."""
    return [str(EMAIL_MONTH0 + i) for i in range(EMAIL_MONTHS)]


def _pages(product_ids: list[str]) -> tuple[list[str], list[str]]:
    urls = [f"{cfg.SITE}/", f"{cfg.SITE}/cart", f"{cfg.SITE}/checkout", f"{cfg.SITE}/account"]
    types = ["home", "cart", "checkout", "account"]
    urls += [f"{cfg.SITE}/c/{name}" for name, _ in cfg.CATEGORIES]
    types += ["category"] * len(cfg.CATEGORIES)
    urls += [f"{cfg.SITE}/p/{pid}" for pid in product_ids]
    types += ["product"] * len(product_ids)
    urls += [f"{cfg.SITE}/journal/article-{i:04d}" for i in range(cfg.N_ARTICLES)]
    types += ["content"] * cfg.N_ARTICLES
    queries = [*cfg.SEARCH_QUERIES, *cfg.CHEAP_QUERIES]
    urls += [f"{cfg.SITE}/search?q={q.replace(' ', '+')}" for q in queries]
    types += ["search"] * len(queries)
    return urls, types


def build_catalog(n_web_persons: int, rng: np.random.Generator) -> Catalog:
    """Build the catalogue; the product count scales with the audience (200 to 5,000)."""
    n_products = int(np.clip(n_web_persons // 50, 200, 5000))
    product_ids, category, price = _products(n_products, rng)
    urls, types = _pages(product_ids)
    type_names = sorted(set(types))
    type_index = {name: i for i, name in enumerate(type_names)}
    props, offsets = _properties()
    return Catalog(
        product_ids=product_ids,
        product_category=category,
        product_price=price,
        page_urls=urls,
        page_types=types,
        page_type_names=type_names,
        page_type_of_page=np.array([type_index[t] for t in types], dtype=np.int16),
        properties=props,
        prop_offsets=offsets,
    )
