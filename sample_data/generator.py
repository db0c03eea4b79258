"""Entry point: ``generate()`` builds the whole sample world and writes it to disk."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sample_data import config as cfg
from sample_data import taste as taste_model
from sample_data.behaviour import (
    Events,
    Sessions,
    draw_events,
    draw_sessions,
    scale_for,
    trim_to,
    with_received,
)
from sample_data.catalog import Catalog, build_catalog
from sample_data.crm import build_crm, write_sqlite
from sample_data.experiments import plant_experiments
from sample_data.landing import (
    BadInputCounts,
    LineBuilder,
    file_boundaries,
    make_late,
    plan_lines,
    write_landing,
)
from sample_data.population import Population, build_population
from sample_data.taste import Taste
from sample_data.truth import (
    person_key,
    person_rows,
    summary_document,
    write_persons,
    write_summary,
)

log = logging.getLogger(__name__)

MIN_EVENTS = 4_000
MAX_ATTEMPTS = 10
MAX_TRIM_SHARE = 0.15
OVERSHOOT = 1.04


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate()`` wrote. ``bad_input`` keys: malformed_json, missing_event_id,
    missing_event_type, missing_occurred_at, missing_identity, bad_timestamp,
    duplicate_event_ids."""

    out_dir: Path
    landing_dir: Path
    crm_path: Path
    crm_url: str
    truth_dir: Path
    total_lines: int
    valid_events: int
    bad_input: dict[str, int]
    late_events: int
    files: tuple[Path, ...]
    persons: int
    customers: int
    orders: int


def output_paths(out_dir: Path) -> tuple[Path, Path, Path]:
    """The three outputs inside ``out_dir``: landing dir, CRM file, truth dir."""
    return out_dir / "landing", out_dir / "crm.sqlite", out_dir / "truth"


def _check_outputs_absent(out_dir: Path) -> None:
    for path in output_paths(out_dir):
        if path.exists():
            raise FileExistsError(
                f"{path} already exists; remove it (or use the CLI's --force) before generating"
            )


def _draw_world(
    pop: Population, catalog: Catalog, taste: Taste, target: int, as_of_ms: int, seed: int
) -> tuple[Sessions, Events]:
    """Draw sessions and events until exactly ``target`` valid events can be kept.

    Activity is sized to overshoot the target slightly; the surplus is trimmed from casual
    sessions. A miss (too few events, or too many to trim) rescales and redraws, with a
    seed derived from the attempt number, so the result stays deterministic.
    """
    scale = scale_for(pop.archetype, target * OVERSHOOT)
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([seed, 2, attempt])
        sess = draw_sessions(pop, catalog, scale, rng)
        # planted taste (sample_data/taste.py) has its own random stream
        taste_rng = np.random.default_rng([seed, 5, attempt])
        sess = taste_model.apply_to_sessions(taste, sess, catalog, taste_rng)
        events = draw_events(sess, pop, catalog, rng)
        events = taste_model.apply_to_events(taste, events, sess, catalog, taste_rng)
        events = events.take(events.received_ms <= as_of_ms)
        excess = events.n - target
        log.info("attempt %d: %d events drawn for %d wanted", attempt + 1, events.n, target)
        if 0 <= excess <= MAX_TRIM_SHARE * target:
            trimmed = trim_to(events, sess, pop, target, rng)
            if trimmed is not None:
                return sess, trimmed
        scale *= OVERSHOOT * target / max(events.n, 1)
    raise RuntimeError(f"could not draw exactly {target} events in {MAX_ATTEMPTS} attempts")


def _n_files(n_events: int, files: int | None) -> int:
    if files is not None:
        if files < 2:
            raise ValueError("files must be at least 2 (JSONL files plus the last Parquet file)")
        return files
    return max(cfg.MIN_FILES, math.ceil(n_events / cfg.MAX_LINES_PER_FILE))


def _as_of_ms(as_of: datetime) -> int:
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return round(as_of.timestamp() * 1000)


def generate(
    out_dir: Path,
    n_events: int = 20_000,
    seed: int = 42,
    as_of: datetime = cfg.DEFAULT_AS_OF,
    files: int | None = None,
) -> GenerationSummary:
    """Generate landing files, a CRM SQLite database and the planted truth under ``out_dir``.

    ``n_events`` is the exact number of landed lines (valid events plus injected bad input).
    The same arguments always give byte-identical files. Refuses to overwrite earlier output.
    """
    if n_events < MIN_EVENTS:
        raise ValueError(f"n_events must be at least {MIN_EVENTS}")
    out_dir = Path(out_dir).resolve()
    _check_outputs_absent(out_dir)
    landing_dir, crm_path, truth_dir = output_paths(out_dir)
    as_of_ms = _as_of_ms(as_of)
    n_files = _n_files(n_events, files)
    counts = BadInputCounts.for_total(n_events)
    n_valid = n_events - counts.total

    n_web = max(cfg.MIN_WEB_PERSONS, round(n_events / cfg.EVENTS_PER_PERSON))
    world_rng = np.random.default_rng([seed, 1])
    pop = build_population(n_web, as_of_ms, world_rng)
    catalog = build_catalog(n_web, world_rng)
    log.info("population: %d persons, %d devices", pop.n_persons, pop.n_devices)
    taste = taste_model.build_taste(pop, catalog, np.random.default_rng([seed, 5]))
    sess, events = _draw_world(pop, catalog, taste, n_valid, as_of_ms, seed)
    log.info("drew %d sessions, kept %d valid events", sess.n, events.n)

    crm_rng = np.random.default_rng([seed, 3])
    crm = build_crm(events, sess, pop, catalog, as_of_ms, crm_rng)
    landing_rng = np.random.default_rng([seed, 4])
    boundaries = file_boundaries(events.received_ms, n_files)
    n_late = max(1, round(n_valid * cfg.LATE_SHARE))
    received, late = make_late(events, boundaries, n_late, as_of_ms, landing_rng)
    events = with_received(events, received)
    plan = plan_lines(events, counts, boundaries, as_of_ms, landing_rng)
    id_salt = int(landing_rng.integers(1 << 62))
    # issue 25: the planted experiments (own random stream; only experiment fields change)
    planted = plant_experiments(
        sess, events, pop.archetype == cfg.BOT, as_of_ms, np.random.default_rng([seed, 5])
    )
    builder = LineBuilder(
        events, planted.sessions, pop, catalog, crm, id_salt, planted.session_variant
    )
    infos = write_landing(landing_dir, plan, builder)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_sqlite(crm_path, crm, pop, as_of_ms, crm_rng)
    log.info("wrote %s (%d orders)", crm_path.name, len(crm.orders.order_id))
    truth_dir.mkdir(parents=True, exist_ok=True)
    write_persons(truth_dir / "persons.csv", person_rows(events, sess, pop, crm, as_of_ms))
    document = summary_document(
        seed=seed,
        as_of_iso=as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        n_events=n_events,
        counts=counts,
        n_valid=n_valid,
        n_late=len(late),
        infos=infos,
        pop=pop,
        crm=crm,
    )
    document["experiments"] = planted.truth
    document["taste"] = taste_model.summary(taste, catalog, as_of_ms)
    taste_model.write_truth(
        truth_dir, taste, catalog, [person_key(p) for p in range(pop.n_persons)]
    )
    write_summary(truth_dir / "summary.json", document)
    return GenerationSummary(
        out_dir=out_dir,
        landing_dir=landing_dir,
        crm_path=crm_path,
        crm_url=f"sqlite:///{crm_path}",
        truth_dir=truth_dir,
        total_lines=document["total_lines"],
        valid_events=n_valid,
        bad_input=counts.as_flat_dict(),
        late_events=len(late),
        files=tuple(i.path for i in infos),
        persons=pop.n_persons,
        customers=int(pop.known.sum()),
        orders=len(crm.orders.order_id),
    )
