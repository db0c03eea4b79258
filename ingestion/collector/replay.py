"""Replaying landed flat-contract events through the collector, as an SDK would send them: the
reconciliation test and the benchmarks use it on the generated sample.

Each flat event becomes a Segment ``track`` message (event = event_type, messageId = event_id,
the commerce and page fields in properties, ip / user agent / page / campaign in context),
in event-time order, so the stream consumer sees the events as a live site would send them.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import duckdb

from ingestion.events import discover_files

_PROPERTIES = (
    "page_type",
    "product_id",
    "category",
    "price",
    "quantity",
    "order_id",
    "revenue",
    "currency",
)


_JSON_COLUMNS = (
    "{"
    + ", ".join(
        f"'{name}': 'VARCHAR'"
        for name in (
            "event_id", "event_type", "occurred_at", "anonymous_id", "user_id", "page_url",
            "referrer", "utm_source", "utm_medium", "utm_campaign", "device_type",
            "user_agent", "ip", *_PROPERTIES,
        )
    )
    + "}"
)  # fmt: skip


def sample_messages(landing_dir: Path) -> list[dict]:
    """The flat events of the landing files under ``landing_dir`` as Segment messages, sorted
    by event time (rows without event time or identity are left out: the collector would
    reject them)."""
    files = [f for f in discover_files(landing_dir) if "/collector/" not in str(f.path)]
    con = duckdb.connect()
    parts = [
        f"SELECT * FROM read_parquet('{f.path}')"
        if f.file_format == "parquet"
        else f"SELECT * FROM read_json('{f.path}', format = 'newline_delimited', "
        "ignore_errors = true, columns = " + _JSON_COLUMNS + ")"
        for f in files
    ]
    rows = con.execute(
        f"""
        SELECT event_id, event_type, TRY_CAST(occurred_at AS TIMESTAMPTZ) AS event_at,
               anonymous_id, user_id, page_url, referrer, utm_source, utm_medium, utm_campaign,
               device_type, user_agent, ip, {", ".join(_PROPERTIES)}
        FROM ({" UNION ALL BY NAME ".join(parts)})
        WHERE event_at IS NOT NULL AND event_id IS NOT NULL AND event_type IS NOT NULL
          AND coalesce(user_id, anonymous_id) IS NOT NULL
        ORDER BY event_at, event_id
        """
    ).fetchall()
    names = [d[0] for d in con.description]
    con.close()
    messages = []
    for values in rows:
        row = dict(zip(names, values, strict=True))
        properties = {k: row[k] for k in _PROPERTIES if row[k] is not None}
        context = {
            "ip": row["ip"],
            "userAgent": row["user_agent"],
            "page": {"url": row["page_url"], "referrer": row["referrer"]},
            "campaign": {
                "source": row["utm_source"],
                "medium": row["utm_medium"],
                "name": row["utm_campaign"],
            },
            "device": {"type": row["device_type"]},
        }
        message = {
            "type": "track",
            "event": row["event_type"],
            "messageId": str(row["event_id"]),
            "timestamp": row["event_at"].isoformat(),
            "properties": properties,
            "context": context,
        }
        if row["anonymous_id"]:
            message["anonymousId"] = str(row["anonymous_id"])
        if row["user_id"]:
            message["userId"] = str(row["user_id"])
        messages.append(message)
    return messages


def batches(messages: list[dict], size: int) -> Iterator[list[dict]]:
    for start in range(0, len(messages), size):
        yield messages[start : start + size]


def basic_auth(write_key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
