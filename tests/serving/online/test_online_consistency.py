"""A version switch under a concurrent reader loop: readers keep asking the API (single
lookups, decisions, batches) while new versions are loaded, full and as changes; every
response comes from one version whole and none is an error."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from online_api_helpers import AS_OF, DEFAULT_DECISION, Person, profile

from serving.online import auth
from serving.online.store import Changes, VersionMeta, load, now_text

PERSONS = [Person(f"reader-{i}", [f"user-reader-{i}", f"anon-reader-{i}"]) for i in range(60)]
RAW_IDS = [raw for person in PERSONS for raw in person.raw_ids]


def _profile(person: Person, version: str) -> dict:
    return profile(person.person_id, version, variant=f"variant-{version}")


def _check(response: httpx.Response, kind: str, mixed: list, seen: set) -> None:
    """Every profile and decision of the response carries the version the response names."""
    if response.status_code != 200:
        mixed.append((kind, response.status_code, response.text[:200]))
        return
    body = response.json()
    version = body["version"]
    seen.add(version)
    if response.headers["Segwh-Version"] != version:
        mixed.append((kind, "header", response.headers["Segwh-Version"], version))
    if kind == "batch":
        markers = {r["profile"]["marker"] for r in body["results"]}
        if markers != {version} or not all(r["known"] for r in body["results"]):
            mixed.append((kind, version, sorted(markers)))
    elif kind == "profile":
        if not body["known"] or body["profile"]["marker"] != version:
            mixed.append((kind, version, body["profile"].get("marker")))
    elif body["decision"]["content_variant"] != f"variant-{version}":
        mixed.append((kind, version, body["decision"]))


def _reader(url: str, key: str, stop: threading.Event, mixed: list, seen: set, counts: list):
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as client:
        i = 0
        while not stop.is_set():
            raw = RAW_IDS[i % len(RAW_IDS)]
            try:
                _check(client.get(f"/v1/profiles/{raw}"), "profile", mixed, seen)
                _check(client.get(f"/v1/decisions/{raw}"), "decision", mixed, seen)
                batch = RAW_IDS[i % 20 : i % 20 + 100]
                _check(client.post("/v1/profiles:batch", json={"ids": batch}), "batch", mixed, seen)
            except httpx.HTTPError as exc:
                mixed.append(("transport", repr(exc)))
            counts.append(3)
            i += 7


@pytest.mark.slow
def test_a_version_switch_never_shows_a_mix_or_an_error(api_store, api_server):
    def meta(version: str) -> VersionMeta:
        return VersionMeta(
            version=version,
            as_of=AS_OF,
            loaded_at=now_text(),
            persons=len(PERSONS),
            identifiers=len(RAW_IDS),
            segments=("cart_abandoner",),
            default_decision=DEFAULT_DECISION,
        )

    def profiles(version: str) -> list[tuple[str, str]]:
        return [(p.person_id, json.dumps(_profile(p, version))) for p in PERSONS]

    api_store.load("switch-0", PERSONS, profile_of=_profile, grace_seconds=5)
    key = api_store.create_key("reader", [auth.PROFILES_READ])
    stop = threading.Event()
    mixed: list = []
    seen: set[str] = set()
    counts: list[int] = []
    readers = [
        threading.Thread(target=_reader, args=(api_server.url, key, stop, mixed, seen, counts))
        for _ in range(3)
    ]
    for reader in readers:
        reader.start()
    try:
        time.sleep(0.3)
        previous = "switch-0"
        for n in range(1, 9):
            version = f"switch-{n}"
            if n % 2:  # a full load
                api_store.load(version, PERSONS, profile_of=_profile, grace_seconds=5)
            else:  # a load of changes on top of the served version: every profile rewritten
                changes = Changes(
                    profiles=profiles(version),
                    removed_persons=[],
                    identifiers=[],
                    removed_identifiers=[],
                    members_added=[],
                    members_removed=[],
                )
                result = load(
                    api_store.client,
                    api_store.keys,
                    meta(version),
                    changes,
                    base_version=previous,
                    grace_seconds=5,
                )
                assert result.mode == "changes"
            previous = version
            time.sleep(0.25)
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert mixed == []
    assert len(seen) >= 4, seen  # the readers saw several versions come and go
    assert sum(counts) >= 100
