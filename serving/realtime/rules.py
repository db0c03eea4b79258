"""The in-session rules and what the engine needs to know about events, read from the dbt
project (the one place of each fact): the rules from ``seeds/realtime_segment_rules.csv``, the
roles of event types from ``seeds/event_taxonomy.csv`` (same lookup as int_events_stitched: the
row of event type and page type, else of the event type alone), the session inactivity timeout
and the content page types from ``dbt_project.yml`` vars."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import yaml

RULE_KINDS = ("cart_abandoned", "session_count_above", "same_item_in_window")
RULES_SEED = "realtime_segment_rules.csv"
TAXONOMY_SEED = "event_taxonomy.csv"


@dataclass(frozen=True)
class Rule:
    segment_key: str
    kind: str
    event_role: str
    page_types: tuple[str, ...]
    clearing_roles: tuple[str, ...]
    threshold: int
    window_minutes: int | None
    trigger: str | None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    roles: dict[tuple[str, str | None], str]  # (event_type, page_type or None) -> role
    session_timeout_minutes: int
    content_page_types: tuple[str, ...]

    def role(self, event_type: str | None, page_type: str | None) -> str | None:
        if not event_type:
            return None
        kind = event_type.strip().lower()
        page = page_type.strip().lower() if page_type else None
        return self.roles.get((kind, page)) or self.roles.get((kind, None))

    @property
    def longest_inactivity_minutes(self) -> int:
        windows = [r.window_minutes or 0 for r in self.rules if r.kind == "cart_abandoned"]
        return max([self.session_timeout_minutes, *windows])


def _split(text: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in (text or "").split(";") if p.strip())


def read_rules(path: Path) -> tuple[Rule, ...]:
    rules = []
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["rule_kind"] not in RULE_KINDS:
                raise ValueError(f"{path}: {row['segment_key']}: unknown rule_kind")
            rules.append(
                Rule(
                    segment_key=row["segment_key"],
                    kind=row["rule_kind"],
                    event_role=row["event_role"].strip(),
                    page_types=_split(row["page_types"]),
                    clearing_roles=_split(row["clearing_roles"]),
                    threshold=int(row["threshold"]),
                    window_minutes=int(row["window_minutes"]) if row["window_minutes"] else None,
                    trigger=row["trigger"].strip() or None,
                )
            )
    return tuple(rules)


def load_rule_set(dbt_project_dir: Path) -> RuleSet:
    seeds = dbt_project_dir / "seeds"
    roles: dict[tuple[str, str | None], str] = {}
    with (seeds / TAXONOMY_SEED).open(newline="") as handle:
        for row in csv.DictReader(handle):
            page = row["page_type"].strip().lower() or None
            roles[(row["event_type"].strip().lower(), page)] = row["role"]
    variables = yaml.safe_load((dbt_project_dir / "dbt_project.yml").read_text())["vars"]
    return RuleSet(
        rules=read_rules(seeds / RULES_SEED),
        roles=roles,
        session_timeout_minutes=int(variables["session_inactivity_timeout_minutes"]),
        content_page_types=tuple(variables["content_page_types"]),
    )
