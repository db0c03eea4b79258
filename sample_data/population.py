"""Persons and their devices: archetypes, activity windows, identities and consents.

A person is one human (or bot) behind the events. Known persons are CRM customers; offline
buyers are customers without any web activity. Each web person owns 1-3 devices, and each
device has its own anonymous id, user agent, ip and clock offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sample_data import config as cfg
from sample_data.formats import uuid_strings

ANON_ID_SALT = 0xA11CE
_PURPOSES = len(cfg.CONSENT_PURPOSES)


@dataclass(frozen=True)
class Population:
    """Per-person and per-device arrays (persons indexed 0..P-1, devices 0..D-1)."""

    archetype: np.ndarray  # int8
    known: np.ndarray  # bool: CRM customer
    window_start_ms: np.ndarray  # int64 epoch ms
    window_end_ms: np.ndarray  # int64 epoch ms
    country: np.ndarray  # int8 index into cfg.COUNTRIES
    consent: np.ndarray  # bool (P, 3): analytics, personalization, marketing
    device_start: np.ndarray  # int32 first device index of each person
    device_count: np.ndarray  # int8
    device_person: np.ndarray  # int32 per device
    device_type: np.ndarray  # int8 index into cfg.DEVICE_TYPES
    device_agent: np.ndarray  # int16 index into user_agents
    device_tz: np.ndarray  # int8 index into cfg.TZ_SUFFIXES
    device_ip: list[str]
    device_anonymous_id: list[str]
    user_agents: list[str]

    @property
    def n_persons(self) -> int:
        """Number of persons, web and offline."""
        return len(self.archetype)

    @property
    def n_devices(self) -> int:
        """Number of devices."""
        return len(self.device_person)


def archetype_counts(n_web_persons: int) -> np.ndarray:
    """Persons per web archetype: shares of ``n_web_persons`` (largest remainder), min 3 each."""
    web = [a for a in range(len(cfg.ARCHETYPES)) if a in cfg.PROFILES]
    shares = np.array([cfg.PROFILES[a].share for a in web])
    raw = shares / shares.sum() * n_web_persons
    counts = np.floor(raw).astype(np.int64)
    remainder_order = np.argsort(-(raw - counts), kind="stable")
    counts[remainder_order[: n_web_persons - counts.sum()]] += 1
    return np.maximum(counts, cfg.MIN_PERSONS_PER_ARCHETYPE)


def _archetypes(n_web_persons: int, rng: np.random.Generator) -> np.ndarray:
    counts = archetype_counts(n_web_persons)
    n_offline = max(
        cfg.MIN_PERSONS_PER_ARCHETYPE, round(n_web_persons * cfg.OFFLINE_CUSTOMER_SHARE)
    )
    archetype = np.concatenate(
        [
            np.repeat(np.arange(len(counts), dtype=np.int8), counts),
            np.full(n_offline, cfg.OFFLINE_BUYER, np.int8),
        ]
    )
    return archetype[rng.permutation(len(archetype))]


def _profile_array(archetype: np.ndarray, attribute: str, default: float = 0.0) -> np.ndarray:
    table = np.array(
        [
            getattr(cfg.PROFILES[a], attribute) if a in cfg.PROFILES else default
            for a in range(len(cfg.ARCHETYPES))
        ]
    )
    return table[archetype]


def _windows(
    archetype: np.ndarray, as_of_ms: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Activity windows: start/end days before as_of drawn from each archetype's ranges."""
    start_lo = _profile_array(archetype, "start_days", (0, 0))
    start_lo, start_hi = start_lo[:, 0], start_lo[:, 1]
    end_range = _profile_array(archetype, "end_days", (0, 0))
    start_days = rng.uniform(start_lo, start_hi)
    end_days = rng.uniform(end_range[:, 0], end_range[:, 1])
    bots = archetype == cfg.BOT
    end_days[bots] = np.maximum(
        start_days[bots] - rng.uniform(*cfg.BOT_ACTIVE_DAYS, size=bots.sum()), 0.0
    )
    start = as_of_ms - (start_days * cfg.DAY_MS).astype(np.int64)
    # Sessions start at least an hour before the window end so none runs past as_of.
    end = as_of_ms - (end_days * cfg.DAY_MS).astype(np.int64) - cfg.HOUR_MS
    offline = archetype == cfg.OFFLINE_BUYER
    start[offline] = as_of_ms - 3 * 365 * cfg.DAY_MS
    end[offline] = as_of_ms - cfg.DAY_MS
    return start, end


def _consents(archetype: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = len(archetype)
    marketing = _profile_array(archetype, "marketing_consent", 0.6)
    probs = np.column_stack(
        [np.full(n, cfg.CONSENT_GRANT_PROBS[0]), np.full(n, cfg.CONSENT_GRANT_PROBS[1]), marketing]
    )
    return rng.random((n, _PURPOSES)) < probs


def _ip_strings(first_octets: np.ndarray, rest: np.ndarray) -> list[str]:
    """Dotted quads from a first octet and a 24-bit remainder (last octet kept in 1..254)."""
    b2, b3, b4 = (rest >> 16) & 255, (rest >> 8) & 255, rest & 255
    b4 = 1 + b4 % 254
    return [
        f"{a}.{b}.{c}.{d}"
        for a, b, c, d in zip(
            first_octets.tolist(), b2.tolist(), b3.tolist(), b4.tolist(), strict=True
        )
    ]


def _devices(archetype: np.ndarray, rng: np.random.Generator) -> dict[str, object]:
    """Devices per person (bots one, offline buyers none) with type, agent, clock and ip."""
    n = len(archetype)
    count = (
        rng.choice(len(cfg.DEVICES_PER_PERSON_PROBS), size=n, p=cfg.DEVICES_PER_PERSON_PROBS) + 1
    )
    count[archetype == cfg.BOT] = 1
    count[archetype == cfg.OFFLINE_BUYER] = 0
    start = (np.cumsum(count) - count).astype(np.int32)
    n_devices = int(count.sum())
    person = np.repeat(np.arange(n, dtype=np.int32), count)
    is_bot = archetype[person] == cfg.BOT

    agents = [ua for kind in cfg.DEVICE_TYPES for ua in cfg.USER_AGENTS[kind]]
    agent_offset = np.cumsum([0] + [len(cfg.USER_AGENTS[k]) for k in cfg.DEVICE_TYPES])
    bot_agent0 = len(agents)
    agents += [ua for ua, _ in cfg.BOT_AGENTS]

    dtype = rng.choice(len(cfg.DEVICE_TYPES), size=n_devices, p=cfg.DEVICE_TYPE_PROBS).astype(
        np.int8
    )
    dtype[is_bot] = 0
    sizes = np.diff(agent_offset)[dtype]
    agent = (agent_offset[dtype] + (rng.random(n_devices) * sizes).astype(np.int64)).astype(
        np.int16
    )
    bot_kind = rng.integers(0, len(cfg.BOT_AGENTS), size=n_devices)
    agent[is_bot] = (bot_agent0 + bot_kind[is_bot]).astype(np.int16)
    tz = rng.choice(len(cfg.TZ_SUFFIXES), size=n_devices, p=cfg.TZ_PROBS).astype(np.int8)
    tz[is_bot] = 0

    octets = np.array(cfg.PUBLIC_FIRST_OCTETS, dtype=np.int64)
    codes = rng.choice(len(octets) << 24, size=n_devices, replace=False)
    first, rest = octets[codes >> 24], codes & 0xFFFFFF
    bot_prefix = np.array([p for _, p in cfg.BOT_AGENTS], dtype=np.int64)[bot_kind]
    first[is_bot] = bot_prefix[is_bot, 0]
    rest[is_bot] = (bot_prefix[is_bot, 1] << 16) | (rest[is_bot] & 0xFFFF)
    anon = uuid_strings(
        np.arange(n_devices, dtype=np.uint64), ANON_ID_SALT ^ int(rng.integers(1 << 40))
    )
    return {
        "device_start": start,
        "device_count": count.astype(np.int8),
        "device_person": person,
        "device_type": dtype,
        "device_agent": agent,
        "device_tz": tz,
        "device_ip": _ip_strings(first, rest),
        "device_anonymous_id": anon.astype("U36").tolist(),
        "user_agents": agents,
    }


def build_population(n_web_persons: int, as_of_ms: int, rng: np.random.Generator) -> Population:
    """Draw all persons, their windows, identities, consents and devices."""
    archetype = _archetypes(n_web_persons, rng)
    known = rng.random(len(archetype)) < _profile_array(archetype, "known_share", 1.0)
    known[archetype == cfg.OFFLINE_BUYER] = True
    known[archetype == cfg.BOT] = False
    start, end = _windows(archetype, as_of_ms, rng)
    weights = np.array([c[3] for c in cfg.COUNTRIES])
    country = rng.choice(len(cfg.COUNTRIES), size=len(archetype), p=weights / weights.sum()).astype(
        np.int8
    )
    consent = _consents(archetype, rng)
    consent[~known] = False
    devices = _devices(archetype, rng)
    return Population(
        archetype=archetype,
        known=known,
        window_start_ms=start,
        window_end_ms=end,
        country=country,
        consent=consent,
        **devices,  # type: ignore[arg-type]
    )
