"""The planted truth: one row per person, and a summary of what was written."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from sample_data import config as cfg
from sample_data.behaviour import Events, Sessions
from sample_data.crm import Crm
from sample_data.landing import BadInputCounts, FileInfo
from sample_data.population import Population

PERSON_COLUMNS = (
    "person_key",
    "customer_id",
    "anonymous_ids",
    "archetype",
    "is_churned",
    "is_bot",
    "n_events",
    "n_sessions",
    "n_orders",
    "lifetime_spend",
)


def person_key(index: int) -> str:
    """Stable key of the person with the given index."""
    return f"P{index + 1:07d}"


def _anonymous_ids(events: Events, sess: Sessions, pop: Population) -> list[list[str]]:
    """Anonymous ids each person actually used in a valid event, in device order."""
    on_device = events.etype != cfg.EMAIL_OPEN
    used = np.bincount(sess.device[events.session[on_device]], minlength=pop.n_devices) > 0
    per_person: list[list[str]] = [[] for _ in range(pop.n_persons)]
    for device in np.flatnonzero(used).tolist():
        per_person[pop.device_person[device]].append(pop.device_anonymous_id[device])
    return per_person


def person_rows(
    events: Events, sess: Sessions, pop: Population, crm: Crm, as_of_ms: int
) -> list[tuple[Any, ...]]:
    """Truth rows; is_churned means 'had web events, none in the last 120 days' (not bots)."""
    person_of_event = sess.person[events.session]
    n_events = np.bincount(person_of_event, minlength=pop.n_persons)
    active_sessions = np.unique(events.session)
    n_sessions = np.bincount(sess.person[active_sessions], minlength=pop.n_persons)
    last_seen = np.zeros(pop.n_persons, dtype=np.int64)
    np.maximum.at(last_seen, person_of_event, events.time_ms)
    quiet_since = as_of_ms - cfg.CHURN_QUIET_DAYS * cfg.DAY_MS
    is_bot = pop.archetype == cfg.BOT
    churned = (n_events > 0) & (last_seen < quiet_since) & ~is_bot
    anon = _anonymous_ids(events, sess, pop)
    return [
        (
            person_key(p),
            crm.customer_id[p],
            "|".join(anon[p]),
            cfg.ARCHETYPES[pop.archetype[p]],
            "true" if churned[p] else "false",
            "true" if is_bot[p] else "false",
            int(n_events[p]),
            int(n_sessions[p]),
            int(crm.n_orders[p]),
            f"{crm.lifetime_spend[p]:.2f}",
        )
        for p in range(pop.n_persons)
    ]


def write_persons(path: Path, rows: list[tuple[Any, ...]]) -> None:
    """Write persons.csv (header, comma-separated, lowercase booleans)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PERSON_COLUMNS)
        writer.writerows(rows)


def summary_document(
    *,
    seed: int,
    as_of_iso: str,
    n_events: int,
    counts: BadInputCounts,
    n_valid: int,
    n_late: int,
    infos: list[FileInfo],
    pop: Population,
    crm: Crm,
) -> dict[str, Any]:
    """The content of truth/summary.json."""
    web_orders = int(np.sum(crm.orders.event_order >= 0))
    archetypes = np.bincount(pop.archetype, minlength=len(cfg.ARCHETYPES))
    return {
        "seed": seed,
        "as_of": as_of_iso,
        "n_events_requested": n_events,
        "total_lines": sum(i.lines for i in infos),
        "valid_distinct_events": n_valid,
        "late_events": n_late,
        "bad_input": {
            "malformed_json": counts.malformed_json,
            "missing_required": dict(counts.missing),
            "bad_timestamp": counts.bad_timestamp,
            "duplicate_event_ids": counts.duplicate_event_ids,
        },
        "files": [
            {"name": i.path.name, "format": i.format, "lines": i.lines, "bad_input": i.defects}
            for i in infos
        ],
        "persons": pop.n_persons,
        "archetypes": {name: int(archetypes[a]) for a, name in enumerate(cfg.ARCHETYPES)},
        "customers": int(pop.known.sum()),
        "orders": len(crm.orders.order_id),
        "web_orders": web_orders,
        "offline_orders": len(crm.orders.order_id) - web_orders,
    }


def write_summary(path: Path, document: dict[str, Any]) -> None:
    """Write summary.json (indented, stable key order)."""
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
