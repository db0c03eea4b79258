"""The nightly reconciliation: the in-session segment memberships SQL computes on the warehouse's
events agree with those the stream consumer computed (its ``history``).

The batch warehouse is the source of truth. The SQL below applies the same rules (the seed, the
taxonomy, the session timeout: ``rules.RuleSet``) to the events in raw.events that came through
the collector (landing files under ``collector/``), by the same identifier (user id, else
anonymous id; an alias's previous id), pseudonymized with the warehouse's macro. A membership
is (segment, identifier pseudonym, session start in epoch ms). Agreement rate: memberships both
found over memberships either found (Jaccard); 1.0 when both are empty.

Only what the stream could know is compared: sessions of events at or before the stream's
watermark, and a cart abandoned only when the watermark has passed its inactivity window.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import redis

from serving.realtime.consumer import HISTORY_SEPARATOR
from serving.realtime.rules import RuleSet
from serving.realtime.state import RealtimeKeys

COLLECTOR_FILES = "%/collector/%"


@dataclass(frozen=True)
class Reconciliation:
    agreement_rate: float
    both: int
    only_stream: int
    only_warehouse: int
    watermark_ms: int
    by_segment: dict[str, tuple[int, int, int]]  # segment -> (both, only stream, only warehouse)
    examples: list[str]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _list(values) -> str:
    return "[" + ", ".join(_literal(v) for v in values) + "]" if values else "[]::VARCHAR[]"


def warehouse_memberships(
    con: duckdb.DuckDBPyConnection, rules: RuleSet, watermark_ms: int
) -> set[tuple[str, str, int]]:
    """(segment, identifier pseudonym, session start ms) by SQL; needs the pseudonymization
    macro installed (``privacy.pseudonyms.install``)."""
    roles = ", ".join(
        f"({_literal(kind)}, {_literal(page) if page else 'NULL'}, {_literal(role)})"
        for (kind, page), role in rules.roles.items()
    )
    timeout_ms = rules.session_timeout_minutes * 60_000
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _rt_events AS
        WITH taxonomy(event_type, page_type, role) AS (VALUES {roles}),
        events AS (
            SELECT segwh_pseudonymize(coalesce(user_id, anonymous_id)) AS actor,
                   epoch_ms(occurred_at) AS t, lower(trim(event_type)) AS event_type,
                   lower(trim(page_type)) AS page_type, product_id
            FROM raw.events
            WHERE _source_file LIKE {_literal(COLLECTOR_FILES)}
              AND epoch_ms(occurred_at) <= {watermark_ms}
        ),
        with_roles AS (
            SELECT e.*, coalesce(p.role, k.role) AS role
            FROM events AS e
            LEFT JOIN taxonomy AS p ON e.event_type = p.event_type AND e.page_type = p.page_type
            LEFT JOIN taxonomy AS k ON e.event_type = k.event_type AND k.page_type IS NULL
        ),
        gaps AS (
            SELECT *, CASE WHEN t - lag(t) OVER (PARTITION BY actor ORDER BY t) < {timeout_ms}
                           THEN 0 ELSE 1 END AS starts
            FROM with_roles
        ),
        numbered AS (
            SELECT *, sum(starts) OVER (PARTITION BY actor ORDER BY t
                                        ROWS UNBOUNDED PRECEDING) AS session_number
            FROM gaps
        )
        SELECT *, min(t) OVER (PARTITION BY actor, session_number) AS session_start
        FROM numbered
        """
    )
    found: set[tuple[str, str, int]] = set()
    for rule in rules.rules:
        if rule.kind == "session_count_above":
            pages = (
                f"AND page_type IN (SELECT unnest({_list(rule.page_types)}))"
                if rule.page_types
                else ""
            )
            sql = f"""
                SELECT actor, session_start FROM _rt_events
                WHERE role = {_literal(rule.event_role)} {pages}
                GROUP BY ALL HAVING count(*) > {rule.threshold}"""
        elif rule.kind == "same_item_in_window":
            window_ms = (rule.window_minutes or 0) * 60_000
            sql = f"""
                SELECT DISTINCT actor, session_start FROM (
                    SELECT actor, session_start, count(*) OVER (
                        PARTITION BY actor, session_start, product_id ORDER BY t
                        RANGE BETWEEN CURRENT ROW AND {window_ms} FOLLOWING) AS views
                    FROM _rt_events
                    WHERE role = {_literal(rule.event_role)} AND product_id IS NOT NULL
                ) WHERE views >= {rule.threshold}"""
        else:  # cart_abandoned
            window_ms = (rule.window_minutes or rules.session_timeout_minutes) * 60_000
            sql = f"""
                SELECT DISTINCT actor, session_start FROM (
                    SELECT actor, session_start, t,
                           lead(t) OVER (PARTITION BY actor ORDER BY t) AS next_t,
                           max(CASE WHEN role = {_literal(rule.event_role)} THEN t END) OVER (
                               PARTITION BY actor, session_start ORDER BY t
                               ROWS UNBOUNDED PRECEDING) AS last_add,
                           max(CASE WHEN role IN (SELECT unnest({_list(rule.clearing_roles)}))
                                    THEN t END) OVER (
                               PARTITION BY actor, session_start ORDER BY t
                               ROWS UNBOUNDED PRECEDING) AS last_clear
                    FROM _rt_events
                ) WHERE last_add > coalesce(last_clear, -1)
                    AND coalesce(next_t, {watermark_ms}) - t >= {window_ms}"""
        for actor, start in con.execute(sql).fetchall():
            found.add((rule.segment_key, actor, int(start)))
    con.execute("DROP TABLE _rt_events")
    return found


def stream_memberships(client: redis.Redis, keys: RealtimeKeys) -> set[tuple[str, str, int]]:
    out = set()
    for member in client.sscan_iter(keys.history, count=1000):
        segment, actor, start = member.decode().split(HISTORY_SEPARATOR)
        out.add((segment, actor, int(start)))
    return out


def watermark_of(client: redis.Redis, keys: RealtimeKeys, allowed_lateness_seconds: int) -> int:
    max_seen = int(client.hget(keys.clock, "max_event_ms") or 0)
    return max(0, max_seen - allowed_lateness_seconds * 1000)


def reconcile(
    con: duckdb.DuckDBPyConnection,
    client: redis.Redis,
    keys: RealtimeKeys,
    rules: RuleSet,
    allowed_lateness_seconds: int,
) -> Reconciliation:
    watermark = watermark_of(client, keys, allowed_lateness_seconds)
    stream = stream_memberships(client, keys)
    warehouse = warehouse_memberships(con, rules, watermark)
    both, only_stream, only_warehouse = stream & warehouse, stream - warehouse, warehouse - stream
    union = len(stream | warehouse)
    by_segment = {
        rule.segment_key: (
            sum(1 for m in both if m[0] == rule.segment_key),
            sum(1 for m in only_stream if m[0] == rule.segment_key),
            sum(1 for m in only_warehouse if m[0] == rule.segment_key),
        )
        for rule in rules.rules
    }
    examples = [f"stream only: {m}" for m in sorted(only_stream)[:5]]
    examples += [f"warehouse only: {m}" for m in sorted(only_warehouse)[:5]]
    return Reconciliation(
        agreement_rate=len(both) / union if union else 1.0,
        both=len(both),
        only_stream=len(only_stream),
        only_warehouse=len(only_warehouse),
        watermark_ms=watermark,
        by_segment=by_segment,
        examples=examples,
    )
