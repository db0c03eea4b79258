"""The collector's HTTP service: the ingestion endpoints of Segment's HTTP tracking API.

    POST /v1/batch                                    {"batch": [message, ...], "context": ...}
    POST /v1/track /v1/page /v1/screen /v1/identify /v1/alias /v1/group    one message
    GET  /healthz                                     liveness (no key)

Existing SDKs point at it by changing their host (segment-analytics-python: ``host=``).
Authentication: the write key as the SDKs send it, HTTP Basic with the key as user name and an
empty password, or (as Segment also accepts) ``writeKey`` in the body. Bodies may be gzip
(``Content-Encoding: gzip``).

Answers:
- 200 ``{"success": true}``: every message accepted, and durable: the append to the broker
  stream returned before the response (the stream is the log of record; landing files and
  real-time state are written from it).
- 400 ``{"code": "invalid_messages", "accepted": n, "rejected": [{index, messageId, reason,
  detail}]}``: some messages are invalid. The valid ones of the same batch ARE accepted and
  durable all the same (a bad message never blocks good ones); the SDKs do not retry a 400, and
  a retry would be deduplicated by messageId anyway. Rejected messages are appended, with their
  reason, to the capped stream ``<stream>:rejected`` (they are not silently lost, and never
  reach the warehouse).
- 400 ``malformed_json`` / ``invalid_body``, 401 ``unauthorized``, 413 ``too_large``, 503
  ``unavailable`` (the broker cannot be reached: nothing was accepted, SDKs retry).

Pure ASGI on uvicorn (uvloop, httptools) with orjson: the request path is parse, check, one
pipelined XADD, answer.
"""

from __future__ import annotations

import base64
import hmac
import logging
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson
from redis.exceptions import RedisError

from ingestion.collector.messages import MAX_BATCH_BYTES, TYPES, check_batch
from warehouse.broker import AsyncAppender, RedisStreamAppender

log = logging.getLogger("segwh.collector")

MAX_BODY_BYTES = MAX_BATCH_BYTES
MAX_INFLATED_BYTES = 4 * MAX_BATCH_BYTES
REJECTED_STREAM_MAXLEN = 100_000
_SINGLE = {f"/v1/{kind}": kind for kind in TYPES}
_JSON = [(b"content-type", b"application/json")]
_OK = orjson.dumps({"success": True})


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


def _answer(status: int, body: dict | bytes):
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return status, data


class Collector:
    """The ASGI app. ``appender``: where accepted messages go (one entry per request);
    ``write_keys``: the accepted write keys; ``rejected_sink``: an async callable taking the
    rejected (reason, payload) pairs (the capped rejected stream), or None."""

    def __init__(
        self,
        appender: AsyncAppender,
        write_keys: Sequence[str],
        rejected_sink: Callable | None = None,
    ):
        if not write_keys:
            raise ValueError("the collector needs at least one write key")
        self.appender = appender
        self.write_keys = [k.encode() for k in write_keys]
        self.rejected_sink = rejected_sink
        self.accepted = 0
        self.rejected = 0

    def _authorized(self, header: bytes | None, body_key) -> bool:
        presented: bytes | None = None
        if header and header[:6].lower() == b"basic ":
            try:
                presented = base64.b64decode(header[6:].strip(), validate=True).split(b":", 1)[0]
            except (ValueError, zlib.error):
                presented = None
        elif isinstance(body_key, str):
            presented = body_key.encode()
        if not presented:
            return False
        return any(hmac.compare_digest(presented, key) for key in self.write_keys)

    async def _body(self, receive, headers: dict[bytes, bytes]) -> bytes:
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _BadRequest(413, "too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if headers.get(b"content-encoding", b"").lower() == b"gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                body = inflater.decompress(body, MAX_INFLATED_BYTES)
            except zlib.error:
                raise _BadRequest(400, "invalid_body", "the gzip body cannot be read") from None
            if inflater.unconsumed_tail:
                raise _BadRequest(413, "too_large", "the inflated body is too large")
        return body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.appender.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status, body = await self._handle(scope, receive)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope, receive) -> tuple[int, bytes]:
        path, method = scope["path"], scope["method"]
        if path == "/healthz" and method == "GET":
            return _answer(200, {"status": "ok"})
        kind = _SINGLE.get(path)
        if path != "/v1/batch" and kind is None:
            return _answer(404, {"code": "not_found", "message": f"no endpoint {path}"})
        if method != "POST":
            return _answer(405, {"code": "method_not_allowed", "message": "use POST"})
        headers = dict(scope["headers"])
        try:
            raw = await self._body(receive, headers)
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise _BadRequest(400, "malformed_json", "the body is not JSON") from None
            if not isinstance(document, dict):
                raise _BadRequest(400, "invalid_body", "the body must be a JSON object")
            if not self._authorized(headers.get(b"authorization"), document.get("writeKey")):
                return _answer(
                    401,
                    {"code": "unauthorized", "message": "unknown write key (HTTP Basic, user)"},
                )
            if kind is None:
                messages = document.get("batch")
                if not isinstance(messages, list):
                    raise _BadRequest(400, "invalid_body", "a batch body has a list `batch`")
                defaults = {
                    k: document[k] for k in ("context", "integrations", "sentAt") if k in document
                }
            else:
                document.setdefault("type", kind)
                if document["type"] != kind:
                    raise _BadRequest(400, "invalid_type", f"{path} takes type {kind!r}")
                messages, defaults = [document], None
        except _BadRequest as exc:
            return _answer(exc.status, {"code": exc.code, "message": exc.message})
        client = scope.get("client")
        checked = check_batch(
            messages,
            datetime.now(UTC),
            client[0] if client else None,
            headers.get(b"user-agent", b"").decode("latin-1") or None,
            defaults,
        )
        try:
            if checked.accepted:
                await self.appender.append([orjson.dumps(checked.accepted)])
            if checked.rejected and self.rejected_sink is not None:
                await self.rejected_sink(
                    [(r.reason, orjson.dumps(messages[r.index])) for r in checked.rejected]
                )
        except (RedisError, OSError) as exc:
            log.error("broker unavailable: %s", type(exc).__name__)
            return _answer(503, {"code": "unavailable", "message": "the broker is unavailable"})
        self.accepted += len(checked.accepted)
        if not checked.rejected:
            return _answer(200, _OK)
        self.rejected += len(checked.rejected)
        return _answer(
            400,
            {
                "code": "invalid_messages",
                "message": f"{len(checked.rejected)} message(s) rejected; "
                f"{len(checked.accepted)} accepted",
                "accepted": len(checked.accepted),
                "rejected": [r.as_json() for r in checked.rejected],
            },
        )


def create_collector(redis_url: str, stream: str, write_keys: Sequence[str]) -> Collector:
    appender = RedisStreamAppender(redis_url, stream)

    async def rejected_sink(items: list[tuple[str, bytes]]) -> None:
        pipe = appender.client.pipeline(transaction=False)
        for reason, payload in items:
            pipe.xadd(
                f"{stream}:rejected",
                {b"reason": reason, b"payload": payload},
                maxlen=REJECTED_STREAM_MAXLEN,
                approximate=True,
            )
        await pipe.execute()

    return Collector(appender, write_keys, rejected_sink)


def app_from_environment() -> Collector:
    """The app uvicorn's worker processes build (``--workers``: one app per process)."""
    from warehouse.settings import load_settings

    settings = load_settings()
    return create_collector(
        settings.broker_url, settings.broker_stream, settings.collector_write_keys
    )


def serve(
    settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    landing: bool = True,
) -> None:
    """`segwh collect`: the landing-file writer (one process) and the HTTP workers (uvicorn,
    uvloop, httptools; ``workers`` processes sharing the port). ``settings``:
    ``warehouse.settings.Settings``; the write keys reach the workers by the environment only."""
    import subprocess
    import sys

    import redis
    import uvicorn

    from warehouse.broker import RedisStreamBroker

    if not settings.collector_write_keys:
        raise ValueError(
            "SEGWH_COLLECTOR_WRITE_KEYS is not set: the collector accepts no write key. Export "
            "the keys your SDKs use, comma-separated (keep them in your secret store)"
        )
    client = redis.Redis.from_url(settings.broker_url)
    RedisStreamBroker(client, settings.broker_stream).ensure_groups()
    client.close()
    writer = (
        subprocess.Popen([sys.executable, "-m", "ingestion.collector.landing"]) if landing else None
    )
    try:
        uvicorn.run(
            "ingestion.collector.app:app_from_environment",
            factory=True,
            host=host or settings.collector_host,
            port=port or settings.collector_port,
            workers=workers or settings.collector_workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            server_header=False,
            date_header=False,
            log_level="warning",
        )
    finally:
        if writer is not None:
            writer.terminate()
            writer.wait(timeout=30)
