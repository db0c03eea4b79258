"""The online API on the real Redis and the real process: lookups by user id and anonymous id,
unknown visitors, consent, the batch endpoint, readiness, logs and metrics."""

from __future__ import annotations

import asyncio
import re
import urllib.parse

import httpx
import pytest
from online_api_helpers import DEFAULT_DECISION, Person, delete_prefix, profile, start_api, stop_api

from serving.online import auth
from serving.online.api import create_app
from serving.online.store import erase

ALICE = Person(
    "alice",
    ["user-alice", "anon-alice-1", "anon-alice-2"],
    segments=("cart_abandoner", "stage_purchase"),
)
BOB = Person("bob", ["user-bob", "anon-bob"], personalized=False)  # no personalization consent
CAROL = Person("carol", ["anon-carol"], segments=("frequent_buyer",), variant="vip_offers")
DAVE = Person("dave", ["dave/ü ?#%&=.."], variant="welcome")  # characters that need escaping
# a loader bug must not leak: personalized false, yet segments stored
EVE = Person("eve", ["user-eve"], personalized=False)
FRANK = Person("frank", ["user-frank", "anon-frank"])  # erased by a test
PERSONS = [ALICE, BOB, CAROL, DAVE, EVE, FRANK]


def _profile_of(person: Person, version: str) -> dict:
    if person is EVE:
        return {**profile(person.person_id, version), "personalized": False}
    return profile(
        person.person_id,
        version,
        personalized=person.personalized,
        segments=person.segments,
        variant=person.variant,
        recommendations=[{"product_id": "p-1", "score": 0.9}],  # a key added by a later issue
    )


@pytest.fixture(scope="module")
def served(api_store, api_server):
    api_store.load("v1", PERSONS, profile_of=_profile_of)
    key = api_store.create_key("website", [auth.PROFILES_READ])
    with api_server.client(key) as client:
        yield client


def _path(endpoint: str, raw_id: str) -> str:
    return f"/v1/{endpoint}/{urllib.parse.quote(raw_id, safe='')}"


def _assert_served(response: httpx.Response, version: str = "v1") -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == response.headers["Segwh-Version"] == version
    assert body["as_of"] == response.headers["Segwh-As-Of"] == "2026-11-01T00:00:00"
    assert response.headers["Cache-Control"] == "no-store"
    return body


def test_an_unknown_visitor_gets_the_default_decision(served):
    body = _assert_served(served.get(_path("profiles", "anon-never-seen")))
    assert body["known"] is False
    assert body["profile"] == {"personalized": False, "decision": DEFAULT_DECISION}
    decision = _assert_served(served.get(_path("decisions", "anon-never-seen")))
    assert decision == {
        "version": "v1",
        "as_of": "2026-11-01T00:00:00",
        "known": False,
        "personalized": False,
        "decision": DEFAULT_DECISION,
    }


def test_user_id_and_anonymous_ids_of_one_person_give_the_same_profile(served):
    bodies = [_assert_served(served.get(_path("profiles", raw))) for raw in ALICE.raw_ids]
    assert bodies[0] == bodies[1] == bodies[2]
    assert bodies[0]["known"] is True
    assert bodies[0]["profile"] == _profile_of(ALICE, "v1")  # as stored, unknown keys included
    assert bodies[0]["profile"]["segments"] == ["cart_abandoner", "stage_purchase"]
    decision = _assert_served(served.get(_path("decisions", "anon-alice-2")))
    assert decision["known"] is True and decision["personalized"] is True
    assert decision["decision"] == _profile_of(ALICE, "v1")["decision"]


def test_a_person_without_personalization_consent_gets_only_the_decision(served):
    for person in (BOB, EVE):
        for raw in person.raw_ids:
            body = _assert_served(served.get(_path("profiles", raw)))
            assert body["known"] is True
            assert body["profile"] == {"personalized": False, "decision": DEFAULT_DECISION}
            decision = _assert_served(served.get(_path("decisions", raw)))
            assert decision["personalized"] is False
            assert decision["decision"] == DEFAULT_DECISION
            assert "segments" not in decision and "person_id" not in decision


def test_ids_are_taken_whole_from_the_path(served):
    (raw,) = DAVE.raw_ids
    body = _assert_served(served.get(_path("profiles", raw)))
    assert body["known"] is True
    assert body["profile"]["decision"]["content_variant"] == "welcome"
    too_long = served.get(_path("profiles", "x" * 513))
    assert too_long.status_code == 422
    empty = served.get("/v1/profiles/")
    assert empty.status_code == 200 and empty.json()["known"] is False


def test_the_batch_keeps_the_order_and_answers_unknown_ids(served):
    ids = ["nobody-1", "user-alice", "anon-bob", "anon-alice-1", "nobody-2", DAVE.raw_ids[0]]
    body = _assert_served(served.post("/v1/profiles:batch", json={"ids": ids}))
    assert [r["id"] for r in body["results"]] == ids
    assert [r["known"] for r in body["results"]] == [False, True, True, True, False, True]
    results = body["results"]
    assert results[0]["profile"] == {"personalized": False, "decision": DEFAULT_DECISION}
    assert results[1]["profile"] == results[3]["profile"] == _profile_of(ALICE, "v1")
    assert results[2]["profile"] == {"personalized": False, "decision": DEFAULT_DECISION}
    assert results[5]["profile"]["person_id"] == DAVE.person_id


def test_the_batch_has_limits(served):
    assert served.post("/v1/profiles:batch", json={"ids": []}).status_code == 422
    assert served.post("/v1/profiles:batch", json={"ids": ["a"] * 101}).status_code == 422
    assert served.post("/v1/profiles:batch", json={"ids": ["a"] * 100}).status_code == 200
    assert served.post("/v1/profiles:batch", json={"ids": ["x" * 513]}).status_code == 422
    json_header = {"Content-Type": "application/json"}
    unreadable = served.post("/v1/profiles:batch", content=b"vu\xaf\xe7", headers=json_header)
    assert unreadable.status_code == 400
    assert set(unreadable.json()) == {"error", "detail"}
    huge = served.post("/v1/profiles:batch", content=b"[" + b" " * 300_000 + b"]",
                       headers=json_header)  # fmt: skip
    assert huge.status_code == 413 and huge.json()["error"] == "content_too_large"
    unknown_path = served.get("/v1/nothing-here")
    assert unknown_path.status_code == 404 and unknown_path.json()["error"] == "not_found"


def test_erasure_reaches_the_api(served, api_store):
    assert served.get(_path("profiles", "user-frank")).json()["known"] is True
    identifiers = [api_store.pseudonym(r) for r in FRANK.raw_ids]
    erase(api_store.client, api_store.keys, [FRANK.person_id], identifiers)
    for raw in FRANK.raw_ids:
        body = _assert_served(served.get(_path("profiles", raw)))
        assert body["known"] is False
        assert body["profile"] == {"personalized": False, "decision": DEFAULT_DECISION}


def test_access_log_lines_hold_no_raw_id_and_no_pseudonym(served, api_server, api_store):
    asked = [*ALICE.raw_ids, *DAVE.raw_ids, "anon-unknown-visitor-42"]
    for raw in asked:
        served.get(_path("profiles", raw))
        served.get(_path("decisions", raw))
    served.post("/v1/profiles:batch", json={"ids": asked})
    served.get(_path("profiles", "anon-unknown-visitor-42"), headers={"Authorization": ""})
    lines = api_server.log_lines()
    text = api_server.log_path.read_text()
    secrets_ = [*asked, *(api_store.pseudonym(r) for r in asked), ALICE.person_id, DAVE.person_id]
    secrets_ += [urllib.parse.quote(r, safe="") for r in asked]
    for secret in secrets_:
        assert secret not in text, secret
    access = [line for line in lines if line.get("logger") == "segwh.api.access"]
    routes = {line["route"] for line in access}
    assert {"/v1/profiles/{id}", "/v1/decisions/{id}", "/v1/profiles:batch"} <= routes
    profile_lines = [line for line in access if line["route"] == "/v1/profiles/{id}"]
    assert {line["key"] for line in profile_lines} == {"website", None}  # None: the keyless one
    assert any(line["status"] == 401 for line in profile_lines)
    ok = [line for line in profile_lines if line["status"] == 200]
    assert ok and all(line["version"] == "v1" and line["latency_ms"] > 0 for line in ok)
    assert set(ok[0]) == {
        "ts", "level", "logger", "message", "method", "route", "status", "latency_ms", "key",
        "version",
    }  # fmt: skip


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of the sample ``name{labels}`` of a Prometheus text exposition."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name:
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            if found == labels:
                return float(match.group(3))
    raise AssertionError(f"{name}{labels} not in /metrics")


def test_metrics_show_latency_lookups_rejections_and_version_age(served, api_server):
    served.get(_path("profiles", "user-alice"))
    served.get(_path("profiles", "nobody-at-all"))
    httpx.get(f"{api_server.url}{_path('profiles', 'user-alice')}")  # no key
    response = httpx.get(f"{api_server.url}/metrics")  # no key needed
    assert response.status_code == 200
    text = response.text
    route = {"method": "GET", "route": "/v1/profiles/{id}", "status": "200"}
    assert _metric(text, "segwh_api_request_duration_seconds_count", **route) >= 1
    assert _metric(text, "segwh_api_request_duration_seconds_bucket", le="+Inf", **route) >= 1
    assert _metric(text, "segwh_api_lookups_total", result="hit") >= 1
    assert _metric(text, "segwh_api_lookups_total", result="unknown") >= 1
    assert _metric(text, "segwh_api_requests_rejected_total", reason="unauthenticated") >= 1
    assert 0 <= _metric(text, "segwh_api_served_version_age_seconds") < 600
    assert _metric(text, "segwh_api_served_version_info", version="v1", as_of="2026-11-01T00:00:00")
    assert _metric(text, "segwh_api_key_cache_total", result="miss") >= 1
    assert "user-alice" not in text


def test_health_metrics_and_the_openapi_document_need_no_key(api_server):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert httpx.get(f"{api_server.url}{path}").status_code == 200, path
    document = httpx.get(f"{api_server.url}/openapi.json").json()
    paths = document["paths"]
    assert set(paths) == {
        "/v1/profiles/{id}", "/v1/decisions/{id}", "/v1/profiles:batch", "/v1/segments",
        "/v1/segments/{segment}/members", "/healthz", "/readyz", "/metrics",
    }  # fmt: skip
    members = paths["/v1/segments/{segment}/members"]["get"]
    assert {"200", "400", "401", "403", "404", "410", "429", "503"} <= set(members["responses"])
    assert paths["/v1/profiles/{id}"]["get"]["security"]
    assert "Segwh-Version" in paths["/v1/profiles/{id}"]["get"]["responses"]["200"]["headers"]


def test_readiness_and_lookups_wait_for_a_first_load(redis_url, api_store, tmp_path):
    prefix = f"{api_store.prefix}_empty"
    server = start_api(redis_url, prefix, tmp_path / "stderr.log")
    try:
        from online_api_helpers import Store

        empty = Store(api_store.client, prefix)
        key = empty.create_key("website", [auth.PROFILES_READ])
        with server.client(key) as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["error"] == "not_loaded"
            assert "no version" in ready.json()["detail"]
            lookup = client.get(_path("profiles", "user-alice"))
            assert lookup.status_code == 503
            assert int(lookup.headers["Retry-After"]) > 0
            assert "SEGWH_ONLINE_REDIS_URL" in lookup.json()["detail"]
            batch = client.post("/v1/profiles:batch", json={"ids": ["user-alice"]})
            assert batch.status_code == 503

            empty.load("first", [ALICE])
            ready = client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["version"] == "first" and ready.json()["persons"] == 1
            body = _assert_served(client.get(_path("profiles", "user-alice")), "first")
            assert body["known"] is True
    finally:
        stop_api(server.process)
        delete_prefix(api_store.client, prefix)


def _requests_in_process(app, key: str, requests: list[tuple[str, str, dict | None]]):
    async def run():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"X-API-Key": key}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://api", headers=headers
            ) as client:
                return [await client.request(m, p, json=body) for m, p, body in requests]

    return asyncio.run(run())


def test_the_fast_path_answers_like_the_fastapi_routes(served, redis_url, api_store):
    """ApiMiddleware answers the single lookups itself; FastAPI's routes must agree."""
    key = api_store.create_key("in-process", [auth.PROFILES_READ])
    requests = [
        ("GET", _path(endpoint, raw), None)
        for endpoint in ("profiles", "decisions")
        for raw in (
            "user-alice", "anon-bob", "user-eve", "nobody", DAVE.raw_ids[0], "line\nbreak",
            "x" * 513, "\n" + "x" * 513,
        )
    ]  # fmt: skip
    requests.append(("GET", "/v1/profiles/", None))
    answers = {}
    for fast_path in (True, False):
        app = create_app(redis_url, api_store.prefix, api_store.key, fast_path=fast_path)
        answers[fast_path] = [
            (r.status_code, r.headers.get("Segwh-Version"), r.json())
            for r in _requests_in_process(app, key, requests)
        ]
    assert answers[True] == answers[False]
    assert [status for status, _, _ in answers[True]].count(422) == 4


def test_redis_unreachable_gives_503_naming_the_url_without_its_password(api_store):
    app = create_app("redis://:hunter2@127.0.0.1:1/0", api_store.prefix, api_store.key)
    ready, lookup = _requests_in_process(
        app, "segwh_whatever", [("GET", "/readyz", None), ("GET", "/v1/profiles/x", None)]
    )
    assert ready.status_code == 503
    assert "redis://:***@127.0.0.1:1/0" in ready.json()["detail"]
    assert "hunter2" not in ready.text
    assert lookup.status_code == 503 and lookup.headers["Retry-After"]
    assert lookup.json()["error"] == "store_unavailable"
