"""A minimal asyncio Redis client for the API's hot path: one connection, commands pipelined.

Why not redis-py's asyncio client there: on the 2-core benchmark machine one EVALSHA through
``redis.asyncio`` costs 115-165 µs of CPU (connection pool checkout and release, a timeout
wrapper per read, retries, observability hooks), about half of the per-request budget of
3,000 requests/s on one core. This client costs a fraction of that: each command is one
``transport.write`` and one future; concurrent requests share one connection and Redis answers
in order (a FIFO of futures), so many lookups are in flight at once without a pool.

It does only what the lookups need: ``execute(*args)`` and ``Script`` (EVALSHA, loading the
script on NOSCRIPT). Everything else (metadata, segment members, API keys) uses redis-py.
Errors are redis-py's exception classes (``RedisError`` subclasses), so callers handle both
clients alike. A lost connection fails the commands in flight with ``ConnectionError`` and the
next command reconnects; a command unanswered for ``timeout`` seconds closes the connection
(Redis answers in order: if the oldest command has no answer, none has).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


def encode(args: tuple) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: deque[tuple[asyncio.Future, float]] = deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not self.waiters:  # nothing asked: the stream is out of step, start over
                self.abort(RedisConnectionError("unexpected reply from Redis"))
                return
            future, _ = self.waiters.popleft()
            if not future.done():  # a cancelled request still takes its reply out of line
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def fail(self, error: Exception) -> None:
        self.closed = True
        while self.waiters:
            future, _ = self.waiters.popleft()
            if not future.done():
                future.set_exception(error)

    def abort(self, error: Exception) -> None:
        self.fail(error)
        if self.transport is not None:
            self.transport.abort()


class PipelinedRedis:
    """One pipelined connection to the Redis at ``url`` (redis://, rediss://, unix://)."""

    def __init__(self, url: str, *, timeout: float = 2.0):
        self._options = parse_url(url)
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None
        self._watchdog: asyncio.Task | None = None

    async def _connect(self) -> _Protocol:
        if self._connecting is not None:  # another request is connecting: wait for it
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            protocol = await asyncio.wait_for(self._open(loop), self._timeout)
        except BaseException as exc:
            connecting, self._connecting = self._connecting, None
            if isinstance(exc, asyncio.CancelledError):  # the request that connected went away
                connecting.set_exception(RedisConnectionError("connecting to Redis was cancelled"))
                connecting.exception()  # retrieved: no "never retrieved" warning
                raise
            error = exc
            if isinstance(exc, asyncio.TimeoutError | OSError):
                error = RedisConnectionError(f"cannot connect to Redis: {exc!r}")
            connecting.set_exception(error)
            connecting.exception()
            raise error from None
        self._protocol = protocol
        connecting, self._connecting = self._connecting, None
        connecting.set_result(protocol)
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.create_task(self._watch())
        return protocol

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        options = self._options
        if "path" in options:
            _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
        else:
            context = None
            if options.get("connection_class") is SSLConnection:
                context = ssl.create_default_context()
            _, protocol = await loop.create_connection(
                _Protocol, options.get("host", "localhost"), options.get("port", 6379), ssl=context
            )
        setup = []  # sent back to back, before any command of a request
        if options.get("password"):
            user = [options["username"]] if options.get("username") else []  # ACL user or not
            setup.append(self._send(protocol, ("AUTH", *user, options["password"])))
        if options.get("db"):
            setup.append(self._send(protocol, ("SELECT", options["db"])))
        try:
            await asyncio.gather(*setup)
        except BaseException:
            protocol.abort(RedisConnectionError("connection setup failed"))
            raise
        return protocol

    async def _watch(self) -> None:
        """Close a connection whose oldest command waits longer than the timeout."""
        interval = max(0.05, self._timeout / 4)
        while True:
            await asyncio.sleep(interval)
            protocol = self._protocol
            if protocol is None or protocol.closed or not protocol.waiters:
                continue
            if time.monotonic() - protocol.waiters[0][1] > self._timeout:
                protocol.abort(
                    RedisTimeoutError(f"Redis did not answer within {self._timeout:g} s")
                )

    async def _send(self, protocol: _Protocol, args: tuple) -> Any:
        future = asyncio.get_running_loop().create_future()
        protocol.waiters.append((future, time.monotonic()))
        protocol.transport.write(encode(args))
        reply = await future
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            if message.startswith("NOSCRIPT"):
                raise NoScriptError(message)
            raise ResponseError(message)
        return reply

    async def execute(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect()
        return await self._send(protocol, args)

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._protocol is not None:
            self._protocol.fail(RedisConnectionError("client closed"))
            self._protocol.transport.close()
            self._protocol = None


class Script:
    """A Lua script run with EVALSHA (no keys, only arguments), loaded on NOSCRIPT."""

    def __init__(self, client: PipelinedRedis, source: str):
        self._client = client
        self._source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, *args: Any) -> Any:
        try:
            return await self._client.execute("EVALSHA", self.sha, 0, *args)
        except NoScriptError:
            await self._client.execute("SCRIPT", "LOAD", self._source)
            return await self._client.execute("EVALSHA", self.sha, 0, *args)
