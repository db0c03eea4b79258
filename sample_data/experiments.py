"""Planted experiments: who saw which variant of the sample's three client-side experiments.

The experiments are those of the seed ``dbt_project/seeds/experiments.csv`` with
exposure_source ``events``; all three share one mutual-exclusion layer (``web``), split
50 / 25 / 25 as the seed's layer ranges say. Every non-bot person with an event at or after
``START`` is in exactly one of them; their first event from then on is the first exposure, and
every event of that session and of their later sessions carries ``experiment_id`` and
``experiment_variant`` (what a client-side SDK reports). The warehouse's own hash assignment
cannot be used here (it needs the pseudonymization key), so the generator draws the variants.

Known true effects (recorded in truth/summary.json under ``experiments``):

- ``exp_checkout_v2`` (real lift): the odds of being in treatment are ``1 + TRUE_LIFT`` times
  higher for persons who buy after exposure, so the expected conversion (a web purchase after
  the first exposure) of treatment is ``1 + TRUE_LIFT`` times that of control;
- ``exp_reco_carousel`` (null): variants drawn 50 / 50 independently of everything;
- ``exp_free_shipping_banner`` (sample-ratio mismatch): configured 50 / 50, drawn 40 / 60.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from sample_data import config as cfg
from sample_data.behaviour import Events, Sessions

START = datetime(2026, 8, 1, tzinfo=UTC)
VARIANTS = ("control", "treatment")
LIFT, NULL, SRM = "exp_checkout_v2", "exp_reco_carousel", "exp_free_shipping_banner"
# the seed's layer shares of the three experiments (layer web: 0-50, 50-75, 75-100)
LAYER_SHARES = {LIFT: 0.50, NULL: 0.25, SRM: 0.25}
TRUE_LIFT = 1.0  # relative lift of conversion in exp_checkout_v2
SRM_TREATMENT_SHARE = 0.7  # drawn share of treatment in exp_free_shipping_banner (configured 0.5)


@dataclass(frozen=True)
class PlantedExperiments:
    sessions: Sessions  # with ``experiment`` replaced (index into cfg.EXPERIMENTS, -1 none)
    session_variant: np.ndarray  # int8 index into VARIANTS, -1 none
    truth: dict[str, Any]


def plant_experiments(
    sess: Sessions, events: Events, is_bot: np.ndarray, as_of_ms: int, rng: np.random.Generator
) -> PlantedExperiments:
    """Assign persons to the planted experiments and mark their sessions (see module doc)."""
    start_ms = round(START.timestamp() * 1000)
    n_persons = len(is_bot)
    person_of_event = sess.person[events.session]
    in_window = (
        (events.time_ms >= start_ms) & (events.time_ms <= as_of_ms) & ~is_bot[person_of_event]
    )
    never = np.iinfo(np.int64).max
    first_ms = np.full(n_persons, never, dtype=np.int64)
    np.minimum.at(first_ms, person_of_event[in_window], events.time_ms[in_window])
    first_session = np.full(n_persons, np.iinfo(np.int32).max, dtype=np.int64)
    at_first = in_window & (events.time_ms == first_ms[person_of_event])
    np.minimum.at(first_session, person_of_event[at_first], events.session[at_first])

    exposed = np.flatnonzero(first_ms < never)
    keys = tuple(LAYER_SHARES)
    slot = rng.choice(len(keys), size=len(exposed), p=list(LAYER_SHARES.values()))
    u = rng.random(len(exposed))

    bought_after = (events.etype == cfg.PURCHASE_EVENT) & (
        events.time_ms >= first_ms[person_of_event]
    )
    converted = np.zeros(n_persons, dtype=bool)
    converted[person_of_event[bought_after]] = True

    experiment_of_person = np.full(n_persons, -1, dtype=np.int8)
    variant_of_person = np.full(n_persons, -1, dtype=np.int8)
    truth: dict[str, Any] = {}
    for k, key in enumerate(keys):
        members = exposed[slot == k]
        draws = u[slot == k]
        if key == LIFT:
            variant = _lifted_variants(converted[members], rng)
        else:
            share = SRM_TREATMENT_SHARE if key == SRM else 0.5
            variant = (draws < share).astype(np.int8)
        experiment_of_person[members] = cfg.EXPERIMENTS.index(key)
        variant_of_person[members] = variant
        conv = converted[members]
        rates = [float(conv[variant == v].mean()) if (variant == v).any() else None for v in (0, 1)]
        truth[key] = {
            "layer": "web",
            "exposed_persons": len(members),
            "persons_by_variant": {
                name: int((variant == v).sum()) for v, name in enumerate(VARIANTS)
            },
            "configured_treatment_share": 0.5,
            "drawn_treatment_share": SRM_TREATMENT_SHARE if key == SRM else 0.5,
            "true_relative_lift_conversion": TRUE_LIFT if key == LIFT else 0.0,
            "web_conversion_after_exposure_by_variant": dict(zip(VARIANTS, rates, strict=True)),
            "expected": {
                LIFT: "conversion higher in treatment (significant)",
                NULL: "no difference in any metric",
                SRM: "sample-ratio mismatch: results blocked",
            }[key],
        }

    # every session from the person's first exposure on carries the experiment and variant
    person = sess.person
    from_exposure = np.arange(sess.n) >= first_session[person]
    experiment = np.where(from_exposure, experiment_of_person[person], -1).astype(np.int8)
    session_variant = np.where(from_exposure, variant_of_person[person], -1).astype(np.int8)
    return PlantedExperiments(
        sessions=dataclasses.replace(sess, experiment=experiment),
        session_variant=session_variant,
        truth={"start": START.isoformat().replace("+00:00", "Z"), "experiments": truth},
    )


def _lifted_variants(converted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Treatment for exactly the share of buyers and of non-buyers that makes treatment's
    conversion ``1 + TRUE_LIFT`` times control's with half of the persons in each variant."""
    rate = float(converted.mean()) if len(converted) else 0.0
    odds = 1.0 + TRUE_LIFT
    share_of_buyers = odds / (1.0 + odds)
    share_of_others = (0.5 - rate * share_of_buyers) / (1.0 - rate) if rate < 1 else 0.5
    variant = np.zeros(len(converted), dtype=np.int8)
    for group, share in ((converted, share_of_buyers), (~converted, share_of_others)):
        index = np.flatnonzero(group)
        chosen = rng.permutation(index)[: round(share * len(index))]
        variant[chosen] = 1
    return variant
