"""Segment-spec landing files: messages as Segment's own Python library sends them load into
raw.events without conversion, next to the flat contract (ingestion/contracts/events.toml).

The fixture is made by ``segment-analytics-python`` itself: a ``Client`` in sync mode posts each
call to a local HTTP endpoint standing in for the tracking API, exactly as it would post to
Segment (its ``clean()``, its ``DatetimeSerializer``, its ``/v1/batch`` body). The endpoint acts
as a collector: it writes every message of a batch as one JSON line, stamped with the batch's
``sentAt`` and its own ``receivedAt``, as Segment's S3/GCS destinations write them.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from segment.analytics.client import Client
from segment.analytics.version import VERSION

from ingestion.events import SEGMENT, SegmentMapping, discover_files, load_event_files
from warehouse.connection import connect

T0 = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
RECEIVED_AT = "2026-10-01T10:30:00.000Z"  # the collector's clock
CONTEXT = {
    "page": {
        "url": "https://shop.example/p/trail-shoe?utm_source=newsletter",
        "referrer": "https://news.example/fall",
        "path": "/p/trail-shoe",
    },
    "campaign": {"source": "newsletter", "medium": "email", "name": "fall_sale"},
    "device": {"type": "mobile"},
    "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X)",
    "ip": "203.0.113.7",
}


def _at(minute: int) -> datetime:
    return T0.replace(minute=minute)


def _calls(client: Client) -> None:
    """One shopper's journey: anonymous browsing, sign-in (identify), an earlier device merged
    by alias, a purchase, an app screen and an account (group)."""
    client.page(
        anonymous_id="anon-1",
        category="Product",
        name="Trail Shoe",
        properties={"url": "https://shop.example/p/trail-shoe", "title": "Trail Shoe"},
        context=copy.deepcopy(CONTEXT),
        timestamp=_at(0),
        message_id="m-page",
    )
    client.track(
        anonymous_id="anon-1",
        event="Product Viewed",
        properties={
            "product_id": "sku-42",
            "category": "Shoes",
            "price": Decimal("89.90"),  # the library's clean() sends it as a float
            "currency": "EUR",
        },
        context=copy.deepcopy(CONTEXT),
        timestamp=_at(1),
        message_id="m-view",
    )
    client.track(
        anonymous_id="anon-1",
        event="Product Added",
        properties={"product_id": "sku-42", "price": 89.9, "quantity": 2, "currency": "EUR"},
        timestamp=_at(2),
        message_id="m-add",
    )
    client.identify(
        user_id="cust-7",
        anonymous_id="anon-1",
        traits={"email": "ada@example.com", "first_name": "Ada", "plan": "gold"},
        timestamp=_at(3),
        message_id="m-identify",
    )
    client.alias(previous_id="anon-2", user_id="cust-7", timestamp=_at(4), message_id="m-alias")
    client.track(
        user_id="cust-7",
        event="Order Completed",
        properties={
            "order_id": "o-1",
            "total": 179.8,  # no revenue: total is the fallback
            "currency": "EUR",
            "products": [{"product_id": "sku-42", "quantity": 2, "price": 89.9}],
        },
        timestamp=_at(5),
        message_id="m-order",
    )
    client.track(
        user_id="cust-7",
        event="Order Refunded",
        properties={"order_id": "o-1", "revenue": 150.0, "total": 179.8},
        timestamp=_at(6),
        message_id="m-refund",
    )
    client.screen(
        user_id="cust-7",
        category="Cart",
        name="Cart Screen",
        properties={"items": 2},
        timestamp=_at(7),
        message_id="m-screen",
    )
    client.group(
        user_id="cust-7",
        group_id="acct-1",
        traits={"name": "Acme GmbH", "employees": 40},
        timestamp=_at(8),
        message_id="m-group",
    )
    client.track(anonymous_id="anon-3", event="Signed Up", timestamp=_at(9))  # its own messageId


class _Collector(BaseHTTPRequestHandler):
    """POST /v1/batch: every message of the batch, stamped with sentAt and receivedAt."""

    messages: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.path == "/v1/batch" and self.headers["Authorization"].startswith("Basic ")
        for message in body["batch"]:
            self.messages.append({**message, "sentAt": body["sentAt"], "receivedAt": RECEIVED_AT})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"success": true}')

    def log_message(self, *args) -> None:  # no access log on stderr
        pass


@pytest.fixture(scope="module")
def messages() -> Iterator[list[dict]]:
    """The messages segment-analytics-python sent, as the collector wrote them."""
    _Collector.messages = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("NO_PROXY", "127.0.0.1")
            client = Client(
                "test-write-key",
                host=f"http://127.0.0.1:{server.server_address[1]}",
                sync_mode=True,
                max_retries=0,
            )
            _calls(client)
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Collector.messages) == 10
    yield _Collector.messages


def _by_id(messages: list[dict], message_id: str) -> dict:
    return copy.deepcopy(next(m for m in messages if m.get("messageId") == message_id))


def _write(path: Path, records: list[dict | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (r if isinstance(r, str) else json.dumps(r) for r in records)
    path.write_text("\n".join(lines) + "\n")
    return path


def _load(warehouse: Path, landing: Path):
    with connect(warehouse) as con:
        return load_event_files(con, discover_files(landing))


def _rows(warehouse: Path, sql: str) -> list[dict]:
    with connect(warehouse, read_only=True) as con:
        cursor = con.execute(sql)
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _events(warehouse: Path) -> dict[str, dict]:
    rows = _rows(warehouse, "SELECT * EXCLUDE (_loaded_at, _load_id) FROM raw.events")
    for row in rows:
        row["properties"] = json.loads(row["properties"]) if row["properties"] else None
    return {row["event_id"]: row for row in rows}


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def test_the_library_sends_segment_spec_messages(messages):
    """The fixture is what the library really sends (not a hand-written imitation)."""
    page = _by_id(messages, "m-page")
    assert page["type"] == "page" and page["timestamp"] == "2026-10-01T10:00:00.000+00:00"
    assert page["context"]["library"]["name"] == "analytics-python"
    assert page["userId"] is None  # the library sends absent ids as null
    assert _by_id(messages, "m-view")["properties"]["price"] == 89.9
    assert "anonymousId" in _by_id(messages, "m-alias")


def test_segment_messages_load_into_the_contract_columns(messages, landing, warehouse):
    _write(landing / "segment" / "2026-10-01.jsonl", messages)

    report = _load(warehouse, landing)

    (result,) = report.files
    assert (result.landed, result.loaded, result.rejected, result.duplicate) == (10, 10, 0, 0)
    events = _events(warehouse)
    signed_up = next(e for e in events.values() if e["event_type"] == "Signed Up")
    assert signed_up["event_id"] == next(
        m["messageId"] for m in messages if m.get("event") == "Signed Up"
    )
    assert {e["event_type"] for e in events.values()} == {
        "page", "Product Viewed", "Product Added", "identify", "alias", "Order Completed",
        "Order Refunded", "screen", "group", "Signed Up",
    }  # fmt: skip

    page = events["m-page"]
    assert page["occurred_at"] == T0
    assert page["received_at"] == datetime(2026, 10, 1, 10, 30, tzinfo=UTC)
    assert (page["anonymous_id"], page["user_id"]) == ("anon-1", None)
    assert page["page_url"] == CONTEXT["page"]["url"]  # context.page first, then properties.url
    assert page["referrer"] == "https://news.example/fall"
    assert page["page_type"] == "Product"  # the page call's category
    assert (page["utm_source"], page["utm_medium"], page["utm_campaign"]) == (
        "newsletter",
        "email",
        "fall_sale",
    )
    assert page["device_type"] == "mobile"
    assert page["user_agent"] == CONTEXT["userAgent"] and page["ip"] == "203.0.113.7"

    view = events["m-view"]
    assert (view["product_id"], view["category"], view["price"], view["currency"]) == (
        "sku-42",
        "Shoes",
        89.9,
        "EUR",
    )
    assert view["page_url"] == CONTEXT["page"]["url"] and view["page_type"] is None
    assert events["m-add"]["quantity"] == 2
    assert events["m-add"]["page_url"] is None  # no context.page, no properties.url

    order = events["m-order"]
    assert (order["user_id"], order["order_id"], order["revenue"]) == ("cust-7", "o-1", 179.8)
    assert events["m-refund"]["revenue"] == 150.0  # revenue wins over total

    screen = events["m-screen"]
    assert (screen["event_type"], screen["page_type"]) == ("screen", "Cart")
    group = events["m-group"]
    assert group["properties"]["groupId"] == "acct-1"
    assert group["properties"]["name"] == "Acme GmbH"  # the group's traits


def test_properties_keep_the_message_beyond_the_mapped_keys(messages, landing, warehouse):
    _write(landing / "segment.jsonl", messages)
    _load(warehouse, landing)
    events = _events(warehouse)

    page = events["m-page"]["properties"]
    assert page["url"] == "https://shop.example/p/trail-shoe" and page["title"] == "Trail Shoe"
    assert page["name"] == "Trail Shoe" and page["category"] == "Product"
    assert page["context"]["library"] == {"name": "analytics-python", "version": VERSION}
    assert page["context"]["ip"] == "203.0.113.7"  # personal data: raw only
    assert page["integrations"] == {} and page["sentAt"]
    # the first path of a field is in its column, not repeated in properties
    for key in ("messageId", "timestamp", "receivedAt", "anonymousId", "type", "properties"):
        assert key not in page
    assert "userId" not in page  # null in the message: nothing to keep

    order = events["m-order"]["properties"]
    assert order["products"] == [{"product_id": "sku-42", "quantity": 2, "price": 89.9}]
    assert order["type"] == "track"  # a track's event_type is its name: the type is kept

    identify = events["m-identify"]
    assert (identify["anonymous_id"], identify["user_id"]) == ("anon-1", "cust-7")
    assert identify["properties"]["email"] == "ada@example.com"  # traits: personal, raw only
    assert identify["properties"]["first_name"] == "Ada"
    assert "traits" not in identify["properties"]


def test_alias_links_the_previous_id_to_the_user(messages, landing, warehouse):
    _write(landing / "segment.jsonl", messages)
    _load(warehouse, landing)

    alias = _events(warehouse)["m-alias"]

    assert alias["event_type"] == "alias"
    assert (alias["anonymous_id"], alias["user_id"]) == ("anon-2", "cust-7")
    assert "previousId" not in alias["properties"]


def test_broken_segment_messages_are_rejected_with_a_reason(messages, landing, warehouse):
    no_message_id = _by_id(messages, "m-view")
    del no_message_id["messageId"]
    bad_timestamp = {**_by_id(messages, "m-add"), "timestamp": "2026-13-45T99:00:00Z"}
    no_ids = {**_by_id(messages, "m-order"), "userId": None, "anonymousId": None}
    no_event_name = _by_id(messages, "m-refund")
    del no_event_name["event"]
    bad_price = _by_id(messages, "m-view")
    bad_price["messageId"], bad_price["properties"]["price"] = "m-bad-price", "cheap"
    bad_received_at = {**_by_id(messages, "m-screen"), "receivedAt": "later"}
    broken = {
        "missing_event_id": no_message_id,
        "invalid_occurred_at": bad_timestamp,
        "missing_identity": no_ids,
        "missing_event_type": no_event_name,
        "invalid_price": bad_price,
        "invalid_received_at": bad_received_at,
    }
    good = _by_id(messages, "m-page")
    _write(landing / "broken.jsonl", [good, *broken.values(), good])

    (result,) = _load(warehouse, landing).files

    assert (result.landed, result.loaded, result.rejected, result.duplicate) == (8, 1, 6, 1)
    assert result.reasons == {reason: 1 for reason in broken}
    assert result.landed == result.loaded + result.rejected + result.duplicate + result.suppressed
    rejected = {
        row["reason"]: json.loads(row["payload"])
        for row in _rows(warehouse, "SELECT payload, reason FROM raw.rejected_events")
    }
    assert rejected == broken  # the original message, unconverted
    (audit,) = _rows(
        warehouse, "SELECT landed, loaded, rejected, duplicate FROM raw.event_load_audit"
    )
    assert audit == {"landed": 8, "loaded": 1, "rejected": 6, "duplicate": 1}


def test_timestamp_falls_back_to_original_timestamp(messages, landing, warehouse):
    """RudderStack-style: the client time as originalTimestamp, the address as request_ip."""
    message = _by_id(messages, "m-add")
    message["originalTimestamp"] = message.pop("timestamp")
    message["request_ip"] = "198.51.100.4"
    _write(landing / "rudder.jsonl", [message])

    _load(warehouse, landing)

    event = _events(warehouse)["m-add"]
    assert event["occurred_at"] == _at(2)
    assert event["ip"] == "198.51.100.4"
    assert event["properties"]["originalTimestamp"] == "2026-10-01T10:02:00.000+00:00"


def test_a_file_mixes_flat_and_segment_lines(messages, landing, warehouse):
    flat = {
        "event_id": "flat-1",
        "event_type": "page_view",
        "occurred_at": "2026-10-01T09:00:00Z",
        "anonymous_id": "anon-1",
        "page_url": "https://shop.example/",
        # a flat event that happens to carry a Segment-like "type": event_type decides
        "type": "page",
    }
    flat_broken = {"event_type": "page_view", "anonymous_id": "anon-9"}  # no event_id
    not_a_segment_type = {"type": "batch", "messageId": "m-x", "userId": "cust-7"}
    records = [
        flat,
        *messages[:3],
        flat_broken,
        not_a_segment_type,
        '{"type": "track", ',
        _by_id(messages, "m-page"),  # a duplicate of a Segment line in the same file
    ]
    _write(landing / "mixed.jsonl", records)
    _write(landing / "only_segment.jsonl", messages[3:6])

    report = _load(warehouse, landing)

    mixed, only_segment = report.files
    assert (mixed.file_name, only_segment.file_name) == ("mixed.jsonl", "only_segment.jsonl")
    assert (mixed.landed, mixed.loaded, mixed.rejected, mixed.duplicate) == (8, 4, 3, 1)
    assert mixed.reasons == {"malformed_json": 1, "missing_event_id": 2}
    assert (only_segment.landed, only_segment.loaded) == (3, 3)
    for result in report.files:
        assert result.landed == (
            result.loaded + result.rejected + result.duplicate + result.suppressed
        )
    events = _events(warehouse)
    assert events["flat-1"]["event_type"] == "page_view"
    assert events["flat-1"]["properties"] == {"type": "page"}
    assert events["m-page"]["event_type"] == "page"
    assert sorted(events) == [
        "flat-1",
        "m-add",
        "m-alias",
        "m-identify",
        "m-order",
        "m-page",
        "m-view",
    ]


def test_segment_rows_in_a_parquet_file(messages, tmp_path, landing, warehouse):
    jsonl = _write(tmp_path / "source.jsonl", messages)
    landing.mkdir()
    with connect(tmp_path / "scratch.duckdb") as con:
        con.execute(
            f"COPY (SELECT * FROM read_json('{jsonl}', format = 'newline_delimited')) "
            f"TO '{landing / 'segment.parquet'}' (FORMAT parquet)"
        )

    (result,) = _load(warehouse, landing).files

    assert (result.file_format, result.landed, result.loaded) == ("parquet", 10, 10)
    events = _events(warehouse)
    assert events["m-page"]["page_url"] == CONTEXT["page"]["url"]
    assert events["m-view"]["price"] == 89.9
    assert (events["m-alias"]["anonymous_id"], events["m-alias"]["user_id"]) == (
        "anon-2",
        "cust-7",
    )
    assert events["m-identify"]["properties"]["email"] == "ada@example.com"


def test_the_mapping_is_read_from_the_contract():
    assert SEGMENT.types == ("track", "page", "screen", "identify", "alias", "group")
    assert SEGMENT.fields["track"]["event_type"] == ("event",)
    assert SEGMENT.fields["page"]["event_type"] == ("type",)
    assert SEGMENT.fields["alias"]["anonymous_id"][0] == "previousId"
    assert SEGMENT.properties["identify"] == "traits"
    assert "originalTimestamp" not in SEGMENT.consumed["page"]  # a fallback stays in properties


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"by_type": {"batch": {}}}, "not in segment.types"),
        ({"fields": {"event_id": ["messageId"], "properties": "properties"}}, "missing"),
    ],
)
def test_a_broken_mapping_is_refused_at_import(section, message):
    columns = tuple(SEGMENT.fields["track"])
    defaults = {"types": ["track"], "fields": {**SEGMENT.fields["page"], "properties": "p"}}
    with pytest.raises(ValueError, match=message):
        SegmentMapping.from_contract({**defaults, **section}, columns)
