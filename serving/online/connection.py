"""Connecting the API and its CLI to the online store's Redis, with errors that say what to do.

The URL comes from ``SEGWH_ONLINE_REDIS_URL`` and may hold a password: every message names the
URL with its password masked (``redacted``).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis

URL_VARIABLE = "SEGWH_ONLINE_REDIS_URL"
EXAMPLE_URL = "redis://127.0.0.1:6379/0"


def redacted(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class OnlineStoreUnavailable(RuntimeError):
    """The online store is not configured, or its Redis cannot be reached."""


def require_url(url: str) -> str:
    if not url or not url.strip():
        raise OnlineStoreUnavailable(
            f"{URL_VARIABLE} is not set: the online profile store is off. Point it at the Redis "
            f"server the profiles are loaded into, e.g.\n  export {URL_VARIABLE}={EXAMPLE_URL}"
        )
    return url.strip()


def connect(url: str, *, timeout_seconds: float = 5.0) -> redis.Redis:
    """A synchronous client on ``url``, checked with a PING."""
    url = require_url(url)
    try:
        client = redis.Redis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        client.ping()
    except ValueError as exc:  # a malformed URL
        raise OnlineStoreUnavailable(
            f"{URL_VARIABLE}={redacted(url)} is not a Redis URL ({exc}); e.g. {EXAMPLE_URL}"
        ) from None
    except redis.RedisError as exc:
        raise OnlineStoreUnavailable(
            f"cannot reach Redis at {redacted(url)} ({URL_VARIABLE}): {type(exc).__name__}: "
            f"{str(exc).rstrip('.')}. Is the server running and the URL right?"
        ) from None
    return client
