"""Sessions and events, drawn with array operations only (no Python loop per person or event).

Pipeline: per-person session counts -> session start times (uniform spacings with a minimum
gap, warped to a diurnal curve) -> per-session kind, device, login state, entry source and
funnel tail -> per-event type, page, product, properties and time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from sample_data import config as cfg
from sample_data.catalog import (
    ACCOUNT_PAGE,
    CART_PAGE,
    CHECKOUT_PAGE,
    EMAIL_MONTH0,
    EMAIL_MONTHS,
    HOME_PAGE,
    Catalog,
)
from sample_data.population import Population

# Share of traffic per UTC hour (a European audience: lunch and evening peaks).
HOURLY_WEIGHTS = np.array(
    [
        *(0.6, 0.35, 0.2, 0.15, 0.15, 0.25, 0.5, 0.9, 1.2, 1.3, 1.4, 1.5),
        *(1.7, 1.6, 1.5, 1.5, 1.6, 1.8, 2.1, 2.4, 2.5, 2.2, 1.6, 1.0),
    ]
)
MAX_MIN_GAP_MS = 2 * cfg.HOUR_MS
TAIL_LENGTHS = np.array([len(t) for t in cfg.TAIL_TEMPLATES], dtype=np.int8)
TAIL_MATRIX = np.array([[*t, *([-1] * (3 - len(t)))] for t in cfg.TAIL_TEMPLATES], dtype=np.int8)
PAGE_HOME, PAGE_CATEGORY, PAGE_CONTENT, PAGE_ACCOUNT, PAGE_CART = range(5)


@dataclass(frozen=True)
class Sessions:
    """Per-session arrays, ordered by person then start time."""

    person: np.ndarray  # int32
    start_ms: np.ndarray  # int64
    kind: np.ndarray  # int8
    device: np.ndarray  # int32
    logged_in: np.ndarray  # bool: user_id on every event from the first
    login_session: np.ndarray  # bool: the session in which the device first logs in
    first_of_person: np.ndarray  # bool
    first_of_device: np.ndarray  # bool
    entry: np.ndarray  # int8 index into cfg.ENTRY_SOURCES
    experiment: np.ndarray  # int8 index into cfg.EXPERIMENTS, -1 none
    focus_product: np.ndarray  # int32
    tail: np.ndarray  # int8 index into cfg.TAIL_TEMPLATES
    quantity: np.ndarray  # int8 cart quantity
    length: np.ndarray  # int32 events drawn

    @property
    def n(self) -> int:
        """Number of sessions."""
        return len(self.person)


@dataclass(frozen=True)
class Events:
    """Per-event arrays, ordered by session then time (valid, distinct events only)."""

    session: np.ndarray  # int32
    time_ms: np.ndarray  # int64 occurred_at
    received_ms: np.ndarray  # int64 received_at
    etype: np.ndarray  # int8 index into cfg.EVENT_TYPES
    page: np.ndarray  # int32 index into catalog pages, -1 none
    product: np.ndarray  # int32 index into catalog products, -1 none
    prop: np.ndarray  # int32 index into catalog properties, -1 none
    has_user: np.ndarray  # bool
    is_entry: np.ndarray  # bool: carries referrer / utm of the session

    @property
    def n(self) -> int:
        """Number of events."""
        return len(self.session)

    def take(self, index: np.ndarray) -> Events:
        """Return the events selected by a boolean mask or an index array."""
        return Events(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def _categorical(u: np.ndarray, probs: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Map uniforms to category indices with the given probabilities."""
    cum = np.cumsum(np.asarray(probs, dtype=np.float64))
    cum /= cum[-1]
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _by_group(
    groups: np.ndarray, u: np.ndarray, table: dict[int, tuple[float, ...]], fill: int = 0
) -> np.ndarray:
    """Draw a categorical per row whose probabilities depend on the row's group."""
    out = np.full(len(groups), fill, dtype=np.int16)
    for group, probs in table.items():
        mask = groups == group
        if mask.any():
            out[mask] = _categorical(u[mask], probs)
    return out


def _profile(attribute: str, default: float = 0.0) -> np.ndarray:
    return np.array(
        [
            getattr(cfg.PROFILES[a], attribute) if a in cfg.PROFILES else default
            for a in range(len(cfg.ARCHETYPES))
        ],
        dtype=np.float64,
    )


def expected_session_length() -> np.ndarray:
    """Expected events per session for each archetype (used to size the audience)."""
    out = np.zeros(len(cfg.ARCHETYPES))
    tail_mean = {k: 0.0 for k in range(len(cfg.KINDS))} | {
        cfg.CART: float(np.dot(cfg.CART_TAIL_PROBS, TAIL_LENGTHS)),
        cfg.PURCHASE: 3.0,
    }
    for a, prof in cfg.PROFILES.items():
        per_kind = [
            (2.0 if k == cfg.EMAIL else 1.0)
            + cfg.MID_EVENTS_MEAN[k] * prof.mid_events_factor
            + tail_mean[k]
            for k in range(len(cfg.KINDS))
        ]
        out[a] = float(np.dot(prof.kind_probs, per_kind))
    return out


def _expected_sessions(lam: np.ndarray, minimum: np.ndarray) -> np.ndarray:
    """E[max(minimum, Poisson(lam))], elementwise."""
    out = lam.copy()
    log_lam = np.log(np.maximum(lam, 1e-12))
    for j in range(int(minimum.max(initial=0))):
        log_pmf = j * log_lam - lam - np.sum(np.log(np.arange(1, j + 1))) if j else -lam
        out += np.where(j < minimum, (minimum - j) * np.exp(log_pmf), 0.0)
    return out


def bot_session_factor(archetype: np.ndarray) -> float:
    """Shrink bot activity when the minimum bot count exceeds the planned bot share."""
    n_web = int(np.sum(archetype != cfg.OFFLINE_BUYER))
    planned = cfg.PROFILES[cfg.BOT].share * n_web
    actual = max(1, int(np.sum(archetype == cfg.BOT)))
    return min(1.0, planned / actual)


def session_means(archetype: np.ndarray, scale: float) -> np.ndarray:
    """Poisson mean of the session count per person."""
    lam = _profile("sessions_mean")[archetype] * scale
    lam[archetype == cfg.BOT] *= bot_session_factor(archetype)
    return lam


def expected_events(archetype: np.ndarray, scale: float) -> float:
    """Expected number of events for the whole audience at a given activity scale."""
    lam = session_means(archetype, scale)
    minimum = _profile("min_sessions")[archetype]
    return float(np.sum(_expected_sessions(lam, minimum) * expected_session_length()[archetype]))


def scale_for(archetype: np.ndarray, target_events: float) -> float:
    """Activity scale whose expected event count matches ``target_events``."""
    scale = 1.0
    for _ in range(30):
        scale *= target_events / expected_events(archetype, scale)
    return scale


# --- sessions --------------------------------------------------------------------------------


def _session_counts(pop: Population, scale: float, rng: np.random.Generator) -> np.ndarray:
    arch = pop.archetype
    n = rng.poisson(session_means(arch, scale))
    n = np.maximum(n, _profile("min_sessions")[arch].astype(np.int64))
    n[arch == cfg.OFFLINE_BUYER] = 0
    return n


def _uniform_positions(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted uniform positions in [0, 1) per person, from normalised exponential spacings."""
    block = counts + 1
    block_start = np.cumsum(block) - block
    gaps = rng.exponential(size=int(block.sum()))
    cum = np.cumsum(gaps)
    local = cum - np.repeat(cum[block_start] - gaps[block_start], block)
    total = local[block_start + block - 1]
    is_last = np.zeros(len(gaps), dtype=bool)
    is_last[block_start + block - 1] = True
    return local[~is_last] / np.repeat(total, counts)


def _diurnal(time_ms: np.ndarray) -> np.ndarray:
    """Warp time of day through the inverse CDF of the hourly curve (monotone, keeps order)."""
    cdf = np.concatenate([[0.0], np.cumsum(HOURLY_WEIGHTS) / HOURLY_WEIGHTS.sum()])
    hours = np.arange(25, dtype=np.float64)
    day, frac = np.divmod(time_ms, float(cfg.DAY_MS))
    warped = np.interp(frac / cfg.DAY_MS, cdf, hours) * cfg.HOUR_MS
    return day * cfg.DAY_MS + np.minimum(warped, cfg.DAY_MS - 1)


def _session_times(
    pop: Population, counts: np.ndarray, person: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Session starts inside each person's window, at least a minimum gap apart."""
    length = (pop.window_end_ms - pop.window_start_ms).astype(np.float64)
    min_gap = np.minimum(MAX_MIN_GAP_MS, length / (3.0 * np.maximum(counts, 1)))
    position = _uniform_positions(counts, rng)
    first = np.cumsum(counts) - counts
    k = np.arange(len(person)) - np.repeat(first, counts)
    usable = length - counts * min_gap
    t = pop.window_start_ms[person] + position * usable[person] + k * min_gap[person]
    bots = pop.archetype[person] == cfg.BOT
    t = np.where(bots, t, _diurnal(t))
    return t.astype(np.int64)


def _session_kinds(
    pop: Population, person: np.ndarray, ordinal: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Kind of each session. Planted for sure: cart abandoners abandon carts in their 2nd and
    3rd session, high-value customers buy in their 3rd and 6th."""
    arch = pop.archetype[person]
    kind = _by_group(
        arch, rng.random(len(person)), {a: p.kind_probs for a, p in cfg.PROFILES.items()}
    )
    kind[(arch == cfg.CART_ABANDONER) & np.isin(ordinal, (1, 2))] = cfg.CART
    kind[(arch == cfg.HIGH_VALUE_LOYAL) & np.isin(ordinal, (2, 5))] = cfg.PURCHASE
    known = pop.known[person]
    marketing = pop.consent[person, 2]
    kind[(kind == cfg.EMAIL) & ~(known & marketing)] = cfg.BROWSE
    kind[(kind == cfg.PURCHASE) & ~known] = cfg.CART
    return kind.astype(np.int8)


def _session_devices(pop: Population, person: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(person)
    pick = np.where(
        rng.random(n) < cfg.PRIMARY_DEVICE_SHARE,
        0,
        (rng.random(n) * pop.device_count[person]).astype(np.int64),
    )
    return (pop.device_start[person] + pick).astype(np.int32)


def _device_ordinals(device: np.ndarray, n_devices: int) -> np.ndarray:
    """Rank of each session among its device's sessions (input is in time order per person)."""
    order = np.argsort(device, kind="stable")
    counts = np.bincount(device, minlength=n_devices)
    group_start = np.cumsum(counts) - counts
    ordinal = np.empty(len(device), dtype=np.int32)
    ordinal[order] = np.arange(len(device)) - np.repeat(group_start, counts)
    return ordinal


def _focus_products(arch: np.ndarray, u: np.ndarray, n_products: int) -> np.ndarray:
    """Products by price preference: price-sensitive cheap, high-value expensive, others any."""
    cheap = np.floor(u**2 * 0.4 * n_products)
    product = np.floor(u * n_products)
    product = np.where(arch == cfg.PRICE_SENSITIVE, cheap, product)
    product = np.where(arch == cfg.HIGH_VALUE_LOYAL, n_products - 1 - cheap, product)
    return np.clip(product, 0, n_products - 1).astype(np.int32)


def draw_sessions(
    pop: Population, catalog: Catalog, scale: float, rng: np.random.Generator
) -> Sessions:
    """Draw every session of every web person."""
    counts = _session_counts(pop, scale, rng)
    person = np.repeat(np.arange(pop.n_persons, dtype=np.int32), counts)
    n = len(person)
    arch = pop.archetype[person]
    start = _session_times(pop, counts, person, rng)
    ordinal_of_person = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    kind = _session_kinds(pop, person, ordinal_of_person, rng)
    device = _session_devices(pop, person, rng)

    ordinal = _device_ordinals(device, pop.n_devices)
    per_device = np.bincount(device, minlength=pop.n_devices)
    login_at = np.minimum(rng.geometric(cfg.LOGIN_GEOMETRIC_P, pop.n_devices) - 1, per_device - 1)
    known = pop.known[person]
    logged_in = (known & (ordinal >= login_at[device])) | (kind == cfg.EMAIL)
    first_of_person = ordinal_of_person == 0

    entry = np.where(
        arch == cfg.PRICE_SENSITIVE,
        _categorical(rng.random(n), cfg.ENTRY_PROBS_PRICE_SENSITIVE),
        _categorical(rng.random(n), cfg.ENTRY_PROBS_DEFAULT),
    )
    entry[kind == cfg.EMAIL] = cfg.EMAIL_ENTRY
    entry[arch == cfg.BOT] = 0
    experiment = np.where(
        rng.random(n) < cfg.EXPERIMENT_SHARE, rng.integers(0, len(cfg.EXPERIMENTS), n), -1
    )
    experiment[arch == cfg.BOT] = -1

    tail = np.zeros(n, dtype=np.int8)
    carts = kind == cfg.CART
    tail[carts] = _categorical(rng.random(int(carts.sum())), cfg.CART_TAIL_PROBS)
    tail[kind == cfg.PURCHASE] = cfg.PURCHASE_TAIL
    quantity = (
        np.where(
            arch == cfg.HIGH_VALUE_LOYAL,
            _categorical(rng.random(n), (0.5, 0.3, 0.2)),
            _categorical(rng.random(n), (0.75, 0.18, 0.07)),
        )
        + 1
    )
    mid_mean = np.array([cfg.MID_EVENTS_MEAN[k] for k in range(len(cfg.KINDS))])[kind]
    mid_mean *= _profile("mid_events_factor", 1.0)[arch]
    mid = rng.geometric(1.0 / (mid_mean + 1.0)) - 1
    length = np.where(kind == cfg.EMAIL, 2, 1) + mid + TAIL_LENGTHS[tail]
    return Sessions(
        person=person,
        start_ms=start,
        kind=kind,
        device=device,
        logged_in=logged_in,
        login_session=known & (ordinal == login_at[device]),
        first_of_person=first_of_person,
        first_of_device=ordinal == 0,
        entry=entry.astype(np.int8),
        experiment=experiment.astype(np.int8),
        focus_product=_focus_products(arch, rng.random(n), catalog.n_products),
        tail=tail,
        quantity=quantity.astype(np.int8),
        length=length.astype(np.int32),
    )


# --- events ----------------------------------------------------------------------------------


def _event_types(
    sess: Sessions, es: np.ndarray, pos: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Event type of each event, and whether it is in the session's head (entry part)."""
    kind = sess.kind[es]
    head_n = np.where(kind == cfg.EMAIL, 2, 1)
    from_end = sess.length[es] - 1 - pos
    tail_len = TAIL_LENGTHS[sess.tail[es]]
    head = pos < head_n
    in_tail = from_end < tail_len
    etype = np.full(len(es), cfg.PAGE_VIEW, dtype=np.int8)
    email = head & (kind == cfg.EMAIL)
    etype[email] = np.where(pos[email] == 0, cfg.EMAIL_OPEN, cfg.EMAIL_CLICK)
    etype[in_tail] = TAIL_MATRIX[sess.tail[es[in_tail]], (tail_len - 1 - from_end)[in_tail]]
    mid = ~head & ~in_tail
    mid_types = np.array(cfg.MID_EVENT_TYPES, dtype=np.int8)
    etype[mid] = mid_types[_by_group(kind[mid], rng.random(int(mid.sum())), cfg.MID_EVENT_PROBS)]
    return etype, pos == head_n - 1


def _event_times(
    sess: Sessions, es: np.ndarray, pos: np.ndarray, etype: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Occurred times: session start plus exponential-ish gaps (seconds to minutes)."""
    n = len(es)
    gaps = np.clip(rng.lognormal(np.log(20_000.0), 1.0, n), 1_000.0, 900_000.0)
    slow = (sess.kind[es] == cfg.CONTENT) | (etype == cfg.VIDEO_PLAY)
    gaps[slow] *= 2.0
    bots = sess.kind[es] == cfg.BOT_CRAWL
    gaps[bots] = rng.uniform(300.0, 3_000.0, int(bots.sum()))
    gaps[pos == 0] = 0.0
    cum = np.cumsum(gaps)
    first = np.cumsum(sess.length) - sess.length
    offset = cum - np.repeat(cum[first], sess.length)
    return sess.start_ms[es] + offset.astype(np.int64)


def _pick_article(u: np.ndarray, catalog: Catalog) -> np.ndarray:
    return catalog.article_page0 + np.floor(u**1.5 * cfg.N_ARTICLES).astype(np.int32)


def _category_pages(
    sess: Sessions, es: np.ndarray, catalog: Catalog, rng: np.random.Generator
) -> np.ndarray:
    n = len(es)
    focus_cat = catalog.product_category[sess.focus_product[es]]
    random_cat = rng.integers(0, len(cfg.CATEGORIES), n)
    category = np.where(rng.random(n) < 0.6, focus_cat, random_cat)
    return catalog.category_page0 + category.astype(np.int32)


def _view_pages(
    sess: Sessions,
    es: np.ndarray,
    entry: np.ndarray,
    catalog: Catalog,
    rng: np.random.Generator,
) -> np.ndarray:
    """Page of page_view events (content pages for content sessions, and so on)."""
    kind = sess.kind[es]
    u = rng.random(len(es))
    page_kind = np.where(
        entry,
        _by_group(kind, u, cfg.ENTRY_PAGE_PROBS),
        _by_group(kind, u, cfg.MID_PAGE_PROBS),
    )
    fixed = np.array([HOME_PAGE, -1, -1, ACCOUNT_PAGE, CART_PAGE], dtype=np.int32)
    page = fixed[page_kind]
    categories = page_kind == PAGE_CATEGORY
    page[categories] = _category_pages(sess, es[categories], catalog, rng)
    content = page_kind == PAGE_CONTENT
    page[content] = _pick_article(rng.random(int(content.sum())), catalog)
    return page


def _event_products(
    sess: Sessions,
    es: np.ndarray,
    etype: np.ndarray,
    pop: Population,
    catalog: Catalog,
    rng: np.random.Generator,
) -> np.ndarray:
    """Products on commerce events: the session's focus product, or a fresh pick for views."""
    n = len(es)
    has_product = np.isin(
        etype, (cfg.PRODUCT_VIEW, cfg.ADD_TO_CART, cfg.REMOVE_FROM_CART, cfg.PURCHASE_EVENT)
    )
    product = np.where(has_product, sess.focus_product[es], -1).astype(np.int32)
    fresh = (etype == cfg.PRODUCT_VIEW) & (rng.random(n) < 0.5)
    arch = pop.archetype[sess.person[es[fresh]]]
    product[fresh] = _focus_products(arch, rng.random(int(fresh.sum())), catalog.n_products)
    return product


def _event_pages(
    sess: Sessions,
    es: np.ndarray,
    etype: np.ndarray,
    entry: np.ndarray,
    product: np.ndarray,
    prop: np.ndarray,
    catalog: Catalog,
    rng: np.random.Generator,
) -> np.ndarray:
    page = np.full(len(es), -1, dtype=np.int32)
    views = etype == cfg.PAGE_VIEW
    page[views] = _view_pages(sess, es[views], entry[views], catalog, rng)
    on_product = np.isin(etype, (cfg.PRODUCT_VIEW, cfg.ADD_TO_CART))
    page[on_product] = catalog.product_page0 + product[on_product]
    page[etype == cfg.REMOVE_FROM_CART] = CART_PAGE
    page[np.isin(etype, (cfg.CHECKOUT_START, cfg.PURCHASE_EVENT))] = CHECKOUT_PAGE
    searches = etype == cfg.SEARCH_EVENT
    page[searches] = catalog.search_page0 + prop[searches] - catalog.prop_offsets["query"]
    filters = etype == cfg.FILTER_APPLIED
    page[filters] = _category_pages(sess, es[filters], catalog, rng)
    videos = etype == cfg.VIDEO_PLAY
    page[videos] = _pick_article(rng.random(int(videos.sum())), catalog)
    forms = etype == cfg.FORM_SUBMIT
    page[forms] = np.where(
        rng.random(int(forms.sum())) < 0.5,
        ACCOUNT_PAGE,
        _pick_article(rng.random(int(forms.sum())), catalog),
    )
    page[etype == cfg.EMAIL_CLICK] = HOME_PAGE
    return page


def _event_properties(
    sess: Sessions,
    es: np.ndarray,
    etype: np.ndarray,
    time_ms: np.ndarray,
    pop: Population,
    catalog: Catalog,
    rng: np.random.Generator,
) -> np.ndarray:
    """Index into the property table (search query, filter, video, form, discount, email)."""
    n = len(es)
    off = catalog.prop_offsets
    thrifty = pop.archetype[sess.person[es]] == cfg.PRICE_SENSITIVE
    u, v = rng.random(n), rng.random(n)
    prop = np.full(n, -1, dtype=np.int32)

    n_general, n_cheap = len(cfg.SEARCH_QUERIES), len(cfg.CHEAP_QUERIES)
    cheap_query = u < np.where(thrifty, 0.7, 0.05)
    query = np.where(
        cheap_query,
        n_general + (v * n_cheap).astype(np.int32),
        (v * n_general).astype(np.int32),
    )
    m = etype == cfg.SEARCH_EVENT
    prop[m] = off["query"] + query[m]

    n_price, n_other = len(cfg.PRICE_FILTERS), len(cfg.OTHER_FILTERS)
    price_filter = u < np.where(thrifty, 0.85, 0.15)
    flt = np.where(
        price_filter, (v * n_price).astype(np.int32), n_price + (v * n_other).astype(np.int32)
    )
    m = etype == cfg.FILTER_APPLIED
    prop[m] = off["filter"] + flt[m]

    m = etype == cfg.VIDEO_PLAY
    prop[m] = off["video"] + (v[m] * cfg.N_VIDEOS).astype(np.int32)
    m = etype == cfg.FORM_SUBMIT
    prop[m] = off["form"] + (v[m] * len(cfg.FORMS)).astype(np.int32)
    m = (etype == cfg.PURCHASE_EVENT) & (u < np.where(thrifty, 0.8, 0.08))
    prop[m] = off["discount"] + (v[m] * len(cfg.DISCOUNT_CODES)).astype(np.int32)
    m = np.isin(etype, (cfg.EMAIL_OPEN, cfg.EMAIL_CLICK))
    months = time_ms[m].astype("datetime64[ms]").astype("datetime64[M]") - EMAIL_MONTH0
    prop[m] = off["email"] + np.clip(months.astype(np.int64), 0, EMAIL_MONTHS - 1)
    return prop


def draw_events(
    sess: Sessions, pop: Population, catalog: Catalog, rng: np.random.Generator
) -> Events:
    """Expand sessions into events."""
    es = np.repeat(np.arange(sess.n, dtype=np.int32), sess.length)
    first = np.cumsum(sess.length) - sess.length
    pos = (np.arange(len(es)) - np.repeat(first, sess.length)).astype(np.int32)
    etype, entry = _event_types(sess, es, pos, rng)
    time_ms = _event_times(sess, es, pos, etype, rng)
    delay = np.clip(rng.lognormal(np.log(400.0), 1.0, len(es)), 20.0, 10_000.0)
    product = _event_products(sess, es, etype, pop, catalog, rng)
    prop = _event_properties(sess, es, etype, time_ms, pop, catalog, rng)
    page = _event_pages(sess, es, etype, entry, product, prop, catalog, rng)
    checkout = (sess.kind[es] == cfg.PURCHASE) & np.isin(
        etype, (cfg.CHECKOUT_START, cfg.PURCHASE_EVENT)
    )
    return Events(
        session=es,
        time_ms=time_ms,
        received_ms=time_ms + delay.astype(np.int64),
        etype=etype,
        page=page,
        product=product,
        prop=prop,
        has_user=sess.logged_in[es] | checkout,
        is_entry=entry,
    )


def trim_to(
    events: Events, sess: Sessions, pop: Population, target: int, rng: np.random.Generator
) -> Events | None:
    """Remove events until exactly ``target`` remain, or return None if that is not possible.

    Only whole later sessions (and the tail of one more) of casual, frequent-browser and
    content-explorer persons are removed, never a first, login, purchase or email session,
    so every planted behaviour and every identity link survives.
    """
    excess = events.n - target
    if excess < 0:
        return None
    if excess == 0:
        return events
    arch = pop.archetype[sess.person]
    candidate = (
        np.isin(arch, cfg.TRIMMABLE_ARCHETYPES)
        & ~sess.first_of_person
        & ~sess.first_of_device
        & ~sess.login_session
        & ~np.isin(sess.kind, (cfg.PURCHASE, cfg.EMAIL))
    )
    size = np.bincount(events.session, minlength=sess.n)
    pool = np.flatnonzero(candidate & (size > 0))
    pool = pool[rng.permutation(len(pool))]
    cum = np.cumsum(size[pool])
    whole = int(np.searchsorted(cum, excess, side="right"))
    remainder = excess - (int(cum[whole - 1]) if whole else 0)
    if remainder and whole >= len(pool):
        return None
    drop_session = np.zeros(sess.n, dtype=bool)
    drop_session[pool[:whole]] = True
    keep = ~drop_session[events.session]
    if remainder:
        members = np.flatnonzero(events.session == pool[whole])
        keep[members[-remainder:]] = False
    return events.take(keep)


def with_received(events: Events, received_ms: np.ndarray) -> Events:
    """Return the events with new received times (used for late deliveries)."""
    return replace(events, received_ms=received_ms)
