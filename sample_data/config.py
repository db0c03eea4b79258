"""Tunable constants of the sample-data generator: archetypes, funnels, catalogues, bad input.

Everything that shapes the planted behaviour lives here, so the truth a test or a model is
checked against can be traced back to one table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

DEFAULT_AS_OF = datetime(2026, 11, 1, tzinfo=UTC)

HISTORY_DAYS = 365
EVENTS_PER_PERSON = 40
MIN_WEB_PERSONS = 100
OFFLINE_CUSTOMER_SHARE = 0.08
MAX_LINES_PER_FILE = 250_000
MIN_FILES = 3

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

CHURN_QUIET_DAYS = 120
NEW_VISITOR_DAYS = 14
HIGH_VALUE_MIN_SPEND = 520.0

# --- archetypes ------------------------------------------------------------------------------
ARCHETYPES = (
    "frequent_browser",
    "cart_abandoner",
    "price_sensitive",
    "high_value_loyal",
    "content_explorer",
    "new_visitor",
    "churned",
    "casual",
    "bot",
    "offline_buyer",
)
FREQUENT_BROWSER, CART_ABANDONER, PRICE_SENSITIVE, HIGH_VALUE_LOYAL = 0, 1, 2, 3
CONTENT_EXPLORER, NEW_VISITOR, CHURNED, CASUAL, BOT, OFFLINE_BUYER = 4, 5, 6, 7, 8, 9

# --- session kinds ---------------------------------------------------------------------------
KINDS = ("browse", "content", "search", "cart", "purchase", "email", "bot")
BROWSE, CONTENT, SEARCH, CART, PURCHASE, EMAIL, BOT_CRAWL = range(7)


@dataclass(frozen=True)
class ArchetypeProfile:
    """Planted behaviour of one archetype.

    Window days count backwards from ``as_of``: a person is active between
    ``as_of - start_days`` and ``as_of - end_days`` (each drawn uniformly from its range).
    """

    share: float
    sessions_mean: float
    min_sessions: int
    known_share: float
    kind_probs: tuple[float, float, float, float, float, float, float]
    start_days: tuple[float, float]
    end_days: tuple[float, float]
    mid_events_factor: float = 1.0
    marketing_consent: float = 0.62
    offline_orders_mean: float = 0.3


#                          browse content search cart  purchase email bot
PROFILES: dict[int, ArchetypeProfile] = {
    FREQUENT_BROWSER: ArchetypeProfile(
        0.06, 90, 30, 0.5, (0.76, 0.03, 0.14, 0.04, 0.02, 0.01, 0.0), (30, 120), (0, 0), 0.5
    ),
    CART_ABANDONER: ArchetypeProfile(
        0.08, 10, 4, 0.6, (0.25, 0.02, 0.10, 0.58, 0.03, 0.02, 0.0), (120, 365), (0, 0)
    ),
    PRICE_SENSITIVE: ArchetypeProfile(
        0.09,
        10,
        3,
        0.85,
        (0.25, 0.03, 0.30, 0.12, 0.25, 0.05, 0.0),
        (120, 365),
        (0, 0),
        marketing_consent=0.75,
    ),
    HIGH_VALUE_LOYAL: ArchetypeProfile(
        0.05,
        15,
        8,
        1.0,
        (0.30, 0.05, 0.10, 0.05, 0.42, 0.08, 0.0),
        (120, 365),
        (0, 0),
        marketing_consent=0.8,
        offline_orders_mean=2.0,
    ),
    CONTENT_EXPLORER: ArchetypeProfile(
        0.07, 7, 3, 0.35, (0.15, 0.78, 0.04, 0.01, 0.01, 0.01, 0.0), (120, 365), (0, 0), 1.5
    ),
    NEW_VISITOR: ArchetypeProfile(
        0.10,
        3,
        1,
        0.25,
        (0.55, 0.10, 0.20, 0.10, 0.04, 0.01, 0.0),
        (0.5, 13.5),
        (0, 0),
        offline_orders_mean=0.0,
    ),
    CHURNED: ArchetypeProfile(
        0.12,
        6,
        3,
        0.5,
        (0.45, 0.10, 0.15, 0.12, 0.15, 0.03, 0.0),
        (250, 365),
        (CHURN_QUIET_DAYS + 5, 180),
        marketing_consent=0.5,
    ),
    CASUAL: ArchetypeProfile(
        0.426, 2.5, 1, 0.4, (0.50, 0.10, 0.20, 0.08, 0.08, 0.04, 0.0), (60, 365), (0, 0)
    ),
    BOT: ArchetypeProfile(
        0.004, 12, 5, 0.0, (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0), (20, 300), (0, 0)
    ),
}
BOT_ACTIVE_DAYS = (3.0, 20.0)
MIN_PERSONS_PER_ARCHETYPE = 3
TRIMMABLE_ARCHETYPES = (CASUAL, FREQUENT_BROWSER, CONTENT_EXPLORER)

# --- event types and funnels -----------------------------------------------------------------
EVENT_TYPES = (
    "page_view",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "checkout_start",
    "purchase",
    "search",
    "filter_applied",
    "video_play",
    "form_submit",
    "email_open",
    "email_click",
)
(
    PAGE_VIEW,
    PRODUCT_VIEW,
    ADD_TO_CART,
    REMOVE_FROM_CART,
    CHECKOUT_START,
    PURCHASE_EVENT,
    SEARCH_EVENT,
    FILTER_APPLIED,
    VIDEO_PLAY,
    FORM_SUBMIT,
    EMAIL_OPEN,
    EMAIL_CLICK,
) = range(12)

# Middle-of-session event mix per session kind:
# page_view, product_view, search, filter_applied, video_play, form_submit, add_to_cart
MID_EVENT_TYPES = (
    PAGE_VIEW,
    PRODUCT_VIEW,
    SEARCH_EVENT,
    FILTER_APPLIED,
    VIDEO_PLAY,
    FORM_SUBMIT,
    ADD_TO_CART,
)
MID_EVENT_PROBS = {
    BROWSE: (0.45, 0.42, 0.04, 0.04, 0.02, 0.01, 0.02),
    CONTENT: (0.80, 0.02, 0.0, 0.0, 0.14, 0.04, 0.0),
    SEARCH: (0.10, 0.42, 0.33, 0.15, 0.0, 0.0, 0.0),
    CART: (0.22, 0.58, 0.10, 0.10, 0.0, 0.0, 0.0),
    PURCHASE: (0.20, 0.55, 0.10, 0.15, 0.0, 0.0, 0.0),
    EMAIL: (0.50, 0.50, 0.0, 0.0, 0.0, 0.0, 0.0),
    BOT_CRAWL: (0.60, 0.40, 0.0, 0.0, 0.0, 0.0, 0.0),
}
MID_EVENTS_MEAN = {
    BROWSE: 4.0,
    CONTENT: 6.0,
    SEARCH: 4.0,
    CART: 3.0,
    PURCHASE: 4.0,
    EMAIL: 2.0,
    BOT_CRAWL: 35.0,
}
# Session endings (funnel tails); rows padded with -1.
TAIL_TEMPLATES = (
    (),
    (ADD_TO_CART,),
    (ADD_TO_CART, CHECKOUT_START),
    (ADD_TO_CART, REMOVE_FROM_CART),
    (ADD_TO_CART, CHECKOUT_START, PURCHASE_EVENT),
)
CART_TAIL_PROBS = (0.0, 0.45, 0.40, 0.15, 0.0)  # abandoned carts
PURCHASE_TAIL = 4

# page_view page types: home, category, content, account, cart
PAGE_VIEW_TYPES = ("home", "category", "content", "account", "cart")
ENTRY_PAGE_PROBS = {
    BROWSE: (0.45, 0.40, 0.10, 0.05, 0.0),
    CONTENT: (0.10, 0.0, 0.90, 0.0, 0.0),
    SEARCH: (0.50, 0.50, 0.0, 0.0, 0.0),
    CART: (0.40, 0.60, 0.0, 0.0, 0.0),
    PURCHASE: (0.40, 0.50, 0.0, 0.10, 0.0),
    EMAIL: (1.0, 0.0, 0.0, 0.0, 0.0),
    BOT_CRAWL: (0.30, 0.40, 0.30, 0.0, 0.0),
}
MID_PAGE_PROBS = {
    BROWSE: (0.15, 0.60, 0.10, 0.05, 0.10),
    CONTENT: (0.05, 0.0, 0.95, 0.0, 0.0),
    SEARCH: (0.20, 0.80, 0.0, 0.0, 0.0),
    CART: (0.10, 0.50, 0.0, 0.0, 0.40),
    PURCHASE: (0.10, 0.50, 0.0, 0.10, 0.30),
    EMAIL: (0.0, 0.70, 0.30, 0.0, 0.0),
    BOT_CRAWL: (0.20, 0.50, 0.30, 0.0, 0.0),
}

# --- catalogue -------------------------------------------------------------------------------
SITE = "https://shop.example.com"
CATEGORIES = (
    ("shoes", 4.3),
    ("apparel", 3.5),
    ("outerwear", 4.6),
    ("accessories", 3.0),
    ("bags", 4.0),
    ("sportswear", 3.6),
    ("home", 3.3),
    ("beauty", 2.8),
    ("electronics", 4.8),
    ("kids", 3.0),
)
PRICE_SIGMA = 0.6
N_ARTICLES = 200
N_VIDEOS = 40
SEARCH_QUERIES = (
    "sneakers",
    "running shoes",
    "winter jacket",
    "jeans",
    "summer dress",
    "backpack",
    "wool sweater",
    "leather boots",
    "sunglasses",
    "yoga mat",
    "rain jacket",
    "linen shirt",
    "hiking boots",
    "gift ideas",
    "scarf",
    "watch",
    "handbag",
    "swimwear",
    "hoodie",
    "headphones",
)
CHEAP_QUERIES = (
    "sale",
    "cheap",
    "cheap sneakers",
    "sale jackets",
    "discount",
    "clearance",
    "under 20",
    "cheap dresses",
    "outlet sale",
    "bargain",
)
PRICE_FILTERS = ((0, 20), (0, 30), (0, 50), (20, 75), (50, 100))
OTHER_FILTERS = (
    ("color", "black"),
    ("color", "blue"),
    ("color", "white"),
    ("size", "M"),
    ("size", "L"),
    ("size", "42"),
    ("brand", "northpeak"),
    ("brand", "urbanline"),
)
FORMS = ("newsletter_signup", "contact", "size_advice", "review")
DISCOUNT_CODES = (("SAVE10", 10), ("SALE15", 15), ("WELCOME20", 20), ("BUNDLE5", 5))
EXPERIMENTS = ("exp_checkout_v2", "exp_reco_carousel", "exp_free_shipping_banner")
EXPERIMENT_SHARE = 0.08

# (referrer, utm_source, utm_medium, utm_campaign) for a session's entry event
ENTRY_SOURCES = (
    (None, None, None, None),
    ("https://www.google.com/", None, None, None),
    ("https://www.bing.com/", None, None, None),
    ("https://www.google.com/", "google", "cpc", "brand_search"),
    ("https://www.google.com/", "google", "cpc", "generic_fashion"),
    ("https://www.facebook.com/", "facebook", "paid_social", "spring_collection"),
    ("https://www.instagram.com/", "instagram", "social", "influencer_q3"),
    ("https://deals.example.net/", "dealsportal", "affiliate", "partner_deals"),
    ("https://www.google.com/", "google", "cpc", "sale_clearance"),
    (None, "newsletter", "email", "newsletter_monthly"),
    ("https://www.pinterest.com/", "pinterest", "social", "style_guide"),
)
EMAIL_ENTRY = 9
ENTRY_PROBS_DEFAULT = (0.34, 0.20, 0.04, 0.10, 0.04, 0.08, 0.05, 0.05, 0.03, 0.0, 0.07)
ENTRY_PROBS_PRICE_SENSITIVE = (0.25, 0.15, 0.03, 0.07, 0.03, 0.07, 0.05, 0.15, 0.20, 0.0, 0.0)

# --- devices ---------------------------------------------------------------------------------
DEVICE_TYPES = ("desktop", "mobile", "tablet")
DEVICE_TYPE_PROBS = (0.45, 0.45, 0.10)
DEVICES_PER_PERSON_PROBS = (0.55, 0.30, 0.15)
PRIMARY_DEVICE_SHARE = 0.6
LOGIN_GEOMETRIC_P = 0.45
TZ_SUFFIXES = ("Z", "+01:00", "+02:00", "-04:00", "-05:00", "+05:30")
TZ_OFFSET_MINUTES = (0, 60, 120, -240, -300, 330)
TZ_PROBS = (0.70, 0.10, 0.10, 0.04, 0.04, 0.02)

_WIN = "Windows NT 10.0; Win64; x64"
_MAC = "Macintosh; Intel Mac OS X 10_15_7"
_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
USER_AGENTS: dict[str, tuple[str, ...]] = {
    "desktop": tuple(
        [f"Mozilla/5.0 ({_WIN}) {_WEBKIT} Chrome/{v}.0.0.0 Safari/537.36" for v in range(124, 132)]
        + [
            f"Mozilla/5.0 ({_MAC}) {_WEBKIT} Chrome/{v}.0.0.0 Safari/537.36"
            for v in range(126, 132)
        ]
        + [f"Mozilla/5.0 ({_WIN}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0" for v in range(125, 133)]
        + [
            f"Mozilla/5.0 ({_MAC}) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            f"Version/{v} Safari/605.1.15"
            for v in ("17.4", "17.5", "17.6", "18.0", "18.1")
        ]
        + [
            f"Mozilla/5.0 ({_WIN}) {_WEBKIT} Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0"
            for v in range(126, 131)
        ]
    ),
    "mobile": tuple(
        [
            f"Mozilla/5.0 (iPhone; CPU iPhone OS {v} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{v.split('_')[0]}.0 Mobile/15E148 Safari/604.1"
            for v in ("16_7", "17_4", "17_5", "17_6", "18_0", "18_1")
        ]
        + [
            f"Mozilla/5.0 (Linux; Android {a}; {m}) {_WEBKIT} Chrome/{c}.0.0.0 Mobile Safari/537.36"
            for a, m, c in (
                ("14", "Pixel 8", 130),
                ("14", "SM-S921B", 129),
                ("13", "SM-A546B", 128),
                ("14", "Pixel 7a", 131),
                ("13", "M2101K6G", 127),
                ("12", "SM-G991B", 126),
            )
        ]
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPad; CPU OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.0 Mobile/15E148 Safari/604.1",
        f"Mozilla/5.0 (Linux; Android 14; SM-X710) {_WEBKIT} Chrome/129.0.0.0 Safari/537.36",
        f"Mozilla/5.0 (Linux; Android 13; Lenovo TB-J616F) {_WEBKIT} "
        "Chrome/127.0.0.0 Safari/537.36",
    ),
}
BOT_AGENTS = (
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        (66, 249),
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        (157, 55),
    ),
    (
        f"Mozilla/5.0 (X11; Linux x86_64) {_WEBKIT} HeadlessChrome/126.0.0.0 Safari/537.36",
        (34, 89),
    ),
)
PUBLIC_FIRST_OCTETS = (
    31, 37, 46, 62, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94,
    95, 109, 176, 178, 185, 188, 193, 194, 195, 212, 213, 217,
)  # fmt: skip

# --- CRM -------------------------------------------------------------------------------------
FIRST_NAMES = (
    "Anna", "Lukas", "Sophie", "Jonas", "Emma", "Leon", "Mia", "Felix", "Hannah", "Paul",
    "Lea", "Noah", "Clara", "Elias", "Marie", "Louis", "Julia", "Finn", "Laura", "Ben",
    "Chloe", "Hugo", "Camille", "Jules", "Manon", "Oliver", "Amelia", "Harry", "Isla", "Jack",
    "Olivia", "George", "Lucia", "Mateo", "Sofia", "Pablo", "Giulia", "Marco", "Chiara", "Luca",
    "Sanne", "Daan", "Eva", "Sem", "Emily", "James", "Grace", "Ethan", "Nina", "Tobias",
)  # fmt: skip
LAST_NAMES = (
    "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Hoffmann", "Koch", "Martin", "Bernard", "Dubois", "Laurent", "Moreau", "Smith", "Jones",
    "Taylor", "Brown", "Wilson", "Garcia", "Lopez", "Martinez", "Sanchez", "Rossi", "Russo",
    "Ferrari", "Bianchi", "de Jong", "Jansen", "Visser", "Bakker", "Huber", "Gruber", "Novak",
    "Johnson", "Miller", "Davis", "Anderson", "Keller", "Roth", "Vogel", "Braun", "Lange",
)  # fmt: skip
# country, currency, phone prefix, weight, cities
COUNTRIES = (
    ("DE", "EUR", "+49 151", 0.30, ("Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt")),
    ("FR", "EUR", "+33 6", 0.15, ("Paris", "Lyon", "Marseille", "Toulouse")),
    ("GB", "GBP", "+44 7700", 0.15, ("London", "Manchester", "Birmingham", "Leeds")),
    ("NL", "EUR", "+31 6", 0.10, ("Amsterdam", "Rotterdam", "Utrecht")),
    ("ES", "EUR", "+34 612", 0.08, ("Madrid", "Barcelona", "Valencia")),
    ("IT", "EUR", "+39 320", 0.08, ("Milan", "Rome", "Turin")),
    ("AT", "EUR", "+43 660", 0.06, ("Vienna", "Graz", "Salzburg")),
    ("US", "USD", "+1 212", 0.08, ("New York", "Chicago", "Austin")),
)
CURRENCIES = ("EUR", "GBP", "USD")
INCOME_BRACKETS = ("<25k", "25-50k", "50-100k", "100k+")
EDUCATION_LEVELS = ("secondary", "vocational", "bachelor", "master", "doctorate")
ORDER_STATUSES = ("completed", "cancelled", "returned")
ORDER_STATUS_PROBS = (0.92, 0.04, 0.04)
LOYALTY_TIERS = ((0.0, "bronze"), (250.0, "silver"), (750.0, "gold"), (2000.0, "platinum"))
CONSENT_PURPOSES = ("analytics", "personalization", "marketing")
CONSENT_GRANT_PROBS = (0.93, 0.85)  # analytics, personalization; marketing is per archetype
OPTIONAL_FIELD_NULL_SHARE = 0.08

# --- bad input (shares of total lines) -------------------------------------------------------
MALFORMED_SHARE = 0.002
MISSING_SHARE_PER_FIELD = 0.0005
MISSING_FIELDS = ("event_id", "event_type", "occurred_at", "identity")
BAD_TIMESTAMP_SHARE = 0.002
DUPLICATE_SHARE = 0.004
LATE_SHARE = 0.002
BAD_TIMESTAMPS = (
    "not-a-date",
    "2026-13-45T99:00:00Z",
    "2026-02-30T25:61:00Z",
    "0000-00-00T00:00:00Z",
    "tomorrow 10am",
)
