"""The online personalization API: profiles, content decisions and segment members, from Redis.

    GET  /v1/profiles/{id}                 profile of a visitor (user id or anonymous id)
    GET  /v1/decisions/{id}                content decision of a visitor
    POST /v1/profiles:batch                profiles of up to 100 ids, in order, one round trip
    GET  /v1/segments                      segments of the served version
    GET  /v1/segments/{segment}/members    person ids of a segment, paged by cursor
    GET  /healthz /readyz /metrics         liveness, readiness, Prometheus (no key)
    GET  /openapi.json /docs               the OpenAPI document (no key)

FastAPI on uvicorn (uvloop, httptools): the mainstream Python ASGI stack, the OpenAPI document
comes from the code, and one core serves thousands of lookups per second when the request path
stays lean. It does: the handlers resolve the identifier with one EVALSHA
(``store.LOOKUP_SCRIPT``: current version, identifier -> person -> profile, atomically) and write
the stored profile JSON through to the response bytes; nothing is validated or re-serialized by
pydantic on the way out; API keys are checked against an in-process cache (``auth.KeyCache``);
access log and metrics are a pure ASGI middleware.

Real time: a profile response carries the batch profile (``profile``, from the served version:
``version``/``as_of``) and, beside it, ``realtime``: the in-session segments the stream consumer
keeps (``serving/realtime``; ``source: "stream"``, each segment with the event time it was
entered), read in the same round trip (a second EVALSHA pipelined on the same connection). A
person whose batch profile is not personalized (no consent) gets no real-time segments either.

Raw ids never leave the request: they are pseudonymized here with the warehouse's key
(``privacy.pseudonyms``), as everything in Redis is keyed by pseudonyms, and neither the id nor
its pseudonym is logged (``logs``). Unknown visitors get the default decision of the served
version; persons without personalization consent get only their decision.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
from fastapi import FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.exceptions import HTTPException as StarletteHTTPException

from privacy.pseudonyms import pseudonym
from serving.online import auth
from serving.online.connection import redacted, require_url
from serving.online.cursors import CursorCodec, InvalidCursor
from serving.online.logs import AccessLog
from serving.online.metrics import ApiMetrics
from serving.online.pipelined import PipelinedRedis, Script
from serving.online.reader import Lookup, ProfileReader
from serving.online.schemas import (
    DEFAULT_MEMBERS_LIMIT,
    MAX_BATCH_IDS,
    MAX_ID_LENGTH,
    MAX_MEMBERS_LIMIT,
    BatchRequest,
    BatchResponse,
    DecisionResponse,
    ErrorResponse,
    Health,
    MembersResponse,
    ProfileResponse,
    Ready,
    SegmentsResponse,
)
from serving.online.store import LOOKUP_SCRIPT, Keys, VersionMeta
from serving.realtime.state import REALTIME_LOOKUP_SCRIPT, RealtimeKeys

log = logging.getLogger("segwh.api")

VERSION_HEADER = "Segwh-Version"
AS_OF_HEADER = "Segwh-As-Of"
RETRY_NOT_LOADED_SECONDS = 30
RETRY_UNAVAILABLE_SECONDS = 2
REDIS_TIMEOUT_SECONDS = 2.0
UNAVAILABLE_LOG_SECONDS = 10.0

_SECURITY = [{"bearerAuth": []}, {"apiKeyHeader": []}]
_SERVED_HEADERS = {
    VERSION_HEADER: {
        "description": "version of the store that answered",
        "schema": {"type": "string"},
    },
    AS_OF_HEADER: {"description": "as_of of that version", "schema": {"type": "string"}},
}
_RETRY_HEADER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def _error_doc(description: str, headers: dict | None = None) -> dict:
    doc: dict[str, Any] = {"model": ErrorResponse, "description": description}
    if headers:
        doc["headers"] = headers
    return doc


_AUTH_ERRORS = {
    401: _error_doc("no API key, or an unknown or revoked one"),
    403: _error_doc("the key lacks the scope this endpoint needs"),
    429: _error_doc("over the key's rate limit (counted per API process)", _RETRY_HEADER),
    503: _error_doc(
        "nothing loaded into the profile store yet, or Redis unreachable", _RETRY_HEADER
    ),
}


MAX_BODY_BYTES = 256 * 1024  # a batch of 100 ids of 512 characters, and room to spare


class _AnyText(PathConvertor):
    """A path parameter of any characters, slashes and line breaks included (Starlette's
    ``path`` stops at a line break): visitor ids are whatever the website uses."""

    regex = r"[\s\S]*"


register_url_convertor("anytext", _AnyText())

# parameters (module level: annotations are resolved here, not in create_app)
VisitorIdPath = Annotated[
    str,
    Path(
        max_length=MAX_ID_LENGTH,
        description="user id or anonymous id of the visitor, as the website knows it",
    ),
]
SegmentPath = Annotated[str, Path(max_length=200, description="segment key")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_MEMBERS_LIMIT, description="page size")]
CursorQuery = Annotated[
    str | None, Query(max_length=4096, description="next_cursor of the previous page")
]


class _Json(Response):
    """A response from ready bytes and raw headers: skips Starlette's header building on the
    hot path (content type and length are the only headers it would add)."""

    media_type = "application/json"

    def __init__(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()):
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ]


def _error(status: int, code: str, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> _Json:
    return _Json(status, orjson.dumps({"error": code, "detail": detail}), headers)


def _retry_after(seconds: float) -> list[tuple[bytes, bytes]]:
    return [(b"retry-after", str(max(1, math.ceil(seconds))).encode())]


class _View:
    """What every response from one version shares, rendered once per version."""

    def __init__(self, meta: VersionMeta):
        self.meta = meta
        self.headers = [
            (VERSION_HEADER.lower().encode(), meta.version.encode()),
            (AS_OF_HEADER.lower().encode(), meta.as_of.encode()),
            (b"cache-control", b"no-store"),
        ]
        self.head = orjson.dumps({"version": meta.version, "as_of": meta.as_of})[:-1]
        self.default_profile = orjson.dumps(
            {"personalized": False, "decision": meta.default_decision}
        )
        self.unknown_profile = self.head + b',"known":false,"profile":' + self.default_profile
        self.unknown_profile += b"}"
        self.unknown_decision, self.known_default_decision = (
            self.head
            + orjson.dumps(
                {"known": known, "personalized": False, "decision": meta.default_decision}
            ).replace(b"{", b",", 1)
            for known in (False, True)
        )

    def profile(self, stored: bytes) -> bytes:
        """The profile object of a known person: as stored when personalized; else only the
        version's default decision, whatever else was stored (fail closed: a profile without
        ``personalized: true`` is not personalized)."""
        if orjson.loads(stored).get("personalized") is True:
            return stored
        return self.default_profile

    def decision(self, stored: bytes) -> bytes:
        profile = orjson.loads(stored)
        if profile.get("personalized") is not True:
            return self.known_default_decision
        decision = profile.get("decision") or self.meta.default_decision
        body = {"known": True, "personalized": True, "decision": decision}
        return self.head + orjson.dumps(body).replace(b"{", b",", 1)


_NO_REALTIME = b',"realtime":{"source":"stream","segments":[]}'


def _realtime(stored: bytes | None, state: bytes | None) -> bytes:
    """The ``realtime`` member of a profile response: the in-session segments of the stream
    state, none for a person whose batch profile is not personalized."""
    if not state:
        return _NO_REALTIME
    if stored is not None and orjson.loads(stored).get("personalized") is not True:
        return _NO_REALTIME
    held = orjson.loads(state).get("seg", {})
    segments = [
        {
            "segment": key,
            "since": datetime.fromtimestamp(since / 1000, UTC).isoformat(timespec="milliseconds"),
        }
        for key, since in sorted(held.items())
    ]
    return b',"realtime":' + orjson.dumps({"source": "stream", "segments": segments})


class OnlineApi:
    """The state of one app: Redis client, reader, key cache, rate limiter, metrics."""

    def __init__(
        self,
        redis_url: str,
        prefix: str,
        pseudonymization_key: bytes,
        key_cache_seconds: float,
        metrics: ApiMetrics,
        access_log: AccessLog | None,
    ):
        self.redis_url = require_url(redis_url)
        self.keys = Keys(prefix)
        self.pseudonymization_key = pseudonymization_key
        self.key_cache_seconds = key_cache_seconds
        self.metrics = metrics
        self.access_log = access_log
        self.cursors = CursorCodec(pseudonymization_key)
        self.limiter = auth.RateLimiter()
        self.client: aioredis.Redis | None = None  # redis-py: everything but lookups
        self.reader: ProfileReader | None = None
        self.pipelined: PipelinedRedis | None = None  # lookups (the hot path)
        self._lookup_script: Script | None = None
        self._realtime_script: Script | None = None
        self.realtime_keys = RealtimeKeys(prefix)
        self.key_cache: auth.KeyCache | None = None
        self._views: dict[str, _View] = {}
        self._unavailable_logged = -math.inf

    async def start(self) -> None:
        self.client = aioredis.Redis.from_url(
            self.redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        self.reader = ProfileReader(self.client, self.keys)
        self.pipelined = PipelinedRedis(self.redis_url, timeout=REDIS_TIMEOUT_SECONDS)
        self._lookup_script = Script(self.pipelined, LOOKUP_SCRIPT)
        self._realtime_script = Script(self.pipelined, REALTIME_LOOKUP_SCRIPT)
        self.key_cache = auth.KeyCache(self.client, self.keys.prefix, self.key_cache_seconds)
        self.metrics.watch_key_cache(lambda: (self.key_cache.hits, self.key_cache.misses))

    async def stop(self) -> None:
        if self.access_log is not None:
            self.access_log.flush()
        if self.client is not None:
            await self.pipelined.aclose()
            await self.client.aclose()

    async def lookup(self, pseudonyms: list[str]) -> Lookup:
        """``ProfileReader.lookup`` on the pipelined client: the same script and reply, one
        EVALSHA; the version's meta comes from the reader's cache (it never changes)."""
        reply = await self._lookup_script(self.keys.prefix, *pseudonyms)
        if not reply or reply[0] is None:
            return Lookup(None, [None] * len(pseudonyms))
        meta = await self.reader.meta(reply[0].decode())
        if meta is None:  # replaced and expired between the two reads: read again
            return await self.reader.lookup(pseudonyms)
        profiles = reply[1:]
        profiles += [None] * (len(pseudonyms) - len(profiles))
        return Lookup(meta, profiles)

    async def lookup_with_realtime(self, pseudonyms: list[str]) -> tuple[Lookup, list]:
        """The batch lookup and the real-time states of the same ids, both sent at once."""
        found, states = await asyncio.gather(
            self.lookup(pseudonyms), self._realtime_script(self.realtime_keys.base, *pseudonyms)
        )
        states = list(states or [])
        return found, states + [None] * (len(pseudonyms) - len(states))

    def view(self, meta: VersionMeta) -> _View:
        view = self._views.get(meta.version)
        if view is None:
            if len(self._views) > 8:
                self._views.clear()
            view = self._views[meta.version] = _View(meta)
        self.metrics.serving(meta)
        return view

    # -- errors --------------------------------------------------------------------------

    def unavailable(self, exc: Exception) -> _Json:
        now = time.monotonic()
        if now - self._unavailable_logged > UNAVAILABLE_LOG_SECONDS:  # not a line per request
            self._unavailable_logged = now
            log.error(
                "profile store unreachable",
                extra={"fields": {"redis": redacted(self.redis_url), "error": type(exc).__name__}},
            )
        return _error(
            503,
            "store_unavailable",
            "the profile store (Redis) cannot be reached; retry shortly",
            _retry_after(RETRY_UNAVAILABLE_SECONDS),
        )

    def not_loaded(self) -> _Json:
        return _error(
            503,
            "not_loaded",
            f"no version of the profile store has been loaded into Redis under the prefix "
            f"{self.keys.prefix!r} yet: a publish with SEGWH_ONLINE_REDIS_URL set loads one",
            _retry_after(RETRY_NOT_LOADED_SECONDS),
        )

    # -- auth ----------------------------------------------------------------------------

    async def authorize(self, scope: dict, required: str) -> _Json | None:
        """None when the request's key may call an endpoint needing ``required``, else the
        error response (401, 403, 429, or 503 when Redis cannot be asked)."""
        key = auth.presented_key(scope["headers"])
        if key is None:
            self.metrics.rejected("unauthenticated")
            return _error(
                401,
                "unauthenticated",
                "send an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                [(b"www-authenticate", b'Bearer realm="segwh"')],
            )
        try:
            record = await self.key_cache.resolve(key)
        except RedisError as exc:
            return self.unavailable(exc)
        if record is None:
            self.metrics.rejected("unauthenticated")
            return _error(
                401,
                "unauthenticated",
                "unknown or revoked API key",
                [(b"www-authenticate", b'Bearer realm="segwh", error="invalid_token"')],
            )
        scope["segwh.key"] = record.name
        if required not in record.scopes:
            self.metrics.rejected("forbidden")
            return _error(
                403,
                "forbidden",
                f"the key {record.name!r} lacks the scope {required!r}",
            )
        wait = self.limiter.wait_seconds(record.name, record.rate_limit)
        if wait:
            self.metrics.rejected("rate_limited")
            return _error(
                429,
                "rate_limited",
                f"the key {record.name!r} is over its rate limit of {record.rate_limit:g} "
                "requests per second",
                _retry_after(wait),
            )
        return None

    # -- lookups -------------------------------------------------------------------------

    async def single(self, scope: dict, raw_id: str, render: str) -> _Json:
        denied = await self.authorize(scope, auth.PROFILES_READ)
        if denied is not None:
            return denied
        try:
            if render == "profile":
                found, states = await self.lookup_with_realtime(
                    [pseudonym(raw_id, self.pseudonymization_key)]
                )
            else:
                found, states = (
                    await self.lookup([pseudonym(raw_id, self.pseudonymization_key)]),
                    [None],
                )
        except RedisError as exc:
            return self.unavailable(exc)
        if found.meta is None:
            return self.not_loaded()
        view = self.view(found.meta)
        scope["segwh.version"] = found.meta.version
        stored = found.profiles[0]
        if stored is None:
            self.metrics.unknown.inc()
            body = view.unknown_profile if render == "profile" else view.unknown_decision
            if render == "profile":
                body = body[:-1] + _realtime(None, states[0]) + b"}"
        else:
            self.metrics.hits.inc()
            if render == "profile":
                body = view.head + b',"known":true,"profile":' + view.profile(stored)
                body += _realtime(stored, states[0]) + b"}"
            else:
                body = view.decision(stored)
        return _Json(200, body, view.headers)

    async def batch(self, scope: dict, raw_ids: list[str]) -> _Json:
        denied = await self.authorize(scope, auth.PROFILES_READ)
        if denied is not None:
            return denied
        key = self.pseudonymization_key
        try:
            found, states = await self.lookup_with_realtime(
                [pseudonym(raw, key) for raw in raw_ids]
            )
        except RedisError as exc:
            return self.unavailable(exc)
        if found.meta is None:
            return self.not_loaded()
        view = self.view(found.meta)
        scope["segwh.version"] = found.meta.version
        results = []
        for raw, stored, state in zip(raw_ids, found.profiles, states, strict=True):
            head = b'{"id":' + orjson.dumps(raw)
            realtime = _realtime(stored, state)
            if stored is None:
                self.metrics.unknown.inc()
                results.append(
                    head + b',"known":false,"profile":' + view.default_profile + realtime + b"}"
                )
            else:
                self.metrics.hits.inc()
                results.append(
                    head + b',"known":true,"profile":' + view.profile(stored) + realtime + b"}"
                )
        body = view.head + b',"results":[' + b",".join(results) + b"]}"
        return _Json(200, body, view.headers)

    # -- segments ------------------------------------------------------------------------

    async def segments(self, scope: dict) -> _Json:
        denied = await self.authorize(scope, auth.SEGMENTS_READ)
        if denied is not None:
            return denied
        try:
            meta = await self.reader.served()
        except RedisError as exc:
            return self.unavailable(exc)
        if meta is None:
            return self.not_loaded()
        view = self.view(meta)
        scope["segwh.version"] = meta.version
        body = view.head + b',"segments":' + orjson.dumps(sorted(meta.segments)) + b"}"
        return _Json(200, body, view.headers)

    async def members(self, scope: dict, segment: str, limit: int, cursor: str | None) -> _Json:
        denied = await self.authorize(scope, auth.SEGMENTS_READ)
        if denied is not None:
            return denied
        try:
            if cursor:
                try:
                    version, after = self.cursors.decode(cursor, segment)
                except InvalidCursor as exc:
                    return _error(400, "invalid_cursor", f"{exc}; start again without a cursor")
                meta = await self.reader.meta(version)
            else:
                meta, after = await self.reader.served(), None
                if meta is None:
                    return self.not_loaded()
            if meta is None:
                return self._expired(version)
            scope["segwh.version"] = meta.version
            if segment not in meta.segments:
                return _error(
                    404,
                    "unknown_segment",
                    f"version {meta.version} has no segment by that name; GET /v1/segments "
                    "lists them",
                )
            # the meta is the last key of a version to expire: present after the read means
            # the member set read was there too (and an empty set is an empty segment)
            pipe = self.client.pipeline(transaction=True)
            pipe.exists(self.keys.meta(meta.version))
            pipe.zrange(
                self.keys.members(meta.version, segment),
                f"({after}" if after else "-",
                "+",
                bylex=True,
                offset=0,
                num=limit + 1,
            )
            exists, ids = await pipe.execute()
        except RedisError as exc:
            return self.unavailable(exc)
        if not exists:
            return self._expired(meta.version)
        view = self.view(meta)
        members = [i.decode() for i in ids[:limit]]
        next_cursor = (
            self.cursors.encode(meta.version, segment, members[-1]) if len(ids) > limit else None
        )
        body = view.head + orjson.dumps(
            {"segment": segment, "members": members, "next_cursor": next_cursor}
        ).replace(b"{", b",", 1)
        return _Json(200, body, view.headers)

    def _expired(self, version: str) -> _Json:
        return _error(
            410,
            "version_expired",
            f"the pages of this cursor come from version {version}, which has been replaced and "
            "has expired: restart paging without a cursor (pages come from the served version)",
        )

    # -- health --------------------------------------------------------------------------

    async def ready(self) -> _Json:
        try:
            found = await self.lookup([])
            meta = found.meta
            present = meta is not None and await self.client.exists(self.keys.meta(meta.version))
        except RedisError as exc:
            return _error(
                503,
                "store_unavailable",
                f"Redis at {redacted(self.redis_url)} cannot be reached ({type(exc).__name__})",
                _retry_after(RETRY_UNAVAILABLE_SECONDS),
            )
        if meta is None:
            return self.not_loaded()
        if not present:
            return _error(
                503,
                "not_readable",
                f"the served version {meta.version} has no metadata in Redis",
                _retry_after(RETRY_UNAVAILABLE_SECONDS),
            )
        view = self.view(meta)
        body = orjson.dumps(
            {
                "status": "ready",
                "version": meta.version,
                "as_of": meta.as_of,
                "loaded_at": meta.loaded_at,
                "persons": meta.persons,
            }
        )
        return _Json(200, body, view.headers)


class ApiMiddleware:
    """Pure ASGI, around the FastAPI app: one JSON access log line and one latency observation
    per request, labelled with the route template (never the path, which holds the visitor's
    id); and the two hot routes, ``GET /v1/profiles/{id}`` and ``GET /v1/decisions/{id}``,
    answered here without FastAPI's routing and parameter handling (it costs as much CPU per
    request as the rest of a lookup together). FastAPI declares the same routes (the OpenAPI
    document) and answers them identically when ``fast_path`` is off, and always for an id too
    long (its validation error)."""

    def __init__(self, app: Callable[..., Awaitable[None]], api: OnlineApi, fast_path: bool):
        self.app = app
        self.api = api
        self.metrics = api.metrics
        self.access_log = api.access_log
        self.fast_path = fast_path

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        template = None
        method = scope["method"]
        try:
            if self.fast_path and method == "GET":
                path = scope["path"]
                root = scope.get("root_path")
                if root and path.startswith(root):
                    path = path[len(root) :]
                for prefix, template_, render in _FAST_ROUTES:
                    if path.startswith(prefix) and len(path) - len(prefix) <= MAX_ID_LENGTH:
                        template = template_
                        response = await self.api.single(scope, path[len(prefix) :], render)
                        status = response.status_code
                        await send(
                            {
                                "type": "http.response.start",
                                "status": status,
                                "headers": response.raw_headers,
                            }
                        )
                        await send({"type": "http.response.body", "body": response.body})
                        return

            if method == "POST" and _declared_length(scope) > MAX_BODY_BYTES:
                # FastAPI's own limit (max_body_size) stays as the backstop of chunked bodies
                response = _error(
                    413, "content_too_large", f"the body exceeds {MAX_BODY_BYTES:,} bytes"
                )
                status = 413
                await response(scope, receive, send)
                return

            async def send_status(message: dict) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            if template is None:
                template = getattr(scope.get("route"), "path_format", None) or "unmatched"
            self.metrics.observe(method, template, status, seconds)
            if self.access_log is not None:
                self.access_log.write(
                    method,
                    template,
                    status,
                    seconds,
                    scope.get("segwh.key"),
                    scope.get("segwh.version"),
                )


def _declared_length(scope: dict) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


_FAST_ROUTES = (
    ("/v1/profiles/", "/v1/profiles/{id}", "profile"),
    ("/v1/decisions/", "/v1/decisions/{id}", "decision"),
)


class OnlineApp(FastAPI):
    """FastAPI behind ``ApiMiddleware`` (``front``): the middleware sees every request first,
    before FastAPI's own layers (exception handling, telemetry, routing)."""

    front: ApiMiddleware

    async def fastapi_call(self, scope: dict, receive: Callable, send: Callable) -> None:
        await super().__call__(scope, receive, send)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        await self.front(scope, receive, send)


def create_app(
    redis_url: str,
    prefix: str,
    pseudonymization_key: bytes,
    *,
    key_cache_seconds: float = auth.DEFAULT_CACHE_SECONDS,
    fast_path: bool = True,
    access_log: AccessLog | None = None,
) -> FastAPI:
    """The API on the store under ``prefix`` at ``redis_url``; ids are pseudonymized with
    ``pseudonymization_key`` (the warehouse's). Redis is connected at startup (lifespan).
    ``fast_path=False`` lets FastAPI route the single lookups too (``ApiMiddleware``). The
    access log goes to ``access_log`` (default: none; ``serve`` writes it to stderr)."""
    metrics = ApiMetrics()
    api = OnlineApi(redis_url, prefix, pseudonymization_key, key_cache_seconds, metrics, access_log)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await api.start()
        try:
            yield
        finally:
            await api.stop()

    app = OnlineApp(
        title="segwh online personalization API",
        version="1",
        summary="Segments, scores and content decisions of visitors, served from Redis",
        description=(
            "Look up a visitor by user id or anonymous id (the raw id: the API pseudonymizes "
            "it). Unknown visitors get the default decision; persons without personalization "
            "consent get only their decision. Every response names the version of the store "
            f"that answered (body, and headers `{VERSION_HEADER}` / `{AS_OF_HEADER}`). "
            "Authenticate with an API key: `Authorization: Bearer <key>` or `X-API-Key`."
        ),
        lifespan=lifespan,
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry hooks cost ~30 us per request even with no
        # provider configured (they look the providers up each time); /metrics is ours
        telemetry={"tracing": False, "metrics": False, "logs": False},
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.api = api

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """FastAPI's and Starlette's own errors (unknown path, wrong method, unreadable or too
        large body) in the API's error shape."""
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
        headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        return _error(exc.status_code, code, str(exc.detail), headers)

    app.front = ApiMiddleware(app.fastapi_call, api, fast_path)

    served = {"headers": _SERVED_HEADERS}

    @app.get(
        "/v1/profiles/{id:anytext}",
        operation_id="get_profile",
        summary="Profile of a visitor",
        response_model=None,
        responses={200: {"model": ProfileResponse, **served}, **_AUTH_ERRORS},
        openapi_extra={"security": _SECURITY},
        tags=["profiles"],
    )
    async def get_profile(request: Request, id: VisitorIdPath) -> Response:
        """Segments, RFM segment, cluster, churn score and content decision of the visitor
        (scope `profiles:read`). Unknown ids: `known: false` and the default decision."""
        return await api.single(request.scope, id, "profile")

    @app.get(
        "/v1/decisions/{id:anytext}",
        operation_id="get_decision",
        summary="Content decision for a visitor",
        response_model=None,
        responses={200: {"model": DecisionResponse, **served}, **_AUTH_ERRORS},
        openapi_extra={"security": _SECURITY},
        tags=["profiles"],
    )
    async def get_decision(request: Request, id: VisitorIdPath) -> Response:
        """Only the content decision (scope `profiles:read`): what a page needs to render."""
        return await api.single(request.scope, id, "decision")

    @app.post(
        "/v1/profiles:batch",
        operation_id="get_profiles_batch",
        summary=f"Profiles of up to {MAX_BATCH_IDS} visitors",
        response_model=None,
        responses={
            200: {"model": BatchResponse, **served},
            400: _error_doc("the body is not readable (not UTF-8 JSON)"),
            413: _error_doc(f"the body is larger than {MAX_BODY_BYTES:,} bytes"),
            **_AUTH_ERRORS,
        },
        openapi_extra={"security": _SECURITY},
        tags=["profiles"],
    )
    async def get_profiles_batch(request: Request, body: BatchRequest) -> Response:
        """One result per id, in the order asked, all from one version (scope
        `profiles:read`)."""
        return await api.batch(request.scope, body.ids)

    @app.get(
        "/v1/segments",
        operation_id="list_segments",
        summary="Segments of the served version",
        response_model=None,
        responses={200: {"model": SegmentsResponse, **served}, **_AUTH_ERRORS},
        openapi_extra={"security": _SECURITY},
        tags=["segments"],
    )
    async def list_segments(request: Request) -> Response:
        """Segment keys with members in the served version (scope `segments:read`)."""
        return await api.segments(request.scope)

    @app.get(
        "/v1/segments/{segment}/members",
        operation_id="list_segment_members",
        summary="Members of a segment, paged",
        response_model=None,
        responses={
            200: {"model": MembersResponse, **served},
            400: _error_doc("the cursor is not one this API returned for this segment"),
            404: _error_doc("the served version (or the cursor's) has no such segment"),
            410: _error_doc("the cursor's version has expired: restart paging without cursor"),
            **_AUTH_ERRORS,
        },
        openapi_extra={"security": _SECURITY},
        tags=["segments"],
    )
    async def list_segment_members(
        request: Request,
        segment: SegmentPath,
        limit: LimitQuery = DEFAULT_MEMBERS_LIMIT,
        cursor: CursorQuery = None,
    ) -> Response:
        """Pseudonymous person ids of a segment's members, in id order, for activation tools
        (scope `segments:read`). The first page comes from the served version; the
        `next_cursor` of a page pins the following pages to that same version, until it
        expires after being replaced (then 410: restart)."""
        return await api.members(request.scope, segment, limit, cursor)

    @app.get(
        "/healthz",
        operation_id="healthz",
        summary="The process is up",
        response_model=Health,
        tags=["operations"],
    )
    async def healthz() -> Response:
        return _Json(200, b'{"status":"ok"}')

    @app.get(
        "/readyz",
        operation_id="readyz",
        summary="A published version is loaded and readable",
        response_model=None,
        responses={
            200: {"model": Ready, **served},
            503: _error_doc("nothing loaded yet, or Redis unreachable", _RETRY_HEADER),
        },
        tags=["operations"],
    )
    async def readyz() -> Response:
        return await api.ready()

    @app.get(
        "/metrics",
        operation_id="metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        tags=["operations"],
    )
    async def metrics_endpoint() -> Response:
        try:  # the version age is current even when no lookup came in lately
            meta = await api.reader.served()
            if meta is not None:
                api.metrics.serving(meta)
        except RedisError:
            pass
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def serve(
    settings: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    key_cache_seconds: float = auth.DEFAULT_CACHE_SECONDS,
) -> None:
    """Run the API with uvicorn (one process; uvloop, httptools; uvicorn's access log off:
    paths hold visitor ids). ``settings``: ``warehouse.settings.Settings``. Raises
    ``OnlineStoreUnavailable`` (Redis not configured or unreachable) or
    ``PseudonymizationKeyError`` before binding the port."""
    import uvicorn

    from privacy.pseudonyms import key_from_environment
    from serving.online.connection import connect
    from serving.online.logs import log_config

    require_url(settings.online_redis_url)
    key = key_from_environment()
    connect(settings.online_redis_url).close()  # fail now, with the URL named, if unreachable
    app = create_app(
        settings.online_redis_url,
        settings.online_redis_prefix,
        key,
        key_cache_seconds=key_cache_seconds,
        access_log=AccessLog(),
    )
    uvicorn.run(
        app,
        host=host or settings.api_host,
        port=port or settings.api_port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=log_config(),
        server_header=False,
        proxy_headers=False,
    )
