"""Segment members for activation tools: pages by cursor, pinned to the version they started
from, 410 once that version has expired, 404 for an unknown segment."""

from __future__ import annotations

import time

import pytest
from online_api_helpers import Person

from serving.online import auth

VIP = "vip"
OTHER = "other"


def _persons(vip: range, other: range = range(0)) -> list[Person]:
    persons = []
    for i in sorted(set(vip) | set(other)):
        segments = tuple(s for s, r in ((VIP, vip), (OTHER, other)) if i in r)
        persons.append(Person(f"member-{i}", [f"user-member-{i}"], segments=segments))
    persons.append(Person("no-consent", ["user-no-consent"], personalized=False))
    return persons


def _members_of(persons: list[Person], segment: str) -> list[str]:
    return sorted(p.person_id for p in persons if p.personalized and segment in p.segments)


@pytest.fixture(scope="module")
def keys(api_store):
    return {
        "segments": api_store.create_key("activation", [auth.SEGMENTS_READ]),
        "profiles": api_store.create_key("website", [auth.PROFILES_READ]),
    }


@pytest.fixture
def client(api_server, keys):
    with api_server.client(keys["segments"]) as client:
        yield client


def _pages(client, segment: str, limit: int, cursor: str | None = None):
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/v1/segments/{segment}/members", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        yield page
        cursor = page["next_cursor"]
        if cursor is None:
            return


def test_pages_list_every_member_once_in_id_order(api_store, client):
    persons = _persons(vip=range(25), other=range(20, 30))
    api_store.load("pages-1", persons)
    pages = list(_pages(client, VIP, limit=10))
    assert [len(p["members"]) for p in pages] == [10, 10, 5]
    assert {p["version"] for p in pages} == {"pages-1"}
    assert [m for p in pages for m in p["members"]] == _members_of(persons, VIP)
    exact = list(_pages(client, OTHER, limit=10))  # a full last page has no next cursor
    assert [len(p["members"]) for p in exact] == [10]
    assert exact[0]["members"] == _members_of(persons, OTHER)
    everything = client.get(f"/v1/segments/{VIP}/members").json()  # default limit: 1,000
    assert everything["members"] == _members_of(persons, VIP)
    assert everything["next_cursor"] is None

    listed = client.get("/v1/segments")
    assert listed.status_code == 200
    assert listed.json() == {"version": "pages-1", "as_of": listed.json()["as_of"],
                             "segments": [OTHER, VIP]}  # fmt: skip


def test_an_unknown_segment_is_404_and_lists_nothing_personal(api_store, client):
    persons = _persons(vip=range(5))
    api_store.load("unknown-1", persons)
    response = client.get("/v1/segments/no_such_segment/members")
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_segment"
    for person in persons:
        assert person.person_id not in response.text
        assert person.raw_ids[0] not in response.text


def test_a_cursor_is_checked(api_store, client):
    api_store.load("cursor-1", _persons(vip=range(5), other=range(5)))
    page = client.get(f"/v1/segments/{VIP}/members", params={"limit": 2}).json()
    cursor = page["next_cursor"]
    other = client.get(f"/v1/segments/{OTHER}/members", params={"cursor": cursor})
    assert other.status_code == 400 and "another segment" in other.json()["detail"]
    forged = cursor[:-4] + ("AAAA" if not cursor.endswith("AAAA") else "BBBB")
    tampered = client.get(f"/v1/segments/{VIP}/members", params={"cursor": forged})
    assert tampered.status_code == 400 and tampered.json()["error"] == "invalid_cursor"
    garbage = client.get(f"/v1/segments/{VIP}/members", params={"cursor": "not a cursor!"})
    assert garbage.status_code == 400
    assert client.get(f"/v1/segments/{VIP}/members", params={"limit": 0}).status_code == 422
    too_many = client.get(f"/v1/segments/{VIP}/members", params={"limit": 10_001})
    assert too_many.status_code == 422


def test_members_need_the_segments_scope(api_server, keys):
    with api_server.client(keys["profiles"]) as client:
        response = client.get(f"/v1/segments/{VIP}/members")
        assert response.status_code == 403
        assert "segments:read" in response.json()["detail"]
        assert client.get("/v1/segments").status_code == 403
    with api_server.client(keys["segments"]) as client:
        assert client.get("/v1/profiles/user-member-1").status_code == 403


@pytest.mark.slow  # waits for a replaced version to expire
def test_a_cursor_pins_its_version_until_it_expires(api_store, client):
    before = _persons(vip=range(0, 25))
    after = _persons(vip=range(10, 40))
    api_store.load("pinned-1", before)
    first = client.get(f"/v1/segments/{VIP}/members", params={"limit": 10}).json()
    assert first["version"] == "pinned-1"

    api_store.load("pinned-2", after, grace_seconds=2)  # pinned-1 expires 2 s from now
    pinned = list(_pages(client, VIP, limit=10, cursor=first["next_cursor"]))
    assert {p["version"] for p in pinned} == {"pinned-1"}
    assert first["members"] + [m for p in pinned for m in p["members"]] == _members_of(before, VIP)
    fresh = client.get(f"/v1/segments/{VIP}/members", params={"limit": 10}).json()
    assert fresh["version"] == "pinned-2"
    assert fresh["members"] == _members_of(after, VIP)[:10]

    deadline = time.monotonic() + 15
    while True:
        response = client.get(
            f"/v1/segments/{VIP}/members", params={"cursor": first["next_cursor"]}
        )
        if response.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert response.status_code == 410
    assert response.json()["error"] == "version_expired"
    assert "restart paging" in response.json()["detail"]
    restarted = list(_pages(client, VIP, limit=10))
    assert [m for p in restarted for m in p["members"]] == _members_of(after, VIP)
