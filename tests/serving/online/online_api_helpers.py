"""Helpers and fixtures of the online API's tests (conftest.py registers the fixtures): the
real Redis on loopback (``redis_url`` of tests/conftest.py) and the real API process.

Each test module works under its own key prefix (deleted afterwards; the Redis server is shared
with other tests and services, so nothing here flushes it). ``api_server`` starts ``segwh serve``
on a free port in a subprocess, with its stderr (the JSON logs) captured to a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from process_helpers import free_port, stop_process_group

from privacy.pseudonyms import key_from_environment, pseudonym
from serving.online import auth
from serving.online.store import Changes, Keys, LoadResult, VersionMeta, load, now_text
from warehouse.settings import PROJECT_DIR

AS_OF = "2026-11-01T00:00:00"
DEFAULT_DECISION = {"content_variant": "default", "rule_id": "default", "segment_key": None}


@pytest.fixture(scope="session")
def api_redis(redis_url) -> Iterator[redis.Redis]:
    """A client of the Redis on loopback (``redis_url``, tests/conftest.py)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    names = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(names), 1000):
        client.unlink(*names[start : start + 1000])


def person_of(name: str) -> str:
    """The person id of a test person (a pseudonym, as the warehouse makes them)."""
    return pseudonym(f"person:{name}", key_from_environment())


def profile(
    person: str,
    marker: str,
    *,
    personalized: bool = True,
    segments: Iterable[str] = ("cart_abandoner",),
    variant: str = "vip_offers",
    **extra: object,
) -> dict:
    """A profile as the loader stores it; ``marker`` (an extra key, passed through by the API)
    names the version it was loaded with."""
    decision = {"content_variant": variant, "rule_id": f"rule_{variant}", "segment_key": None}
    if not personalized:
        return {
            "person_id": person,
            "as_of": AS_OF,
            "personalized": False,
            "decision": DEFAULT_DECISION,
            "marker": marker,
        }
    return {
        "person_id": person,
        "as_of": AS_OF,
        "personalized": True,
        "segments": sorted(segments),
        "rfm_segment": "rfm_champions",
        "cluster": {"id": 3, "name": "loyal regulars"},
        "churn": {"probability": 0.42, "risk_band": "medium", "at_risk": False,
                  "model_version": "churn-1"},
        "decision": decision,
        "marker": marker,
        **extra,
    }  # fmt: skip


@dataclass
class Person:
    name: str
    raw_ids: list[str]  # user id and/or anonymous ids, as a website knows them
    personalized: bool = True
    segments: tuple[str, ...] = ("cart_abandoner",)
    variant: str = "vip_offers"

    @property
    def person_id(self) -> str:
        return person_of(self.name)


@dataclass
class Store:
    """Loads versions of the online store under ``prefix`` with ``store.load``."""

    client: redis.Redis
    prefix: str
    key: bytes = field(default_factory=key_from_environment)

    @property
    def keys(self) -> Keys:
        return Keys(self.prefix)

    def pseudonym(self, raw_id: str) -> str:
        return pseudonym(raw_id, self.key)

    def load(
        self,
        version: str,
        persons: Iterable[Person],
        *,
        grace_seconds: int = 300,
        segments: Iterable[str] | None = None,
        profile_of: Callable[[Person, str], dict] | None = None,
    ) -> LoadResult:
        """A full load of ``persons`` as ``version``; every profile carries ``version`` as its
        marker (or is built by ``profile_of(person, version)``)."""
        persons = list(persons)
        profile_of = profile_of or (
            lambda p, v: profile(
                p.person_id, v, personalized=p.personalized, segments=p.segments,
                variant=p.variant,
            )
        )  # fmt: skip
        all_segments = set(segments or ())
        members = []
        for person in persons:
            if person.personalized:
                all_segments |= set(person.segments)
                members += [(s, person.person_id) for s in person.segments]
        meta = VersionMeta(
            version=version,
            as_of=AS_OF,
            loaded_at=now_text(),
            persons=len(persons),
            identifiers=sum(len(p.raw_ids) for p in persons),
            segments=tuple(sorted(all_segments)),
            default_decision=DEFAULT_DECISION,
        )
        changes = Changes(
            profiles=[(p.person_id, json.dumps(profile_of(p, version))) for p in persons],
            removed_persons=[],
            identifiers=[(self.pseudonym(r), p.person_id) for p in persons for r in p.raw_ids],
            removed_identifiers=[],
            members_added=members,
            members_removed=[],
        )
        return load(self.client, self.keys, meta, changes, grace_seconds=grace_seconds)

    def create_key(self, name: str, scopes: Iterable[str], rate_limit: float = 1e6) -> str:
        return auth.create_key(self.client, self.prefix, name, scopes, rate_limit)


@pytest.fixture(scope="module")
def api_store(api_redis) -> Iterator[Store]:
    """A fresh prefix for the test module; its keys are deleted afterwards."""
    prefix = f"segwhapitest{uuid.uuid4().hex[:10]}"
    yield Store(api_redis, prefix)
    delete_prefix(api_redis, prefix)


@dataclass
class ApiServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def client(self, key: str | None = None, **kwargs) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def log_lines(self) -> list[dict]:
        """The JSON lines the process wrote to stderr so far (the access log is flushed every
        0.2 s: wait a little after the requests)."""
        time.sleep(0.5)
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


def start_api(
    redis_url: str, prefix: str, log_path: Path, *, key_cache_seconds: float = 1.0
) -> ApiServer:
    port = free_port()
    env = {
        **os.environ,
        "SEGWH_ONLINE_REDIS_URL": redis_url,
        "SEGWH_ONLINE_REDIS_PREFIX": prefix,
        "SEGWH_API_HOST": "127.0.0.1",
    }
    segwh = str(Path(sys.executable).parent / "segwh")
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [segwh, "serve", "--port", str(port), "--key-cache-seconds", str(key_cache_seconds)],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"segwh serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return ApiServer(url, process, log_path)
        except httpx.TransportError:
            time.sleep(0.1)
    stop_api(process)
    pytest.fail(f"segwh serve did not answer on {url}:\n{log_path.read_text()}")


def stop_api(process: subprocess.Popen) -> None:
    stop_process_group(process)


@pytest.fixture(scope="module")
def api_server(redis_url, api_store, tmp_path_factory) -> Iterator[ApiServer]:
    """``segwh serve`` on the module's prefix (API-key cache: 1 s)."""
    log_path = tmp_path_factory.mktemp("api") / "stderr.log"
    server = start_api(redis_url, api_store.prefix, log_path)
    yield server
    stop_api(server.process)
