"""The in-session rule engine: pure functions on one person's state (a dict, stored as JSON).

Clock and lateness: everything runs on event time (the message's ``timestamp``, the warehouse's
occurred_at). The watermark is the latest event time seen minus the allowed lateness; an event
older than the watermark is too late: it changes no state (it is counted, and still reaches the
warehouse by the landing files). Events within the lateness are applied in any order: counts,
product-view windows and the cart (open when its latest add is later than its latest
checkout/purchase) do not depend on arrival order.

Sessions: a gap of at least the session inactivity timeout (dbt var) between two events starts a
new session, as in int_events_sessionized (its 24-hour session cap and midnight split are not
applied here). A session ends when an event comes after the gap, or when the watermark passes
the last event plus the timeout (the consumer's sweep).

State keys: ``s`` session start and ``l`` last event (epoch ms), ``c`` counts per rule, ``pv``
product view times per product, ``add`` / ``clr`` latest cart add and clearing event,
``seg`` held segments -> since (ms), ``ab`` the session already abandoned (ms of the session).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from serving.realtime.rules import Rule, RuleSet

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Event:
    message_id: str
    actor: str  # pseudonym of user_id, else of anonymous_id (int_events_stitched's identifier)
    at_ms: int
    role: str | None
    page_type: str | None
    product_id: str | None


@dataclass
class Outcome:
    entered: list[tuple[str, int]] = field(default_factory=list)  # (segment, session start ms)
    triggers: list[dict] = field(default_factory=list)
    late: bool = False


def to_ms(text: str) -> int | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return int(moment.timestamp() * 1000)


def _enter(state: dict, rule: Rule, since: int, outcome: Outcome) -> None:
    held = state.setdefault("seg", {})
    if rule.segment_key not in held:
        held[rule.segment_key] = since
        outcome.entered.append((rule.segment_key, state["s"]))


def _cart_rules(rules: RuleSet) -> list[Rule]:
    return [r for r in rules.rules if r.kind == "cart_abandoned"]


def advance(state: dict, clock_ms: int, rules: RuleSet, actor: str, outcome: Outcome) -> None:
    """What the passing of time to ``clock_ms`` does: carts abandoned, the session closed."""
    if not state or state.get("closed"):
        return
    last = state["l"]
    for rule in _cart_rules(rules):
        window = (rule.window_minutes or rules.session_timeout_minutes) * MINUTE_MS
        cart_open = state.get("add") is not None and state["add"] > (state.get("clr") or -1)
        if cart_open and state.get("ab") != state["s"] and clock_ms >= last + window:
            state["ab"] = state["s"]
            _enter(state, rule, last + window, outcome)
            if rule.trigger:
                outcome.triggers.append(
                    {
                        "trigger": rule.trigger,
                        "segment": rule.segment_key,
                        "person": actor,
                        "episode": str(state["s"]),
                        "at_ms": last + window,
                    }
                )
    if clock_ms >= last + rules.session_timeout_minutes * MINUTE_MS:
        abandoned = {r.segment_key for r in _cart_rules(rules)} & set(state.get("seg", {}))
        keep = {k: v for k, v in state.get("seg", {}).items() if k in abandoned}
        state.clear()
        state["seg"] = keep
        state["closed"] = True


def next_deadline(state: dict, rules: RuleSet) -> int | None:
    """When ``advance`` would next change this state (ms), None if never."""
    if not state or state.get("closed"):
        return None
    windows = [(r.window_minutes or rules.session_timeout_minutes) for r in _cart_rules(rules)] + [
        rules.session_timeout_minutes
    ]
    return state["l"] + min(windows) * MINUTE_MS


def apply(state: dict, event: Event, rules: RuleSet, watermark_ms: int) -> Outcome:
    """Apply one event to ``state`` (mutated). The caller checked idempotency."""
    outcome = Outcome()
    if event.at_ms < watermark_ms:
        outcome.late = True
        return outcome
    if state and not state.get("closed"):
        advance(state, event.at_ms, rules, event.actor, outcome)
    if state.get("closed") or not state.get("s"):
        held = state.get("seg", {})
        state.clear()
        state.update({"s": event.at_ms, "l": event.at_ms, "c": {}, "pv": {}, "seg": held})
    # a returning person is no longer abandoning: the abandoned-cart membership ends
    for rule in _cart_rules(rules):
        since = state["seg"].get(rule.segment_key)
        if since is not None and event.at_ms >= since:
            del state["seg"][rule.segment_key]
    if event.at_ms < state["s"]:  # before its session's start yet within the lateness
        state["s"] = event.at_ms
    state["l"] = max(state["l"], event.at_ms)
    for rule in rules.rules:
        if rule.kind == "cart_abandoned":
            if event.role == rule.event_role:
                state["add"] = max(state.get("add") or 0, event.at_ms)
            elif event.role in rule.clearing_roles:
                state["clr"] = max(state.get("clr") or 0, event.at_ms)
        elif rule.kind == "session_count_above":
            if event.role != rule.event_role:
                continue
            if rule.page_types and (event.page_type or "").lower() not in rule.page_types:
                continue
            counts = state.setdefault("c", {})
            counts[rule.segment_key] = counts.get(rule.segment_key, 0) + 1
            if counts[rule.segment_key] > rule.threshold:
                _enter(state, rule, event.at_ms, outcome)
        elif rule.kind == "same_item_in_window":
            if event.role != rule.event_role or not event.product_id:
                continue
            window = (rule.window_minutes or 0) * MINUTE_MS
            views = state.setdefault("pv", {}).setdefault(event.product_id, [])
            views.append(event.at_ms)
            views.sort()
            if any(
                sum(1 for t in views if start <= t <= start + window) >= rule.threshold
                for start in views
            ):
                _enter(state, rule, event.at_ms, outcome)
            horizon = state["l"] - window
            state["pv"][event.product_id] = [t for t in views if t >= horizon][-rule.threshold :]
    return outcome
