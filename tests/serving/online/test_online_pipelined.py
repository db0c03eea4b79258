"""The API's pipelined Redis client: concurrent commands on one connection get their own
replies, scripts load on NOSCRIPT, and a lost or stuck connection fails the commands in flight
with redis-py's errors and reconnects."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid

import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from serving.online.pipelined import PipelinedRedis, Script


@pytest.fixture
def names(redis_url):
    """Unique key names, deleted afterwards."""
    prefix = f"segwhpipetest{uuid.uuid4().hex[:8]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(match=f"{prefix}*"):
        client.delete(name)
    client.close()


def test_concurrent_commands_get_their_own_replies(redis_url, names):
    async def run():
        client = PipelinedRedis(redis_url)
        try:
            await asyncio.gather(*(client.execute("SET", f"{names}:{i}", i) for i in range(200)))
            replies = await asyncio.gather(
                *(client.execute("GET", f"{names}:{i}") for i in range(200))
            )
            assert replies == [str(i).encode() for i in range(200)]
            assert await client.execute("GET", f"{names}:missing") is None
            with pytest.raises(ResponseError):
                await client.execute("INCR", f"{names}:1", "extra")  # wrong arity
            assert await client.execute("INCR", f"{names}:1") == 2  # the stream is still in step
        finally:
            await client.aclose()

    asyncio.run(run())


def test_a_script_is_loaded_when_redis_does_not_know_it(redis_url, names):
    source = f"-- {names}\nreturn {{ARGV[1], ARGV[2]}}"  # never loaded before: NOSCRIPT first

    async def run():
        client = PipelinedRedis(redis_url)
        try:
            script = Script(client, source)
            assert await script("a", "b") == [b"a", b"b"]
            assert await script("c", "d") == [b"c", b"d"]
        finally:
            await client.aclose()

    asyncio.run(run())


def test_the_url_selects_the_database(redis_url, names):
    url = redis_url.rsplit("/", 1)[0] + "/3"

    async def run():
        client = PipelinedRedis(url)
        try:
            await client.execute("SET", f"{names}:db", "three")
        finally:
            await client.aclose()

    asyncio.run(run())
    db3 = redis.Redis.from_url(url)
    try:
        assert db3.get(f"{names}:db") == b"three"
        db3.delete(f"{names}:db")
    finally:
        db3.close()


def test_a_killed_connection_fails_what_is_in_flight_and_reconnects(redis_url, names):
    async def run():
        client = PipelinedRedis(redis_url)
        admin = redis.Redis.from_url(redis_url)
        try:
            own_id = await client.execute("CLIENT", "ID")
            blocked = asyncio.ensure_future(client.execute("BLPOP", f"{names}:never", 5))
            await asyncio.sleep(0.2)
            assert admin.client_kill_filter(_id=own_id) == 1
            with pytest.raises(RedisConnectionError):
                await blocked
            assert await client.execute("PING") == b"PONG"  # a new connection
            assert await client.execute("CLIENT", "ID") != own_id
        finally:
            admin.close()
            await client.aclose()

    asyncio.run(run())


def test_a_stuck_command_times_out_and_the_client_recovers(redis_url, names):
    async def run():
        client = PipelinedRedis(redis_url, timeout=0.4)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(RedisTimeoutError):
                await client.execute("BLPOP", f"{names}:never", 5)
            assert asyncio.get_running_loop().time() - started < 2
            assert await client.execute("PING") == b"PONG"
        finally:
            await client.aclose()

    asyncio.run(run())


def test_an_unreachable_server_is_a_connection_error():
    async def run():
        client = PipelinedRedis("redis://127.0.0.1:1/0", timeout=1)
        with pytest.raises(RedisConnectionError):
            await client.execute("PING")
        await client.aclose()

    asyncio.run(run())


def test_a_refused_password_is_an_error_not_a_hang(redis_url):
    parts = urllib.parse.urlsplit(redis_url)
    netloc = f":not-the-password@{parts.hostname}:{parts.port or 6379}"
    url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    async def run():
        client = PipelinedRedis(url, timeout=2)
        try:
            with pytest.raises(ResponseError):  # no password set, or another one
                await client.execute("PING")
        finally:
            await client.aclose()

    asyncio.run(run())
