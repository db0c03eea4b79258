"""Landing files: which line goes where, bad-input injection, and fast JSONL / Parquet writing.

Every line is a valid event, an exact re-delivery of one (duplicate), or a copy of one with
exactly one defect (malformed JSON, a missing required field, an unparseable timestamp) and a
fresh event id. Lines are ordered by the time the server received them and cut into files at
fixed received-time boundaries, so late events land in a later file than their occurred_at
suggests.

Serialisation never loops over events in Python: every column is a lookup into a small table
of pre-rendered JSON fragments (``,"page_type":"product"``), and a line is the element-wise
concatenation of its fragments. The concatenated Arrow string buffer *is* the file content.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sample_data import config as cfg
from sample_data.behaviour import Events, Sessions
from sample_data.catalog import Catalog
from sample_data.crm import Crm
from sample_data.experiments import VARIANTS
from sample_data.formats import fixed_to_arrow, iso_millis, iso_utc, uuid_strings
from sample_data.population import Population

log = logging.getLogger(__name__)

VALID, DUPLICATE, MALFORMED, NO_EVENT_ID, NO_EVENT_TYPE, NO_OCCURRED_AT, NO_IDENTITY, BAD_TS = (
    range(8)
)
DEFECT_OF_MISSING = {
    "event_id": NO_EVENT_ID,
    "event_type": NO_EVENT_TYPE,
    "occurred_at": NO_OCCURRED_AT,
    "identity": NO_IDENTITY,
}
EVENT_ID_SALT = 0xE7E47


@dataclass(frozen=True)
class BadInputCounts:
    """How many lines of each kind of bad input to inject (exact, non-overlapping)."""

    malformed_json: int
    missing: dict[str, int]
    bad_timestamp: int
    duplicate_event_ids: int

    @classmethod
    def for_total(cls, n_lines: int) -> BadInputCounts:
        """Shares of ``n_lines`` from the config, at least one of each kind."""

        def share(p: float) -> int:
            return max(1, round(n_lines * p))

        return cls(
            malformed_json=share(cfg.MALFORMED_SHARE),
            missing={f: share(cfg.MISSING_SHARE_PER_FIELD) for f in cfg.MISSING_FIELDS},
            bad_timestamp=share(cfg.BAD_TIMESTAMP_SHARE),
            duplicate_event_ids=share(cfg.DUPLICATE_SHARE),
        )

    @property
    def total(self) -> int:
        """All bad lines."""
        return (
            self.malformed_json
            + sum(self.missing.values())
            + self.bad_timestamp
            + self.duplicate_event_ids
        )

    def as_flat_dict(self) -> dict[str, int]:
        """Flat mapping, e.g. ``missing_event_id``."""
        return {
            "malformed_json": self.malformed_json,
            **{f"missing_{k}": v for k, v in self.missing.items()},
            "bad_timestamp": self.bad_timestamp,
            "duplicate_event_ids": self.duplicate_event_ids,
        }


@dataclass(frozen=True)
class LinePlan:
    """All lines, sorted by received time, with the file each one goes to."""

    source: np.ndarray  # int64 event index (the event itself, or the donor of a bad copy)
    defect: np.ndarray  # int8 VALID, DUPLICATE, ...
    uid: np.ndarray  # int64 event-id index (events 0..V-1, bad copies V..)
    received_ms: np.ndarray  # int64 value written as received_at
    key_ms: np.ndarray  # int64 when this line arrived (sort key)
    variant: np.ndarray  # int32 bad-timestamp variant / truncation point in permille
    file_index: np.ndarray  # int32
    n_files: int


@dataclass
class FileInfo:
    """One landing file as written."""

    path: Path
    format: Literal["jsonl", "parquet"]
    lines: int
    defects: dict[str, int] = field(default_factory=dict)


def file_boundaries(received_ms: np.ndarray, n_files: int) -> np.ndarray:
    """Received-time cut points that split the events into ``n_files`` near-equal files."""
    ordered = np.sort(received_ms)
    cuts = (np.arange(1, n_files) * len(ordered)) // n_files
    return ordered[cuts]


def make_late(
    events: Events, boundaries: np.ndarray, n_late: int, as_of_ms: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Pick late events just before each file boundary and deliver them after it.

    Each chosen event occurred 1-3 days before a boundary and is received 1 minute to 2 days
    after it, so it is at least a day late and sits in a later file. Returns the new received
    times and the indices of the late events.
    """
    received = events.received_ms.copy()
    chosen: list[np.ndarray] = []
    per_boundary = np.full(len(boundaries), n_late // len(boundaries))
    per_boundary[: n_late % len(boundaries)] += 1
    for boundary, count in zip(boundaries.tolist(), per_boundary.tolist(), strict=True):
        pool = np.flatnonzero(
            (events.time_ms >= boundary - 3 * cfg.DAY_MS)
            & (events.time_ms <= boundary - cfg.DAY_MS)
            & (events.received_ms < boundary)
        )
        take = rng.choice(pool, size=min(count, len(pool)), replace=False)
        room = max(cfg.MINUTE_MS + 1, min(2 * cfg.DAY_MS, as_of_ms - boundary))
        received[take] = boundary + rng.integers(cfg.MINUTE_MS, room, size=len(take))
        chosen.append(take)
    late = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return received, late


def plan_lines(
    events: Events,
    counts: BadInputCounts,
    boundaries: np.ndarray,
    as_of_ms: int,
    rng: np.random.Generator,
) -> LinePlan:
    """Lay out valid lines, duplicates and defective copies, sorted by arrival time."""
    n_valid = events.n
    parts: list[dict[str, np.ndarray]] = [
        {
            "source": np.arange(n_valid, dtype=np.int64),
            "defect": np.full(n_valid, VALID, dtype=np.int8),
            "received_ms": events.received_ms,
            "key_ms": events.received_ms,
        }
    ]
    dup, dup_key = _duplicates(events, counts.duplicate_event_ids, boundaries, as_of_ms, rng)
    parts.append(
        {
            "source": dup,
            "defect": np.full(len(dup), DUPLICATE, dtype=np.int8),
            "received_ms": events.received_ms[dup],
            "key_ms": dup_key,
        }
    )
    # Malformed lines must land in a JSONL file, i.e. before the last boundary.
    jsonl_ok = np.flatnonzero(events.received_ms < boundaries[-1] - cfg.HOUR_MS)
    defects = [(MALFORMED, counts.malformed_json, jsonl_ok)]
    defects += [(DEFECT_OF_MISSING[f], c, None) for f, c in counts.missing.items()]
    defects.append((BAD_TS, counts.bad_timestamp, None))
    for defect, count, pool in defects:
        donors = rng.choice(pool if pool is not None else n_valid, size=count, replace=False)
        arrival = events.received_ms[donors] + rng.integers(0, 60_000, size=count)
        arrival = np.minimum(arrival, as_of_ms)
        parts.append(
            {
                "source": donors.astype(np.int64),
                "defect": np.full(count, defect, dtype=np.int8),
                "received_ms": arrival,
                "key_ms": arrival,
            }
        )
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return _finish_plan(merged, n_valid, boundaries, rng)


def _duplicates(
    events: Events, count: int, boundaries: np.ndarray, as_of_ms: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Events to re-deliver and when: a quarter replayed across a file boundary, the rest
    retried 30 seconds to 2 days later. Returns event indices and arrival times."""
    cross = min(count, max(1, count // 4))
    sources: list[np.ndarray] = []
    arrivals: list[np.ndarray] = []
    per_boundary = np.full(len(boundaries), cross // len(boundaries))
    per_boundary[: cross % len(boundaries)] += 1
    for boundary, n in zip(boundaries.tolist(), per_boundary.tolist(), strict=True):
        pool = np.flatnonzero(
            (events.received_ms >= boundary - 2 * cfg.DAY_MS) & (events.received_ms < boundary)
        )
        take = rng.choice(pool, size=min(n, len(pool)), replace=False)
        room = max(cfg.MINUTE_MS + 1, min(cfg.DAY_MS, as_of_ms - boundary))
        sources.append(take)
        arrivals.append(boundary + rng.integers(cfg.MINUTE_MS, room, size=len(take)))
    chosen = np.concatenate(sources)
    rest = count - len(chosen)
    free = np.setdiff1d(np.arange(events.n), chosen, assume_unique=True)
    retried = rng.choice(free, size=rest, replace=False)
    retry_at = events.received_ms[retried] + rng.integers(30_000, 2 * cfg.DAY_MS, size=rest)
    return (
        np.concatenate([chosen, retried]).astype(np.int64),
        np.minimum(np.concatenate([*arrivals, retry_at]), as_of_ms),
    )


def _finish_plan(
    merged: dict[str, np.ndarray], n_valid: int, boundaries: np.ndarray, rng: np.random.Generator
) -> LinePlan:
    n = len(merged["source"])
    copies = merged["defect"] >= MALFORMED
    uid = merged["source"].copy()
    uid[copies] = n_valid + np.arange(int(copies.sum()))
    variant = np.zeros(n, dtype=np.int32)
    bad_ts = merged["defect"] == BAD_TS
    variant[bad_ts] = np.arange(int(bad_ts.sum())) % len(cfg.BAD_TIMESTAMPS)
    malformed = merged["defect"] == MALFORMED
    variant[malformed] = rng.integers(250, 900, size=int(malformed.sum()))
    order = np.lexsort((np.arange(n), merged["key_ms"]))
    key = merged["key_ms"][order]
    return LinePlan(
        source=merged["source"][order],
        defect=merged["defect"][order],
        uid=uid[order],
        received_ms=merged["received_ms"][order],
        key_ms=key,
        variant=variant[order],
        file_index=np.searchsorted(boundaries, key, side="right").astype(np.int32),
        n_files=len(boundaries) + 1,
    )


# --- columns ---------------------------------------------------------------------------------

JsonKind = Literal["json", "quoted", "raw", "number"]


class Lookup:
    """A column stored as indices into a table of values, with pre-rendered JSON fragments."""

    def __init__(
        self, name: str, values: Sequence[object], kind: JsonKind, arrow_type: pa.DataType
    ) -> None:
        self.name = name
        self.values = pa.array(list(values), type=arrow_type)
        self._raw = values
        self._kind = kind
        self._fragments: pa.Array | None = None

    @property
    def fragments(self) -> pa.Array:
        """``,"name":<value>`` for every table entry (built on first use)."""
        if self._fragments is None:
            head = f',"{self.name}":'
            if self._kind == "json":
                rendered = [head + json.dumps(v) for v in self._raw]
            elif self._kind == "quoted":
                rendered = [f'{head}"{v}"' for v in self._raw]
            else:
                rendered = [f"{head}{v}" for v in self._raw]
            self._fragments = pa.array(rendered, type=pa.string())
        return self._fragments


def _indices(index: np.ndarray) -> pa.Array:
    index = np.asarray(index, dtype=np.int32)
    return pa.array(index, mask=index < 0)


@dataclass(frozen=True)
class Column:
    """One column of one file: either a lookup with indices, or plain strings."""

    name: str
    lookup: Lookup | None = None
    index: np.ndarray | None = None
    plain: pa.Array | None = None

    def arrow(self) -> pa.Array:
        """Column values (nulls where the field is absent)."""
        if self.lookup is not None:
            return self.lookup.values.take(_indices(self.index))
        assert self.plain is not None
        return self.plain

    def fragments(self) -> pa.Array:
        """JSON fragments (null where the field is absent)."""
        if self.lookup is not None:
            return self.lookup.fragments.take(_indices(self.index))
        assert self.plain is not None
        return pc.binary_join_element_wise(f',"{self.name}":"', self.plain, '"', "")


COLUMN_ORDER = (
    "event_id",
    "event_type",
    "occurred_at",
    "received_at",
    "anonymous_id",
    "user_id",
    "page_url",
    "page_type",
    "referrer",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "product_id",
    "category",
    "price",
    "quantity",
    "order_id",
    "revenue",
    "currency",
    "device_type",
    "user_agent",
    "ip",
    "properties",
    "experiment_id",
    "experiment_variant",
)


class LineBuilder:
    """Builds the columns of any slice of a line plan from the generated world."""

    def __init__(
        self,
        events: Events,
        sess: Sessions,
        pop: Population,
        catalog: Catalog,
        crm: Crm,
        id_salt: int,
        session_variant: np.ndarray | None = None,
    ) -> None:
        self.events, self.sess, self.pop, self.crm = events, sess, pop, crm
        # index into sample_data.experiments.VARIANTS per session, -1 none
        self.session_variant = (
            np.full(sess.n, -1, dtype=np.int8) if session_variant is None else session_variant
        )
        self.catalog = catalog
        self.id_salt = id_salt
        self.lookups = self._lookups()
        self.entry_index = self._entry_indices()

    def _lookups(self) -> dict[str, Lookup]:
        pop, cat, crm = self.pop, self.catalog, self.crm
        s = pa.string()
        return {
            "event_type": Lookup("event_type", cfg.EVENT_TYPES, "quoted", s),
            "tz": Lookup("tz", cfg.TZ_SUFFIXES, "quoted", s),
            "anonymous_id": Lookup("anonymous_id", pop.device_anonymous_id, "quoted", s),
            "user_id": Lookup("user_id", crm.customer_id, "quoted", s),
            "page_url": Lookup("page_url", cat.page_urls, "json", s),
            "page_type": Lookup("page_type", cat.page_type_names, "quoted", s),
            **{
                name: Lookup(name, values, "json", s)
                for name, values in self._entry_values().items()
            },
            "product_id": Lookup("product_id", cat.product_ids, "quoted", s),
            "category": Lookup("category", [c for c, _ in cfg.CATEGORIES], "quoted", s),
            "price": Lookup("price", cat.product_price.tolist(), "number", pa.float64()),
            "quantity": Lookup("quantity", [1, 2, 3], "number", pa.int64()),
            "order_id": Lookup("order_id", crm.orders.order_id, "quoted", s),
            "revenue": Lookup("revenue", crm.orders.amount.tolist(), "number", pa.float64()),
            "currency": Lookup("currency", cfg.CURRENCIES, "quoted", s),
            "device_type": Lookup("device_type", cfg.DEVICE_TYPES, "quoted", s),
            "user_agent": Lookup("user_agent", pop.user_agents, "json", s),
            "ip": Lookup("ip", pop.device_ip, "quoted", s),
            "properties": Lookup("properties", cat.properties, "raw", s),
            "experiment_id": Lookup("experiment_id", cfg.EXPERIMENTS, "quoted", s),
            "experiment_variant": Lookup("experiment_variant", VARIANTS, "quoted", s),
        }

    @staticmethod
    def _entry_values() -> dict[str, list[str]]:
        names = ("referrer", "utm_source", "utm_medium", "utm_campaign")
        return {
            name: sorted({src[i] for src in cfg.ENTRY_SOURCES if src[i] is not None})
            for i, name in enumerate(names)
        }

    def _entry_indices(self) -> dict[str, np.ndarray]:
        out = {}
        for i, (name, values) in enumerate(self._entry_values().items()):
            position = {v: k for k, v in enumerate(values)}
            out[name] = np.array(
                [-1 if src[i] is None else position[src[i]] for src in cfg.ENTRY_SOURCES],
                dtype=np.int32,
            )
        return out

    def columns(self, plan: LinePlan, rows: slice) -> list[Column]:
        """All columns, in ``COLUMN_ORDER``, for the plan rows in ``rows``."""
        ev, sess, pop, crm = self.events, self.sess, self.pop, self.crm
        src = plan.source[rows]
        defect = plan.defect[rows]
        session = ev.session[src]
        etype = ev.etype[src]
        device = sess.device[session]
        on_device = etype != cfg.EMAIL_OPEN
        no_identity = defect == NO_IDENTITY
        product = ev.product[src]
        order = crm.orders.event_order[src]
        page = ev.page[src]
        entry = sess.entry[session]
        is_entry = ev.is_entry[src]

        def where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
            return np.where(mask, values, -1)

        def lookup(name: str, index: np.ndarray) -> Column:
            return Column(name, lookup=self.lookups[name], index=index)

        columns = [
            Column("event_id", plain=self._event_ids(plan, rows, defect)),
            lookup("event_type", where(defect != NO_EVENT_TYPE, etype)),
            Column("occurred_at", plain=self._occurred(plan, rows, src, defect, device, on_device)),
            Column("received_at", plain=fixed_to_arrow(iso_utc(plan.received_ms[rows]))),
            lookup("anonymous_id", where(on_device & ~no_identity, device)),
            lookup("user_id", where(ev.has_user[src] & ~no_identity, sess.person[session])),
            lookup("page_url", page),
            lookup("page_type", where(page >= 0, self.catalog.page_type_of_page[page])),
        ]
        for name, table in self.entry_index.items():
            columns.append(lookup(name, where(is_entry, table[entry])))
        columns += [
            lookup("product_id", product),
            lookup("category", where(product >= 0, self.catalog.product_category[product])),
            lookup("price", product),
            lookup(
                "quantity",
                where(
                    np.isin(etype, (cfg.ADD_TO_CART, cfg.PURCHASE_EVENT)),
                    sess.quantity[session] - 1,
                ),
            ),
            lookup("order_id", order),
            lookup("revenue", order),
            lookup("currency", where(order >= 0, crm.orders.currency[order])),
            lookup("device_type", where(on_device, pop.device_type[device])),
            lookup("user_agent", where(on_device, pop.device_agent[device])),
            lookup("ip", where(on_device, device)),
            lookup("properties", ev.prop[src]),
            lookup("experiment_id", sess.experiment[session]),
            lookup("experiment_variant", self.session_variant[session]),
        ]
        assert tuple(c.name for c in columns) == COLUMN_ORDER
        return columns

    def _event_ids(self, plan: LinePlan, rows: slice, defect: np.ndarray) -> pa.Array:
        ids = fixed_to_arrow(uuid_strings(plan.uid[rows].astype(np.uint64), self.id_salt))
        missing = defect == NO_EVENT_ID
        if missing.any():
            ids = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), ids)
        return ids

    def _occurred(
        self,
        plan: LinePlan,
        rows: slice,
        src: np.ndarray,
        defect: np.ndarray,
        device: np.ndarray,
        on_device: np.ndarray,
    ) -> pa.Array:
        """occurred_at in the device's clock offset (same instant), or the injected defect."""
        tz = np.where(on_device, self.pop.device_tz[device], 0)
        offset_ms = np.array(cfg.TZ_OFFSET_MINUTES, dtype=np.int64)[tz] * cfg.MINUTE_MS
        body = fixed_to_arrow(iso_millis(self.events.time_ms[src] + offset_ms))
        values = pc.binary_join_element_wise(body, self.lookups["tz"].values.take(tz), "")
        bad = defect == BAD_TS
        if bad.any():
            texts = [cfg.BAD_TIMESTAMPS[v] for v in plan.variant[rows][bad].tolist()]
            values = pc.replace_with_mask(values, pa.array(bad), pa.array(texts, pa.string()))
        missing = defect == NO_OCCURRED_AT
        if missing.any():
            values = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), values)
        return values


# --- writers ---------------------------------------------------------------------------------


def render_jsonl(
    columns: list[Column], malformed: np.ndarray, cut_permille: np.ndarray
) -> pa.Array:
    """Render one JSON object per line; malformed rows are cut short (no closing brace)."""
    body = pc.binary_join_element_wise(
        *[c.fragments() for c in columns], "", null_handling="replace", null_replacement=""
    )
    body = pc.replace_substring(body, pattern=",", replacement="{", max_replacements=1)
    lines = pc.binary_join_element_wise(body, "}\n", "")
    if malformed.any():
        full = lines.filter(pa.array(malformed)).to_pylist()
        cut = [
            text[: max(2, len(text) * permille // 1000)] + "\n"
            for text, permille in zip(full, cut_permille[malformed].tolist(), strict=True)
        ]
        lines = pc.replace_with_mask(lines, pa.array(malformed), pa.array(cut, pa.string()))
    return lines


def write_buffer(path: Path, lines: pa.Array) -> None:
    """Write the concatenated bytes of a string array (each element ends with a newline)."""
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    start, end = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
    with path.open("wb") as handle:
        handle.write(memoryview(lines.buffers()[2])[start:end])


def write_parquet(path: Path, columns: list[Column]) -> None:
    """Write the same columns as a Parquet file (properties as a JSON string column)."""
    table = pa.table({c.name: c.arrow() for c in columns})
    pq.write_table(table, path, compression="zstd")


def _defect_counts(defect: np.ndarray) -> dict[str, int]:
    names = {
        DUPLICATE: "duplicate_event_ids",
        MALFORMED: "malformed_json",
        NO_EVENT_ID: "missing_event_id",
        NO_EVENT_TYPE: "missing_event_type",
        NO_OCCURRED_AT: "missing_occurred_at",
        NO_IDENTITY: "missing_identity",
        BAD_TS: "bad_timestamp",
    }
    counts = np.bincount(defect, minlength=len(names) + 1)
    return {name: int(counts[code]) for code, name in names.items()}


def write_landing(landing_dir: Path, plan: LinePlan, builder: LineBuilder) -> list[FileInfo]:
    """Write every file of the plan: JSONL files, then the last one as Parquet."""
    landing_dir.mkdir(parents=True, exist_ok=True)
    bounds = np.searchsorted(plan.file_index, np.arange(plan.n_files + 1), side="left")
    infos: list[FileInfo] = []
    for f in range(plan.n_files):
        rows = slice(int(bounds[f]), int(bounds[f + 1]))
        first_day = plan.key_ms[rows][:1].astype("datetime64[ms]").astype("datetime64[D]")
        day = str(first_day[0]) if len(first_day) else "empty"
        is_last = f == plan.n_files - 1
        suffix = "parquet" if is_last else "jsonl"
        path = landing_dir / f"events-{day}-{f + 1:04d}.{suffix}"
        columns = builder.columns(plan, rows)
        defect = plan.defect[rows]
        if is_last:
            if np.any(defect == MALFORMED):
                raise RuntimeError("a malformed line was planned into the Parquet file")
            write_parquet(path, columns)
        else:
            malformed = defect == MALFORMED
            write_buffer(path, render_jsonl(columns, malformed, plan.variant[rows]))
        infos.append(FileInfo(path, suffix, rows.stop - rows.start, _defect_counts(defect)))
        log.info("wrote %s (%d lines)", path.name, rows.stop - rows.start)
    return infos
