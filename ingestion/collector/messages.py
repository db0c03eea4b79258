"""Validating and enriching the messages of Segment's HTTP tracking API, one at a time.

A message is accepted when it is a JSON object of a known ``type`` with a ``messageId`` (the
deduplication key downstream: without it a retried message could not be recognised), an
identity (``userId`` or ``anonymousId``; an alias: ``userId`` and ``previousId``), a track's
``event`` name, parseable timestamps and object-valued ``properties`` / ``traits`` /
``context``, within Segment's size limit. Every other message is rejected with one reason
(``REASONS``); the others of its batch are accepted all the same.

Enrichment (server side, as Segment does): ``receivedAt`` (server clock), ``context.ip`` (the
client's address) and ``context.userAgent`` (the request's User-Agent) when the message has
none, and ``timestamp`` when absent: ``originalTimestamp`` corrected for the client's clock skew
(``receivedAt - (sentAt - originalTimestamp)``), else ``receivedAt``. ip and user agent are
personal data: they stay raw (raw.events; the stream state never keeps them). The write key is
removed from every message: it never reaches the stream or a file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

TYPES = ("track", "page", "screen", "identify", "alias", "group")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limit per message
MAX_BATCH_BYTES = 500 * 1024  # Segment's limit per batch request
REASONS = (
    "not_an_object",
    "invalid_type",
    "missing_message_id",
    "missing_identity",
    "missing_previous_id",
    "missing_event",
    "invalid_timestamp",
    "invalid_object",
    "too_large",
)
_OBJECT_KEYS = ("properties", "traits", "context", "integrations")
_TIME_KEYS = ("timestamp", "originalTimestamp", "sentAt")


@dataclass(frozen=True)
class Rejection:
    index: int
    message_id: str | None
    reason: str
    detail: str

    def as_json(self) -> dict:
        return {
            "index": self.index,
            "messageId": self.message_id,
            "reason": self.reason,
            "detail": self.detail,
        }


def _nonempty(value) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


def _parse_time(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def reject_reason(message, size: int) -> tuple[str, str] | None:
    """(reason, detail) of a message the collector does not accept, or None."""
    if not isinstance(message, dict):
        return "not_an_object", "a message is a JSON object"
    if size > MAX_MESSAGE_BYTES:
        return "too_large", f"{size} bytes; at most {MAX_MESSAGE_BYTES}"
    kind = message.get("type")
    if kind not in TYPES:
        return "invalid_type", f"type must be one of {', '.join(TYPES)}"
    if not _nonempty(message.get("messageId")):
        return "missing_message_id", "messageId is required (the deduplication key)"
    if kind == "alias":
        if not _nonempty(message.get("userId")):
            return "missing_identity", "an alias needs userId"
        if not _nonempty(message.get("previousId")):
            return "missing_previous_id", "an alias needs previousId"
    elif not (_nonempty(message.get("userId")) or _nonempty(message.get("anonymousId"))):
        return "missing_identity", "userId or anonymousId is required"
    if kind == "track" and not (isinstance(message.get("event"), str) and message["event"]):
        return "missing_event", "a track call needs its event name"
    for key in _TIME_KEYS:
        if message.get(key) is not None and _parse_time(message[key]) is None:
            return "invalid_timestamp", f"{key} is not an ISO-8601 timestamp"
    for key in _OBJECT_KEYS:
        if message.get(key) is not None and not isinstance(message[key], dict):
            return "invalid_object", f"{key} must be an object"
    return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enrich(message: dict, received: datetime, ip: str | None, user_agent: str | None) -> dict:
    """The message as the stream and the landing files carry it (mutated in place)."""
    message.pop("writeKey", None)
    message["messageId"] = str(message["messageId"])
    message["receivedAt"] = _iso(received)
    context = message.get("context")
    if context is None:
        context = message["context"] = {}
    if ip and not context.get("ip"):
        context["ip"] = ip
    if user_agent and not context.get("userAgent"):
        context["userAgent"] = user_agent
    if not message.get("timestamp"):
        original = _parse_time(message.get("originalTimestamp"))
        sent = _parse_time(message.get("sentAt"))
        if original is not None and sent is not None:
            message["timestamp"] = _iso(received - (sent - original))
        elif original is not None:
            message["timestamp"] = _iso(original)
        else:
            message["timestamp"] = _iso(received)
    return message


@dataclass
class Checked:
    accepted: list[dict]
    rejected: list[Rejection]


def check_batch(
    messages: list,
    received: datetime,
    ip: str | None,
    user_agent: str | None,
    defaults: dict | None = None,
) -> Checked:
    """Validate and enrich every message of one request; ``defaults``: the batch's own
    ``context`` / ``integrations`` / ``sentAt``, which a message inherits when it has none."""
    accepted: list[dict] = []
    rejected: list[Rejection] = []
    for index, message in enumerate(messages):
        if isinstance(message, dict) and defaults:
            for key, value in defaults.items():
                message.setdefault(key, value)
        size = len(orjson.dumps(message)) if isinstance(message, dict) else 0
        problem = reject_reason(message, size)
        if problem is not None:
            message_id = message.get("messageId") if isinstance(message, dict) else None
            rejected.append(Rejection(index, str(message_id) if message_id else None, *problem))
            continue
        accepted.append(enrich(message, received, ip, user_agent))
    return Checked(accepted, rejected)
