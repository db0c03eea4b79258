"""The online profile store in tests: a key prefix of its own on the shared Redis server."""

import uuid
from contextlib import contextmanager


@contextmanager
def online_store_on(redis_url: str, grace_seconds: int = 60):
    """An online profile store under a key prefix of its own (the server is shared: never
    FLUSHDB); its keys are deleted afterwards."""
    from serving.online.store import OnlineStore

    store = OnlineStore(redis_url, f"segwhtest{uuid.uuid4().hex[:8]}", grace_seconds)
    client = store.connect()
    try:
        yield store
    finally:
        for key in client.scan_iter(match=f"{store.prefix}:*", count=1000):
            client.delete(key)
        client.close()
